#!/usr/bin/env python3
"""RTSP start-up stress benchmark (prints figures; not a test).

Each round starts a fresh `segsynth run -i test: -o rtsp://127.0.0.1:PORT/live`, waits for
the port with a bare TCP connect (closed at once), then starts N RTSP clients at once
(`gst-launch-1.0 -v rtspsrc protocols=tcp ! decodebin ! fakesink silent=false num-buffers=F`)
and counts the frames each receives from its `last-message = chain` lines. A client still
running at its timeout is killed. The server is stopped with SIGINT (SIGKILL after a few
seconds). Clients are judged by frames, not exit codes (a client that got all its frames
may still fail its own PAUSE/TEARDOWN at shutdown).

Logs: the server's stderr (GST_DEBUG=rtspclient:5,rtspmedia:4) and each client's output
(GST_DEBUG=rtspsrc:5 unless --client-debug '') go to OUT/round-NNNN/; the folder is deleted
when every client of the round got all its frames, kept otherwise.

    scripts/rtsp_start_stress.py BINARY [--clients 1000] [--per-round 4] [--frames 60]
        [--timeout 20] [--width 320 --height 180 --fps 30] [--out /tmp/rtsp-stress]

Exit 0 when every client got all its frames, 1 otherwise.
"""
import argparse, os, shutil, signal, socket, subprocess, sys, time

CHAIN = b"last-message = chain"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(port, server, deadline):
    """A bare TCP connect, closed at once, as soon as the server accepts."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def stop(proc, grace):
    """SIGINT, then SIGKILL after `grace` seconds. Returns (exit code, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(grace), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), True


