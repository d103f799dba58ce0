#!/usr/bin/env python3
"""Media mutation campaign for `segsynth process` (the test command runs a short version).

Takes real clips, flips, deletes and duplicates bytes at N seeded positions each,
truncates them, and splices them (the head of one clip joined to the tail of another);
every run must end within the time bound with exit 0, 1 or 3, without a panic, and a
failed run must leave no output or temporary file behind. Inputs per clip:
3 * positions + truncations + splices (splices need two clips or more).

    tests/fuzz/mutate_inputs.py BINARY WORKDIR CLIP... [--positions 100] [--timeout 60]
"""
import argparse, os, random, subprocess, sys, time, collections

p = argparse.ArgumentParser()
p.add_argument("binary"); p.add_argument("workdir"); p.add_argument("clips", nargs="+")
p.add_argument("--positions", type=int, default=100)
p.add_argument("--truncations", type=int, default=20)
p.add_argument("--splices", type=int, default=50)
p.add_argument("--timeout", type=float, default=60)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
os.makedirs(a.workdir, exist_ok=True)
rng = random.Random(a.seed)
# Splices draw from their own generator, so the other mutations stay where they were.
splice_rng = random.Random(f"splice-{a.seed}")
clips = {clip: open(clip, "rb").read() for clip in a.clips}
codes = collections.Counter(); panics = hangs = leftovers = 0; runs = 0; slowest = 0.0
slowest_input = ""
bad = []

def mutations(clip, data):
    for _ in range(a.positions):
        at = rng.randrange(len(data)); n = rng.randint(1, 64)
        yield "flip", at, data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        yield "delete", at, data[:at] + data[at + n:]
        yield "duplicate", at, data[:at] + data[at:at + n] + data[at:]
    for _ in range(a.truncations):
        at = rng.randrange(len(data))
        yield "truncate", at, data[:at]
    others = [c for c in a.clips if c != clip]
    for _ in range(a.splices if others else 0):
        other = splice_rng.choice(others); tail = clips[other]
        at = splice_rng.randrange(len(data)); at2 = splice_rng.randrange(len(tail))
        yield "splice", f"{at}+{os.path.basename(other)}@{at2}", data[:at] + tail[at2:]

for clip in a.clips:
    data = clips[clip]
    ext = os.path.splitext(clip)[1]
    for kind, at, mutated in mutations(clip, data):
        runs += 1
        src = os.path.join(a.workdir, "in" + ext); out = os.path.join(a.workdir, "out.mp4")
        open(src, "wb").write(mutated)
        started = time.time()
        try:
            r = subprocess.run([a.binary, "process", src, "-o", out, "-q", "--overwrite"],
                               capture_output=True, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            hangs += 1; bad.append(f"HANG {clip} {kind}@{at}"); continue
        took = time.time() - started
        if took > slowest: slowest, slowest_input = took, f"{clip} {kind}@{at}"
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
print(f"  slowest: {slowest_input}")
for b in bad[:20]: print(" ", b)
sys.exit(1 if panics or hangs or leftovers else 0)
