#!/usr/bin/env python3
"""Measure the selfie model's square and landscape variants on real photos at several
aspect ratios, against MediaPipe's own TFLite runtime running the square model.

Usage: python models/measure_variants.py [--tflite-dir .deps/npm/package] [--show DIR]

Real people: the person photos bundled in scikit-image (`astronaut`, a close-up, and
`camera`, a standing cameraman: the only ones in registry packages here). Each photo is
placed on a wider or taller canvas (its edge pixels stretched outward, as a wall behind a
person) at six aspect ratios (9:16, 3:4, 1:1, 4:3, 1.36:1, 16:9), at three positions and
two zooms: 6 frames per photo and ratio, as a pan would give.

Each frame is run the way MediaPipe's runtime does it: the whole frame stretched to the
model input with corner-aligned bilinear sampling, the mask upsampled half-pixel
bilinear, threshold 0.5. Printed per aspect ratio: the mean and worst IoU of the square
and landscape ONNX models against the TFLite square reference, and of landscape
against square. With --show, writes side-by-side PNGs of the worst frames.
"""

import argparse
import os

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from skimage import data

ASPECTS = [("9:16", 9 / 16), ("3:4", 3 / 4), ("1:1", 1.0), ("4:3", 4 / 3), ("1.36:1", 1.36), ("16:9", 16 / 9)]


def corner_resize(img, h, w):
    """Corner-aligned bilinear (src = dst * S/D), MediaPipe's input stretch."""
    sh, sw = img.shape[:2]
    ys = np.minimum(np.arange(h) * sh / h, sh - 1)
    xs = np.minimum(np.arange(w) * sw / w, sw - 1)
    return bilinear(img, ys, xs)


def half_pixel_resize(img, h, w):
    sh, sw = img.shape[:2]
    ys = np.clip((np.arange(h) + 0.5) * sh / h - 0.5, 0, sh - 1)
    xs = np.clip((np.arange(w) + 0.5) * sw / w - 0.5, 0, sw - 1)
    return bilinear(img, ys, xs)


def bilinear(img, ys, xs):
    img = img.astype(np.float32)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, img.shape[0] - 1)
    x1 = np.minimum(x0 + 1, img.shape[1] - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    if img.ndim == 3:
        fy, fx = fy[..., None], fx[..., None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def frames(photo, aspect):
    """Six frames of one photo at one aspect ratio: 3 positions x 2 zooms."""
    ph, pw = photo.shape[:2]
    out = []
    for zoom in (1.0, 0.75):
        h = int(round(ph / zoom)) if aspect >= 1 else int(round(pw / aspect / zoom))
        w = int(round(h * aspect))
        h, w = max(h, ph), max(w, pw)
        for pos in (0.0, 0.5, 1.0):
            x0 = int(round((w - pw) * pos))
            y0 = h - ph  # the person stands on the bottom edge
            padded = np.pad(photo, ((y0, 0), (x0, w - pw - x0), (0, 0)), mode="edge")
            out.append(padded)
    return out


class Runner:
    def __init__(self, tflite_dir, models_dir):
        self.ref = Interpreter(model_path=os.path.join(tflite_dir, "selfie_segmentation.tflite"))
        self.ref.allocate_tensors()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.square = ort.InferenceSession(os.path.join(models_dir, "selfie_segmentation.onnx"), so)
        self.land = ort.InferenceSession(os.path.join(models_dir, "selfie_segmentation_landscape.onnx"), so)

    def tflite(self, img):
        tin = self.ref.get_input_details()[0]
        tout = self.ref.get_output_details()[0]
        _, h, w, _ = tin["shape"]
        self.ref.set_tensor(tin["index"], (corner_resize(img, h, w) / 255.0)[None].astype(np.float32))
        self.ref.invoke()
        return self.upsample(self.ref.get_tensor(tout["index"]), img)

    def onnx(self, sess, img):
        i = sess.get_inputs()[0]
        _, h, w, _ = i.shape
        x = (corner_resize(img, h, w) / 255.0)[None].astype(np.float32)
        return self.upsample(sess.run(None, {i.name: x})[0], img)

    @staticmethod
    def upsample(out, img):
        return half_pixel_resize(out[0, :, :, 0], img.shape[0], img.shape[1]) > 0.5


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflite-dir", default=".deps/npm/package")
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--show", help="write the worst landscape frame per aspect here")
    args = ap.parse_args()
    r = Runner(args.tflite_dir, args.models_dir)
    photos = {"astronaut": data.astronaut(), "camera": np.stack([data.camera()] * 3, -1)}
    print(f"{'aspect':>7} {'frames':>6}  {'square vs ref':>17}  {'landscape vs ref':>17}  {'landscape vs square':>19}")
    print(f"{'':>7} {'':>6}  {'mean':>8} {'worst':>8}  {'mean':>8} {'worst':>8}  {'mean':>9} {'worst':>9}")
    for label, aspect in ASPECTS:
        sq, la, ls = [], [], []
        worst = None
        for name, photo in photos.items():
            for f in frames(photo, aspect):
                ref = r.tflite(f)
                s = r.onnx(r.square, f)
                l = r.onnx(r.land, f)
                sq.append(iou(s, ref))
                la.append(iou(l, ref))
                ls.append(iou(l, s))
                if worst is None or la[-1] < worst[0]:
                    worst = (la[-1], f, ref, l)
        print(
            f"{label:>7} {len(sq):>6}  {np.mean(sq):8.3f} {min(sq):8.3f}  {np.mean(la):8.3f} {min(la):8.3f}  "
            f"{np.mean(ls):9.3f} {min(ls):9.3f}"
        )
        if args.show:
            os.makedirs(args.show, exist_ok=True)
            _, f, ref, l = worst
            tint = lambda m: (f * 0.5 + np.where(m[..., None], [0, 255, 0], [255, 0, 0]) * 0.5).astype(np.uint8)
            side = np.concatenate([f, tint(ref), tint(l)], axis=1)
            Image.fromarray(side).save(os.path.join(args.show, f"worst-{label.replace(':', 'x')}.png"))


if __name__ == "__main__":
    main()
