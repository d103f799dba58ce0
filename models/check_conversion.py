#!/usr/bin/env python3
"""Compare a .tflite selfie-segmentation model with its ONNX conversion.

Usage: python models/check_conversion.py TFLITE ONNX

Runs the ai-edge-litert interpreter and onnxruntime on the same NHWC inputs
(seeded uniform noise in [0,1] plus skimage's astronaut photo and a smooth
gradient, resized to the model input), prints max_abs_diff per input and
overall, and exits 1 if the overall max abs diff is >= 1e-3.
"""

import sys

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from skimage import data
from skimage.transform import resize

TOL = 1e-3


def make_inputs(h, w):
    rng = np.random.default_rng(1234)
    inputs = {}
    for k in range(3):
        inputs[f"uniform{k}"] = rng.uniform(0.0, 1.0, (1, h, w, 3)).astype(np.float32)
    astro = resize(data.astronaut(), (h, w), anti_aliasing=True)  # float in [0,1]
    inputs["astronaut"] = astro[None].astype(np.float32)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    grad = np.stack([yy, xx, 0.5 * (yy + xx)], axis=-1)
    inputs["gradient"] = grad[None].astype(np.float32)
    return inputs


def main(argv):
    if len(argv) != 3:
        print("usage: check_conversion.py TFLITE ONNX", file=sys.stderr)
        return 2
    interp = Interpreter(model_path=argv[1])
    interp.allocate_tensors()
    tin = interp.get_input_details()[0]
    tout = interp.get_output_details()[0]
    sess = ort.InferenceSession(argv[2], providers=["CPUExecutionProvider"])
    oin, oout = sess.get_inputs()[0], sess.get_outputs()[0]
    print(f"tflite: {tin['name']}{[int(d) for d in tin['shape']]} -> {tout['name']}{[int(d) for d in tout['shape']]}")
    print(f"onnx:   {oin.name}{oin.shape} -> {oout.name}{oout.shape}")
    _, h, w, _ = (int(d) for d in tin["shape"])

    overall = 0.0
    for name, x in make_inputs(h, w).items():
        interp.set_tensor(tin["index"], x)
        interp.invoke()
        ref = interp.get_tensor(tout["index"]).copy()
        got = sess.run([oout.name], {oin.name: x})[0]
        if got.shape != ref.shape:
            print(f"{name}: shape mismatch {got.shape} vs {ref.shape}")
            return 1
        diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
        overall = max(overall, diff)
        print(f"{name}: max_abs_diff={diff:.3e} (mask mean={ref.mean():.4f})")
    ok = overall < TOL
    print(f"overall: max_abs_diff={overall:.3e} {'OK' if ok else 'FAIL'} (tol {TOL:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
