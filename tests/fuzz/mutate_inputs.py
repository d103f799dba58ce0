#!/usr/bin/env python3
"""Media mutation campaign for `segsynth process` (the test command runs a short version).

Takes real clips, flips, deletes and duplicates bytes at N seeded positions each, and
truncates them; every run must end within the time bound with exit 0, 1 or 3, without a
panic, and a failed run must leave no output or temporary file behind.

    tests/fuzz/mutate_inputs.py BINARY WORKDIR CLIP... [--positions 100] [--timeout 60]
"""
import argparse, os, random, subprocess, sys, time, collections

p = argparse.ArgumentParser()
p.add_argument("binary"); p.add_argument("workdir"); p.add_argument("clips", nargs="+")
p.add_argument("--positions", type=int, default=100)
p.add_argument("--truncations", type=int, default=20)
p.add_argument("--timeout", type=float, default=60)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
os.makedirs(a.workdir, exist_ok=True)
rng = random.Random(a.seed)
codes = collections.Counter(); panics = hangs = leftovers = 0; runs = 0; slowest = 0.0
bad = []

def mutations(data):
    for _ in range(a.positions):
        at = rng.randrange(len(data)); n = rng.randint(1, 64)
        yield "flip", at, data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        yield "delete", at, data[:at] + data[at + n:]
        yield "duplicate", at, data[:at] + data[at:at + n] + data[at:]
    for _ in range(a.truncations):
        at = rng.randrange(len(data))
        yield "truncate", at, data[:at]

for clip in a.clips:
    data = open(clip, "rb").read()
    ext = os.path.splitext(clip)[1]
    for kind, at, mutated in mutations(data):
        runs += 1
        src = os.path.join(a.workdir, "in" + ext); out = os.path.join(a.workdir, "out.mp4")
        open(src, "wb").write(mutated)
        started = time.time()
        try:
            r = subprocess.run([a.binary, "process", src, "-o", out, "-q", "--overwrite"],
                               capture_output=True, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            hangs += 1; bad.append(f"HANG {clip} {kind}@{at}"); continue
        slowest = max(slowest, time.time() - started)
        codes[r.returncode] += 1
        if "panicked" in r.stderr or "internal error" in r.stderr or r.returncode not in (0, 1, 3):
            panics += 1; bad.append(f"exit {r.returncode} {clip} {kind}@{at}: {r.stderr.strip()[-300:]}")
        left = [f for f in os.listdir(a.workdir) if f.startswith(".")]
        if left or (r.returncode == 1 and os.path.exists(out)):
            leftovers += 1; bad.append(f"LEFTOVER {left} {clip} {kind}@{at}")
            for f in left: os.remove(os.path.join(a.workdir, f))
        if os.path.exists(out): os.remove(out)

print(f"{runs} mutated inputs, {panics} panics, {hangs} hangs, {leftovers} runs left files behind; "
      f"exit codes {dict(sorted(codes.items()))}; slowest run {slowest:.1f} s")
for b in bad[:20]: print(" ", b)
sys.exit(1 if panics or hangs or leftovers else 0)
