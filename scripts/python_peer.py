#!/usr/bin/env python3
"""A Python peer of `segsynth process --content background=blur`, for issue 23's "at
least 4x the best Python peer" comparison. It does the same job the way a careful Python
developer would, with the libraries such tools use:

- decode with OpenCV (its bundled FFmpeg), frames as BGR arrays;
- segment with the same model segsynth runs by default, MediaPipe's selfie segmentation,
  in TFLite (LiteRT with XNNPACK; `.deps/npm/package/selfie_segmentation.tflite`, which
  `./segsynth.sh setup` fetches), with the same temporal smoothing (0.6);
- blur the background the cheap way (a box blur at quarter size, scaled back up) and
  blend it under the person with OpenCV;
- encode with the same x264 settings as segsynth and its benchmark's transcode
  (veryfast, CRF 23, no VBV) through `gst-launch-1.0`, from raw I420 on a pipe.

The peer drops the audio, which only makes it faster. It prints the frames, the wall time
(from the first frame read to the encoder's end) and the frame rate on one line.
`./segsynth.sh setup` installs what it needs into .venv; `segsynth bench --peer
.venv/bin/python` runs it in every round beside the transcode and segsynth.

    .venv/bin/python scripts/python_peer.py IN.mp4 OUT.mp4 [--threads N]
"""

import argparse
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

MODEL = Path(__file__).resolve().parent.parent / ".deps/npm/package/selfie_segmentation.tflite"


def encoder(out, w, h, fps):
    rate = Fraction(fps).limit_denominator(1001)
    caps = f"format=i420 width={w} height={h} framerate={rate.numerator}/{rate.denominator}"
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "blocksize=%d" % (w * h * 3 // 2), "!",
           "rawvideoparse", *caps.split(), "!", "x264enc", "speed-preset=veryfast",
           "pass=qual", "quantizer=23", "vbv-buf-capacity=0", "!", "h264parse", "!", "mp4mux",
           "!", "filesink", f"location={out}"]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=2, help="TFLite (XNNPACK) threads")
    args = ap.parse_args()
    if not MODEL.is_file():
        sys.exit(f"{MODEL} is missing: run ./segsynth.sh setup first")
    cap = cv2.VideoCapture(args.input)
    if not cap.isOpened():
        sys.exit(f"cannot open {args.input}")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    net = Interpreter(model_path=str(MODEL), num_threads=args.threads)
    net.allocate_tensors()
    inp, outp = net.get_input_details()[0]["index"], net.get_output_details()[0]["index"]
    enc = encoder(args.output, w, h, fps)
    mask, frames, start = None, 0, time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        small = cv2.cvtColor(cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        net.set_tensor(inp, (small.astype(np.float32) / 255.0)[None])
        net.invoke()
        m = net.get_tensor(outp)[0, :, :, 0]
        mask = m if mask is None else 0.6 * mask + 0.4 * m
        person = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        quarter = cv2.resize(bgr, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        blurred = cv2.resize(cv2.blur(quarter, (17, 17)), (w, h), interpolation=cv2.INTER_LINEAR)
        out = cv2.blendLinear(bgr, blurred, person, 1.0 - person)
        enc.stdin.write(cv2.cvtColor(out, cv2.COLOR_BGR2YUV_I420).tobytes())
        frames += 1
    enc.stdin.close()
    if enc.wait() != 0:
        sys.exit("the encoder failed")
    wall = time.perf_counter() - start
    print(f"python peer: {frames} frames in {wall:.2f} s, {frames / wall:.1f} fps")


if __name__ == "__main__":
    main()