def read_client(path):
    """(frames, the client's first ERROR line or None)."""
    frames, error = 0, None
    with open(path, "rb") as f:
        for line in f:
            frames += line.count(CHAIN)
            if error is None and line.startswith(b"ERROR:"):
                error = line.decode(errors="replace").strip()
    return frames, error


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", help="the segsynth binary")
    p.add_argument("--clients", type=int, default=1000, help="clients in all (default 1000)")
    p.add_argument("--per-round", type=int, default=4, help="clients started at once per server (default 4)")
    p.add_argument("--frames", type=int, default=60, help="frames each client asks for (num-buffers, default 60)")
    p.add_argument("--timeout", type=float, default=20, help="seconds before a client is killed (default 20)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--server-debug", default="rtspclient:5,rtspmedia:4", help="GST_DEBUG of the server")
    p.add_argument("--client-debug", default="rtspsrc:5", help="GST_DEBUG of the clients ('' for none)")
    p.add_argument("--out", default="/tmp/rtsp-stress", help="folder for the logs")
    a = p.parse_args()
    if a.clients < 1 or a.per_round < 1 or a.frames < 1 or a.timeout <= 0:
        p.error("--clients, --per-round, --frames and --timeout must be positive")

    os.makedirs(a.out, exist_ok=True)
    rounds = (a.clients + a.per_round - 1) // a.per_round
    totals = dict(clients=0, full=0, zero=0, short=0, timeouts=0, client_errors=0,
                  server_not_up=0, server_killed=0)
    bad = []  # (round, client index, frames, log folder)
    errors = {}  # "all frames|short: first ERROR line" -> clients
    started = time.monotonic()
    print(f"rtsp start stress: {a.clients} clients, {a.per_round} per round ({rounds} rounds), "
          f"{a.frames} frames each, {a.width}x{a.height}@{a.fps}, timeout {a.timeout:g} s, logs in {a.out}",
          flush=True)

    for r in range(rounds):
        n = min(a.per_round, a.clients - r * a.per_round)
        rdir = os.path.join(a.out, f"round-{r:04d}")
        os.makedirs(rdir, exist_ok=True)
        port = free_port()
        url = f"rtsp://127.0.0.1:{port}/live"
        t0 = time.monotonic()
        with open(os.path.join(rdir, "server.log"), "wb") as slog:
            env = dict(os.environ, GST_DEBUG=a.server_debug, GST_DEBUG_NO_COLOR="1")
            server = subprocess.Popen(
                [a.binary, "run", "-i", "test:", "-o", url, "--width", str(a.width),
                 "--height", str(a.height), "--fps", str(a.fps), "--stats-every", "0"],
                stdout=slog, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if not wait_for_port(port, server, time.monotonic() + 30):
            code, _ = stop(server, 3)
            totals["server_not_up"] += 1
            print(f"round {r:4d} port {port}: server not up (exit {code}); log kept in {rdir}", flush=True)
            bad.append((r, None, None, rdir))
            continue
        up = time.monotonic() - t0

        cenv = dict(os.environ, GST_DEBUG_NO_COLOR="1")
        if a.client_debug:
            cenv["GST_DEBUG"] = a.client_debug
        else:
            cenv.pop("GST_DEBUG", None)
        clients = []
        for i in range(n):
            path = os.path.join(rdir, f"client-{i}.log")
            with open(path, "wb") as clog:
                proc = subprocess.Popen(
                    ["gst-launch-1.0", "-v", "rtspsrc", f"location={url}", "protocols=tcp", "!",
                     "decodebin", "!", "fakesink", "silent=false", f"num-buffers={a.frames}"],
                    stdout=clog, stderr=subprocess.STDOUT, env=cenv, start_new_session=True)
            clients.append((proc, path, time.monotonic()))

        results = []  # (frames, timed out, exit code, seconds, first ERROR line)
        for proc, path, t in clients:
            timed_out = False
            try:
                code = proc.wait(max(0.0, t + a.timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.kill()
                code = proc.wait()
            frames, error = read_client(path)
            results.append((frames, timed_out, code, time.monotonic() - t, error))
        scode, skilled = stop(server, 5)

        round_ok = True
        for i, (frames, timed_out, code, secs, error) in enumerate(results):
            totals["clients"] += 1
            totals["timeouts"] += timed_out
            if frames >= a.frames:
                totals["full"] += 1
            else:
                round_ok = False
                totals["zero" if frames == 0 else "short"] += 1
                bad.append((r, i, frames, rdir))
            if code != 0 and not timed_out:
                totals["client_errors"] += 1
                key = f"{'all frames' if frames >= a.frames else 'short'}: {error or f'exit {code}'}"
                errors[key] = errors.get(key, 0) + 1
        totals["server_killed"] += skilled
        frames = " ".join(f"{r[0]}{'T' if r[1] else ''}{'E' if r[2] != 0 and not r[1] else ''}"
                          for r in results)
        longest = max(r[3] for r in results)
        print(f"round {r:4d} port {port}: up {up:.2f} s, frames {frames}, slowest client {longest:.1f} s, "
              f"server exit {scode}{' (SIGKILL)' if skilled else ''}"
              f"{'' if round_ok else f'  <-- SHORT OF FRAMES, logs kept in {rdir}'}", flush=True)
        if round_ok:
            shutil.rmtree(rdir, ignore_errors=True)

    wall = time.monotonic() - started
    t = totals
    print(f"\nsummary: {t['clients']} clients in {rounds} rounds, {wall:.0f} s wall ({wall / 60:.1f} min)")
    print(f"  all {a.frames} frames: {t['full']}")
    print(f"  0 frames:            {t['zero']}")
    print(f"  short of frames:     {t['short']}")
    print(f"  timeouts (killed):   {t['timeouts']}")
    print(f"  client exit != 0 without a timeout (frames counted anyway): {t['client_errors']}")
    for key, count in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"    {count:4d} x {key}")
    print(f"  servers not up: {t['server_not_up']}, servers needing SIGKILL: {t['server_killed']}")
    print("  (per-round frames: T = killed at the timeout, E = exit != 0)")
    for r, i, frames, rdir in bad:
        if i is None:
            print(f"  round {r}: server not up; {rdir}/server.log")
        else:
            print(f"  round {r} client {i}: {frames} frames; {rdir}/server.log, {rdir}/client-{i}.log")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
