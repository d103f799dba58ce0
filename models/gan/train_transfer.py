#!/usr/bin/env python3
"""Train a frame-conditioned generator ("structure-preserving texture transfer") and
export it to ONNX for segsynth's `image` generator contract.

What it learns
--------------
Input: a video frame [1, 3, h, w] in [-1, 1]. Output: [1, 3, h, w] in [-1, 1] that is
made of a target texture (patches like those of one photo region) while its low
frequencies (the blurred luminance: the scene's light and large shapes) follow the
frame. A background replaced with it turns into, say, foliage that still has the
room's light and the shapes of the furniture, and changes as the scene changes.

* Generator: a small encoder-decoder. Two 4x4 stride-2 convs (3->16->32), one
  residual block at 1/4 resolution, then two resize-convolution steps (bilinear 2x
  upsample, 3x3 conv; 32->16->16; Odena et al. 2016: no checkerboard) and a 3x3 conv
  to RGB with tanh. Replicated borders, InstanceNorm-free (BatchNorm is folded at
  export). Fully convolutional: any h, w (multiples of 4 come back at the same size).
* Discriminator: a PatchGAN (three 4x4 stride-2 convs, 3->32->64->1) on 64x64
  patches: real ones from the target texture region, fake ones from the generator.
* Losses: non-saturating GAN loss + lambda * L1 between the Gaussian-blurred
  (sigma 3 px) luminance of output and input (lambda 10 by default).
* Frames: random 64x64 crops (random scale 0.5-1, flips) of the photos bundled in
  scikit-image (astronaut, coffee, chelsea, rocket, camera) and
  scikit-learn (china.jpg, flower.jpg): real light and shapes, no download.
* Adam 2e-4 (beta1 0.5), batch 8, fixed seed. Exported with opset 17, input `frame`
  [1, 3, h, w] and output `image` [1, 3, h, w], h and w dynamic.

Command used for the shipped `foliage_transfer` (from the repository root):

    OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv-train/bin/python models/gan/train_transfer.py \
        --texture sklearn:china.jpg --crop 430,315,210,112 --steps 1000 --seed 1 \
        --out models/gan/foliage_transfer.onnx --sample models/gan/foliage_transfer.png

The sample PNG shows three input frames (top) and their outputs (bottom).
"""

import argparse
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fidelity import crop, load_image  # noqa: E402

CROP = 64
FRAMES = ["skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket", "skimage:camera",
          "sklearn:china.jpg", "sklearn:flower.jpg"]


def conv(cin, cout, k, s):
    return nn.Conv2d(cin, cout, k, s, (k - 1) // 2 if s == 1 else 1, padding_mode="replicate")


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(conv(c, c, 3, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  conv(c, c, 3, 1), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.body(x))


class Transfer(nn.Module):
    def __init__(self):
        super().__init__()
        up = lambda cin, cout: [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                conv(cin, cout, 3, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(
            conv(3, 16, 4, 2), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            conv(16, 32, 4, 2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            Residual(32),
            *up(32, 16), *up(16, 16),
            conv(16, 3, 3, 1), nn.Tanh(),
        )

    def forward(self, frame):
        return self.net(frame)


class Patches(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 1, 4, 2, 1),
        )

    def forward(self, x):
        return self.net(x)


def gaussian(sigma=3.0):
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-x * x / (2 * sigma * sigma))
    return k / k.sum()


def blurred_luma(x, k):
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    r = (k.numel() - 1) // 2
    y = F.pad(y, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))


def to_tensor(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 127.5 - 1.0


def random_crops(images, n, gen):
    out = []
    for _ in range(n):
        img = images[int(torch.randint(0, len(images), (1,), generator=gen))]
        _, h, w = img.shape
        scale = 0.5 + 0.5 * float(torch.rand(1, generator=gen))
        size = max(CROP, int(min(h, w) * scale * 0.5))
        y = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - size + 1, (1,), generator=gen))
        c = img[:, y:y + size, x:x + size].unsqueeze(0)
        c = F.interpolate(c, size=(CROP, CROP), mode="bilinear", align_corners=False, antialias=True)[0]
        out.append(c.flip(-1) if float(torch.rand(1, generator=gen)) < 0.5 else c)
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texture", required=True, help="skimage:<name> or sklearn:<file>")
    ap.add_argument("--crop", help="x,y,w,h of the texture region")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--structure", type=float, default=10.0, help="weight of the blurred-luma L1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sample")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    texture = to_tensor(crop(load_image(args.texture), args.crop))
    frames = [to_tensor(load_image(f)) for f in FRAMES]
    k = gaussian()

    g, d = Transfer(), Patches()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits
    t0 = time.time()
    for step in range(1, args.steps + 1):
        x = random_crops(frames, args.batch, gen)
        real = random_crops([texture], args.batch, gen)
        fake = g(x)

        opt_d.zero_grad(set_to_none=True)
        lr_, lf_ = d(real), d(fake.detach())
        loss_d = bce(lr_, torch.ones_like(lr_)) + bce(lf_, torch.zeros_like(lf_))
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        lg_ = d(fake)
        adv = bce(lg_, torch.ones_like(lg_))
        structure = (blurred_luma(fake, k) - blurred_luma(x, k)).abs().mean()
        (adv + args.structure * structure).backward()
        opt_g.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}/{args.steps} loss_d {loss_d.item():.3f} adv {adv.item():.3f} "
                  f"structure {structure.item():.4f} {time.time() - t0:.0f}s", flush=True)

    g.eval()
    if args.sample:
        from PIL import Image

        with torch.no_grad():
            tiles = [F.interpolate(to_tensor(load_image(f)).unsqueeze(0), size=(192, 256), mode="bilinear",
                                   align_corners=False, antialias=True) for f in
                     ("skimage:astronaut", "skimage:coffee", "skimage:chelsea")]
            top = torch.cat(tiles, dim=3)
            bottom = torch.cat([g(t) for t in tiles], dim=3)
            both = torch.cat([top, bottom], dim=2)[0]
        arr = ((both.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(args.sample)
        print(f"sample written to {args.sample}")

    dummy = torch.randn(1, 3, 64, 64)
    torch.onnx.export(g, (dummy,), args.out, input_names=["frame"], output_names=["image"],
                      dynamic_axes={"frame": {2: "h", 3: "w"}, "image": {2: "out_h", 3: "out_w"}},
                      opset_version=17, do_constant_folding=True, dynamo=False)
    import onnx

    onnx.checker.check_model(onnx.load(args.out))
    print(f"ONNX written to {args.out} ({os.path.getsize(args.out)} bytes)")
    try:
        import onnxruntime as ort
    except ImportError:
        return
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.out, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 360, 640)).astype(np.float32)
    out = sess.run(None, {"frame": x})[0]
    with torch.no_grad():
        ref = g(torch.from_numpy(x)).numpy()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        sess.run(None, {"frame": x})
        times.append(time.perf_counter() - t)
    print(f"onnxruntime: 640x360 -> {out.shape}, max |ort - torch| {np.abs(out - ref).max():.1e}, "
          f"median {1000 * np.median(times):.1f} ms on 1 thread")


if __name__ == "__main__":
    main()
