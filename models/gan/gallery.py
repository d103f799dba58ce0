#!/usr/bin/env python3
"""Before/after frames for the README: the astronaut photo with its background
replaced by each shipped generator, and the frame-conditioned one on two frames.

Usage: python models/gan/gallery.py OUT.jpg

The mask is the selfie model's (square, run MediaPipe-style: corner-aligned stretch
to 256x256, half-pixel bilinear upsample), blended softly; spatial generators get
seeded noise, `image` generators the frame itself (and seeded noise when they take it). Tiles are 256x256.
"""

import os
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw
from skimage import data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fidelity import onnx_sample, transfer_sample  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
TILE = 256


def resize(img, h, w):
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def person_mask(rgb):
    sess = ort.InferenceSession(os.path.join(MODELS, "selfie_segmentation.onnx"))
    x = resize(rgb, 256, 256).astype(np.float32)[None] / 255.0
    m = sess.run(None, {sess.get_inputs()[0].name: x})[0][0, :, :, 0]
    up = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize(rgb.shape[1::-1], Image.BILINEAR))
    return up.astype(np.float32)[..., None] / 255.0


def manifest(name):
    text = open(os.path.join(HERE, f"{name}.toml")).read()
    return lambda key: (re.search(rf'^{key}\s*=\s*"?([^"\n]*)"?', text, re.M) or [None, None])[1]


def layer(name, frame):
    get = manifest(name)
    path = os.path.join(HERE, get("file"))
    if get("contract") == "image":
        rgb = transfer_sample(path, frame, int(get("scale") or 16), 7)
    else:
        rgb = onnx_sample(path, int(get("noise_channels")), int(get("scale")), TILE, 7, int(get("border") or 0))
    return resize(rgb, TILE, TILE)


def main(out):
    frames = [resize(data.astronaut(), TILE, TILE), resize(data.coffee()[:, 100:500], TILE, TILE)]
    names = sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".toml"))
    tiles, labels = [frames[0]], ["input"]
    mask = person_mask(frames[0])
    for name in names:
        content = layer(name, frames[0])
        tiles.append((frames[0] * mask + content * (1 - mask)).round().astype(np.uint8))
        labels.append(name)
    # The frame-conditioned generators also on a second scene: the output follows it.
    for name in names:
        if manifest(name)("contract") == "image":
            tiles += [frames[1], layer(name, frames[1])]
            labels += ["another frame", f"{name} (whole layer)"]
    cols = 4
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (t, label) in enumerate(zip(tiles, labels)):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + 18)
        sheet.paste(Image.fromarray(t), (x, y + 18))
        draw.text((x + 4, y + 3), label, fill="black")
    sheet.save(out, quality=85)
    print(f"wrote {out} ({len(tiles)} tiles)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/generators.jpg")
