#!/usr/bin/env python3
"""Soak benchmark (prints figures; not a test): `segsynth run -i test:` at 1080p30 with a
GAN background, served over RTSP to one client, for N minutes. Reports fps, added
latency p50/p99, drops and RSS at each minute (goal: growth under 2 %).

    tests/soak.py BINARY [--minutes 10] [--width 1920 --height 1080 --fps 30]
"""
import argparse, re, socket, subprocess, sys, time, threading

p = argparse.ArgumentParser()
p.add_argument("binary"); p.add_argument("--minutes", type=float, default=10)
p.add_argument("--width", type=int, default=1920); p.add_argument("--height", type=int, default=1080)
p.add_argument("--fps", type=int, default=30); p.add_argument("--content", default="gan:foliage")
a = p.parse_args()

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
url = f"rtsp://127.0.0.1:{port}/live"
job = subprocess.Popen([a.binary, "run", "-i", "test:", "-o", url, "--width", str(a.width),
                        "--height", str(a.height), "--fps", str(a.fps), "--content", a.content,
                        "--stats-every", "60", "--duration", str(a.minutes * 60)],
                       stderr=subprocess.PIPE, text=True)
lines = []
def read():
    for line in job.stderr:
        lines.append(line.rstrip()); print("  |", line.rstrip(), flush=True)
threading.Thread(target=read, daemon=True).start()
while not any("serving" in l for l in lines):
    if job.poll() is not None: sys.exit("segsynth ended before serving")
    time.sleep(0.1)
client = subprocess.Popen(["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "protocols=tcp", "latency=0",
                           "!", "decodebin", "!", "fakesink", "sync=false"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def rss_mib():
    with open(f"/proc/{job.pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024
    return 0.0

started = time.time(); rss = []
while job.poll() is None:
    elapsed = time.time() - started
    if elapsed >= len(rss) * 60:
        try: rss.append(rss_mib())
        except OSError: break
    time.sleep(1)
client.terminate()
job.wait()
stats = [l for l in lines if l.startswith("segsynth: live")]
print(f"\nsoak: {a.width}x{a.height}@{a.fps} content {a.content}, one RTSP client, {a.minutes:g} min, exit {job.returncode}")
for l in stats: print(" ", l.replace("segsynth: ", ""))
summary = [l for l in lines if l.startswith("frames in") or "added latency (appsink" in l]
for l in summary: print(" ", l)
print("  RSS at each minute (MiB):", " ".join(f"{r:.0f}" for r in rss))
if len(rss) >= 3:
    base = rss[1]  # after warm-up (model sessions, encoder buffers)
    print(f"  RSS growth from minute 1 to the end: {100 * (rss[-1] - base) / base:+.2f} %")
