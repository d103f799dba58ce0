#!/usr/bin/env python3
"""Train a small fully convolutional texture GAN and export its generator to ONNX.

What it does
------------
Trains a spatial texture GAN in the style of Jetchev et al. 2016 ("Texture
Synthesis with Spatial Generative Adversarial Networks", SGAN) on random
80x80 crops of ONE photo that ships inside a Python package (scikit-image or
scikit-learn), so no download is needed.

* Generator (shift-invariant, no upsampling): spatial noise [1, 256*W, h, w]
  (standard normal; W = --white, default 4, so 1024 channels) becomes W white-noise
  fields at full resolution (16x16 cells, one fixed permutation), a fixed a-trous
  pyramid adds --levels smoothings of each (default 5: cubic B-spline, taps 1..16 px
  apart; sigma about 1 to 18.5 px), every field scaled back to unit variance up to
  the borders, and a small network at full resolution (1x1 conv to --width 16,
  --convs 1 3x3 conv to --narrow 16 with zero padding, 1x1 to 3; BatchNorm,
  LeakyReLU, tanh) maps the W * (levels + 1) fields to RGB -> image [1, 3, 16h, 16w]
  in [-1, 1]. The pyramid is computed row-interleaved (see `InterleavedPyramid`), which gives
  the same numbers as the plain cascade but lets onnxruntime use its blocked
  depthwise kernels.
  Why: a generator that upsamples a lattice of noise gives every output pixel a
  place relative to the lattice, and its statistics repeat with it (the grid).
  Stride-2 transposed convolutions drew it as a checkerboard (grid ratio 10-34);
  resize-convolution with per-pixel noise injection still left 1.06-1.43 (peaks at
  the 8-pixel and 2-pixel periods). Convolutions of the whole plane on stationary
  noise give a stationary image: 0.89-1.10 here. Any h, w works: 23x40 noise gives
  a 368x640 image.
  Cost (onnxruntime 1.31, one thread, this 2-core AMD EPYC, 640x368 layer as segsynth
  runs it: noise [1, C, 25, 42] -> 672x400, median of 5 runs after a warm-up):
  the earlier generator (W 8, 5 levels, 1x1 48->32, 3x3 32->16, 3x3 16->16,
  replicate padding, plain-layout pyramid) 118-145 ms; the default (W 4, 5 levels,
  16/16, one 3x3) 37-51 ms; --levels 4 34-44 ms (the spread is other work on the
  machine; the lower figures are the quiet ones). A second 3x3 conv or --width 24
  costs about 12 ms more. In the plain layout the W = 4 pyramid alone took about
  29 ms (its depthwise convolutions on 4 channels, padded to onnxruntime's 16-channel
  blocks); row-interleaved it takes about 10 ms.
* Discriminator: fully convolutional patch discriminator (four 4x4 stride-2
  convs 3->32->64->128->1, LeakyReLU 0.2, BatchNorm in the middle layers),
  one real/fake logit per patch.
* Training: Adam (G lr 2e-4, D lr --lr-d, betas 0.5/0.999), batch 16, fake
  128x128 images against real 80x80 crops, non-saturating BCE loss with soft real
  labels (0.9), fixed seed (torch, numpy, random). With --swd S the generator's
  loss adds S times a sliced Wasserstein distance between 5x5 patches of the fake
  images and of the real crops, at full resolution and box-averaged by 2 and 4
  (`patch_swd_loss`; Heitz et al. 2021).
* Checkpoints: --checkpoints evenly spaced over the second half of the steps (and
  the step where --max-seconds ran out); the one whose 256x256 sample has the
  smallest patch SWD to the training region (models/gan/fidelity.py) is kept.
* After training the BatchNorm running statistics of the generator are
  re-estimated on fresh noise, the generator is put in eval mode and exported
  to ONNX (opset 17) with input `noise` [1, 256*W, h, w] and output `image`
  [1, 3, 16h, 16w], h and w dynamic; the grid ratio of the export is printed.
  The manifest's `noise_channels` and [input] shape must be 256*W.

Environment (from the repository root)
--------------------------------------
    python3 -m venv .venv-train
    .venv-train/bin/pip install torch numpy onnx scikit-image scikit-learn pillow
    # optional, for the ONNX check and the grid ratio at the end:
    .venv-train/bin/pip install onnxruntime

Commands used for the shipped generators (from the repository root)
---------------------------------------------------------------------
foliage and stars (this version of the script) were trained on one NVIDIA H200,
15 runs sharing it at a time (several textures, rates, levels, --swd weights and
seeds; per texture the run with the lowest patch SWD ratio from fidelity.py under
the grid bound was kept). One step took about 57 ms there with the GAN loss alone
and 113 ms with --swd (15 runs at once). On this 2-core CPU (--device cpu, the
default) one step of the --levels 4 generator takes about 0.3 s with the GAN
loss alone (--threads 2, machine otherwise quiet; 1.1 s while a cargo build ran),
about 25 min for 5000 steps; --swd makes a CPU step several times slower. stone was
trained on this CPU.

    python3 models/gan/train_texture_gan.py --device cuda --max-seconds 330 --steps 5000 \
       --checkpoints 12 --threads 1 --levels 4 --lr-d 5e-5 \
       --image sklearn:china.jpg --crop 430,315,210,112 \
       --out models/gan/foliage.onnx --sample models/gan/foliage.png      # 286 s
    python3 models/gan/train_texture_gan.py --device cuda --max-seconds 240 --steps 3000 \
       --checkpoints 12 --threads 1 --swd 30 --lr-d 1e-4 \
       --image skimage:hubble_deep_field \
       --out models/gan/stars.onnx --sample models/gan/stars.png          # 240 s, step 2126
    python3 models/gan/train_texture_gan.py --max-seconds 960 --steps 1300 \
       --checkpoints 12 --seed 1 --threads 2 --levels 4 --lr-d 1e-4 \
       --image skimage:gravel \
       --out models/gan/stone.onnx --sample models/gan/stone.png          # CPU, 961 s, step 1162

(--max-seconds makes the last checkpoints depend on the machine's speed.) A petals
generator (sklearn:flower.jpg, crop 212,127,190,190, the dahlia's centre) was dropped:
none of the cheaper runs reached a patch SWD ratio of 2.0 on it (best 3.43; the earlier,
slower one had 5.93). The crop is one flower rather than a repeating texture.

(see the `training_command` entry of each models/gan/<name>.toml for the
exact command of each generator.)

Images: `skimage:<name>` is skimage.data.<name>() (only the images bundled
with scikit-image work offline, e.g. astronaut, brick, chelsea, coffee,
grass, gravel, rocket; gray images are repeated into 3 channels) and
`sklearn:<file>` is one of sklearn.datasets.load_sample_images()
(china.jpg, flower.jpg).  `--crop x,y,w,h` selects a region of it.
"""

import argparse
import os
import random
import time

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fidelity import crop, fidelity, grid_ratio, load_image, onnx_sample  # noqa: E402

SCALE = 16  # pixels per noise cell: the input [B, C, h, w] gives a 16h x 16w image
# The earlier generators' fields, still those of train_transfer.py (`Pyramid`):
WHITE = 8  # independent white-noise fields at full resolution
LEVELS = 5  # a-trous smoothing levels of each field
NOISE_CHANNELS = WHITE * SCALE * SCALE  # 2048
CROP = 80  # real training crops
NOISE_SIZE = 8  # fake training images are 128x128
B3 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)  # the cubic B-spline taps


def border_scales(levels, reach=None):
    """Per level (0 = the noise itself), 1/sqrt of the variance that the zero-padded
    a-trous cascade (in 1-D) leaves at distance t = 0..reach from a border of a long
    line of unit white noise: [levels + 1, reach + 1]. Exact for planes at
    least 2 * reach + 1 wide (one border within reach at a time); on smaller ones the two
    borders' factors multiply."""
    if reach is None:
        reach = max(1, 2 * sum(2 ** j for j in range(levels)))
    n = 4 * reach + 8
    rows, x = [np.ones(reach + 1)], np.eye(n)
    for j in range(levels):
        d = 2 ** j
        k = np.zeros(4 * d + 1)
        k[::d] = B3
        x = np.stack([np.convolve(r, k, mode="same") for r in x])
        var = (x * x).sum(0)  # the response at each position to every impulse
        rows.append(1 / np.sqrt(var[:reach + 1]))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


class Pyramid(nn.Module):
    """(The earlier texture generators' pyramid, used by train_transfer.py; WHITE = 8,
    LEVELS = 5, any H, W.) Stationary multi-scale noise from full-resolution white
    noise [B, WHITE, H, W]:
    the noise itself and LEVELS smoothings of it by the a-trous cascade (the cubic
    B-spline [1,4,6,4,1]/16 in 2-D, its taps 1, 2, 4, 8, 16 pixels apart; standard
    deviations about 1, 2.2, 4.6, 9.2 and 18.5 pixels), each scaled to unit variance.

    Every step is a convolution of the whole plane, so no output pixel has a place on a
    coarser lattice: the statistics are the same at every pixel (no grid). The zero
    padding of each step lowers the variance within 62 pixels of a border; a row and a
    column factor looked up by the distance to the nearest border (`border_scales`)
    restore it."""

    def __init__(self):
        super().__init__()
        k = torch.tensor(B3)
        self.register_buffer("kernel", torch.outer(k, k).view(1, 1, 5, 5).repeat(WHITE, 1, 1, 1))
        table = border_scales(LEVELS)
        self.reach = table.shape[1] - 1
        self.register_buffer("table", table.repeat_interleave(WHITE, 0))  # [WHITE*(LEVELS+1), reach+1]

    def _factors(self, ones):
        """[C, side] factors along one axis, from a vector of ones as long as it."""
        i = torch.cumsum(ones, 0) - 1
        near = torch.minimum(i, i[-1] - i).clamp(max=self.reach).long()
        far = torch.maximum(i, i[-1] - i).clamp(max=self.reach).long()
        return self.table[:, near] * self.table[:, far] / self.table[:, self.reach:]

    def forward(self, n):
        out, x = [n], n
        for j in range(LEVELS):
            d = 2 ** j
            x = F.conv2d(x, self.kernel, padding=2 * d, dilation=d, groups=WHITE)
            out.append(x)
        fx = self._factors(torch.ones_like(n[0, 0, 0, :])).unsqueeze(0).unsqueeze(2)  # [1,C,1,W]
        fy = self._factors(torch.ones_like(n[0, 0, :, 0])).unsqueeze(0).unsqueeze(3)  # [1,C,H,1]
        return torch.cat(out, 1) * fx * fy


class InterleavedPyramid(nn.Module):
    """Stationary multi-scale noise from the noise input [B, white*256, h, w]: `white`
    full-resolution white-noise fields [16h, 16w], and `levels` smoothings of each by
    the a-trous cascade (the cubic B-spline [1,4,6,4,1]/16 in 2-D, its taps 1, 2, 4, 8,
    ... pixels apart; standard deviations about 1, 2.2, 4.6, 9.2 and 18.5 pixels), each
    scaled to unit variance -> [B, white * (levels + 1), 16h, 16w], level-major.

    Every step is a convolution of the whole plane, so no output pixel has a place on a
    coarser lattice: the statistics are the same at every pixel (no grid). The zero
    padding lowers the variance near a border (within 2 * (2^levels - 1) pixels); a
    factor per level, the product of a row and a column factor looked up by the
    distance to the nearest border (`border_scales`), restores it.

    Layout (the same sums as the plain cascade, arranged for a CPU): the fields are held
    row-interleaved, [B, white*S, 16h/S, 16w] with channel (field, y mod S) (S = 4), so
    a depthwise convolution works on white*S channels (onnxruntime's blocked kernels
    want 16; on 4 or 8 channels they ran 6-8x slower per pixel). Each 5x5 step is a
    1x5 pass (depthwise, dilation d) and a 5x1 pass: depthwise with dilation d/S when
    S divides d, else a small polyphase convolution across the S phases (fixed weights:
    the same B-spline taps). The input is read as those interleaved fields by a plain
    reshape (no copy): a fixed permutation of i.i.d. noise, which is i.i.d. white noise
    at every pixel (generators exported before used a depth-to-space first; relayout.py
    drops it from them), and the fields are put back in plain order once, after the
    last level."""

    def __init__(self, white, levels, interleave=4):
        super().__init__()
        S = interleave
        assert SCALE % S == 0
        self.white, self.levels, self.S = white, levels, S
        k = torch.tensor(B3)
        C = white * S
        self.register_buffer("kh", k.view(1, 1, 1, 5).repeat(C, 1, 1, 1))
        self.register_buffer("kv", k.view(1, 1, 5, 1).repeat(C, 1, 1, 1))
        for j in range(levels):
            d = 2 ** j
            if d % S:
                # output phase r at row Y takes input phase q at row Y + dy: pixel offset
                # t = dy*S + q - r, a tap of the B-spline when t = d*i, |i| <= 2
                P = (2 * d + S - 1) // S
                w = torch.zeros(S, S, 2 * P + 1, 1)
                for r in range(S):
                    for q in range(S):
                        for dy in range(-P, P + 1):
                            t = dy * S + q - r
                            if t % d == 0 and abs(t // d) <= 2:
                                w[r, q, dy + P, 0] = B3[t // d + 2]
                self.register_buffer(f"poly{j}", w.repeat(white, 1, 1, 1))
        table = border_scales(levels)
        self.reach = table.shape[1] - 1
        self.register_buffer("table", table)  # [levels+1, reach+1]

    def _factors(self, ones):
        """[levels+1, side] factors along one axis, from a vector of ones as long as it."""
        i = torch.cumsum(ones, 0) - 1
        near = torch.minimum(i, i[-1] - i).clamp(max=self.reach).long()
        far = torch.maximum(i, i[-1] - i).clamp(max=self.reach).long()
        return self.table[:, near] * self.table[:, far] / self.table[:, self.reach:]

    def smooth(self, x, j):
        """Level j of the cascade (the 5x5 B-spline, taps 2^j pixels apart, zero padding)
        on row-interleaved fields [B, white*S, rows / S, cols]."""
        S, d = self.S, 2 ** j
        x = F.conv2d(x, self.kh, padding=(0, 2 * d), dilation=(1, d), groups=self.white * S)
        if d % S == 0:
            return F.conv2d(x, self.kv, padding=(2 * d // S, 0), dilation=(d // S, 1), groups=self.white * S)
        poly = getattr(self, f"poly{j}")
        return F.conv2d(x, poly, padding=(poly.shape[2] // 2, 0), groups=self.white)

    def forward(self, noise):
        S, W = self.S, self.white
        C = W * S
        b, _, h, w = noise.shape
        # the i.i.d. noise read in place as the row-interleaved fields (a permutation)
        x = noise.reshape(b, C, h * (SCALE // S), w * SCALE)  # [B, (field, row phase), rows / S, cols]
        fx = self._factors(torch.ones_like(x[0, 0, 0, :]))  # [L+1, cols]
        fy = self._factors(torch.ones_like(x[0, 0, :, 0]).repeat(S))  # [L+1, rows]
        fy = fy.reshape(self.levels + 1, -1, S).transpose(1, 2)  # [L+1, S, rows / S]
        out = [x.reshape(b, W, S, x.shape[2], x.shape[3])]
        for j in range(self.levels):
            x = self.smooth(x, j)
            scale = fy[j + 1].unsqueeze(2) * fx[j + 1].view(1, 1, -1)  # [S, rows / S, cols]
            out.append(x.reshape(b, W, S, x.shape[2], x.shape[3]) * scale)
        y = torch.cat(out, 1)  # [B, fields, S, rows / S, cols]
        return y.transpose(2, 3).reshape(b, y.shape[1], -1, y.shape[4])


class Generator(nn.Module):
    """A shift-invariant texture generator: the noise input [B, white*256, h, w] becomes
    `white` full-resolution white-noise fields by a reshape (a permutation of
    independent samples: still white noise), the Pyramid adds `levels` smoothings of
    each, and a small convolutional network at full resolution maps the
    white * (levels + 1) fields to RGB: a 1x1 conv to `width`, `convs` 3x3 convs
    (the first to `narrow`, zero padding), a 1x1 conv to 3; BatchNorm, LeakyReLU, tanh.

    Why not upsampling: a generator that upsamples a lattice of noise gives every
    output pixel a position relative to that lattice, and its statistics repeat with
    the lattice (the grid). Transposed convolutions drew it as a checkerboard (grid ratio
    10-34 for the first generators), resize-convolution with per-pixel noise injection
    still left 1.13-1.37. Here every layer is a convolution of the whole plane and the
    input is stationary, so the output is stationary too: the expected power spectrum
    has no peaks at the cell frequencies (grid ratio about 1)."""

    def __init__(self, white=4, levels=5, width=16, narrow=16, convs=1):
        super().__init__()
        self.white = white
        self.noise_channels = white * SCALE * SCALE
        self.pyramid = InterleavedPyramid(white, levels)
        fields = white * (1 + levels)
        layers = [nn.Conv2d(fields, width, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for _ in range(convs):
            layers += [nn.Conv2d(c, narrow, 3, 1, 1), nn.BatchNorm2d(narrow), nn.LeakyReLU(0.2, inplace=True)]
            c = narrow
        layers.append(nn.Conv2d(c, 3, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, noise):
        return torch.tanh(self.net(self.pyramid(noise)))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32, 64, 4, 2, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(128, 1, 4, 2, 1),
        )

    def forward(self, x):
        return self.net(x)


def init_weights(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def patch_swd_loss(fake, real, gen, k=5, scales=(1, 2, 4), n=4096, directions=64):
    """Sliced Wasserstein distance between the kxk patch distributions of fake and real
    images (Heitz et al. 2021, "A sliced Wasserstein loss for neural texture synthesis",
    here on pixels), at full resolution and on 2x2 and 4x4 box-averaged copies: n
    random patches per side, `directions` random unit projections, mean squared
    difference of the sorted projections, summed over the scales."""
    total = 0.0
    for s in scales:
        f = F.avg_pool2d(fake, s) if s > 1 else fake
        r = F.avg_pool2d(real, s) if s > 1 else real
        pf = F.unfold(f, k).transpose(1, 2).reshape(-1, 3 * k * k)
        pr = F.unfold(r, k).transpose(1, 2).reshape(-1, 3 * k * k)
        pf = pf[torch.randint(0, pf.shape[0], (n,), generator=gen).to(pf.device)]
        pr = pr[torch.randint(0, pr.shape[0], (n,), generator=gen).to(pr.device)]
        dirs = torch.randn(3 * k * k, directions, generator=gen).to(pf.device)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        a, _ = torch.sort(pf @ dirs, 0)
        b, _ = torch.sort(pr @ dirs, 0)
        total = total + ((a - b) ** 2).mean()
    return total


def random_crops(img, n, gen):
    """n random CROPxCROP crops (with random horizontal flips) of img [3,H,W]."""
    _, h, w = img.shape
    ys = torch.randint(0, h - CROP + 1, (n,), generator=gen)
    xs = torch.randint(0, w - CROP + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    out = []
    for y, x, f in zip(ys.tolist(), xs.tolist(), flips.tolist()):
        c = img[:, y:y + CROP, x:x + CROP]
        out.append(c.flip(-1) if f else c)
    return torch.stack(out)


def to_png(tensor, path):
    from PIL import Image

    arr = ((tensor[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(arr).save(path)


@torch.no_grad()
def recalibrate_bn(g, gen, batches=64, noise_size=8):
    """Re-estimate BatchNorm running stats as an exact average over fresh noise."""
    dev = next(g.parameters()).device
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
    g.train()
    for _ in range(batches):
        g(torch.randn(16, g.noise_channels, noise_size, noise_size, generator=gen).to(dev))
    g.eval()


def export_onnx(g, path):
    g.eval()
    dummy = torch.randn(1, g.noise_channels, NOISE_SIZE, NOISE_SIZE)
    kwargs = dict(
        input_names=["noise"],
        output_names=["image"],
        dynamic_axes={"noise": {2: "h", 3: "w"}, "image": {2: "out_h", 3: "out_w"}},
        opset_version=17,
        do_constant_folding=True,
    )
    try:
        torch.onnx.export(g, (dummy,), path, dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(g, (dummy,), path, **kwargs)
    import onnx

    model = onnx.load(path)
    onnx.checker.check_model(model)


def check_onnx(path, g, threads=2):
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed; skipping the ONNX runtime check")
        return
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    noise = np.random.default_rng(0).standard_normal((1, g.noise_channels, 23, 40)).astype(np.float32)  # noqa
    out = sess.run(["image"], {"noise": noise})[0]
    times = []
    for _ in range(10):
        t = time.perf_counter()
        sess.run(["image"], {"noise": noise})
        times.append(time.perf_counter() - t)
    assert out.shape == (1, 3, 368, 640), out.shape
    assert np.isfinite(out).all()
    assert out.min() >= -1.0 - 1e-5 and out.max() <= 1.0 + 1e-5, (out.min(), out.max())
    with torch.no_grad():
        ref = g.eval()(torch.from_numpy(noise)).numpy()
    diff = float(np.abs(out - ref).max())
    assert diff < 1e-3, f"onnxruntime and torch disagree: max abs diff {diff}"
    print(
        f"onnxruntime: noise 1x{g.noise_channels}x23x40 -> image {out.shape}, range [{out.min():.3f}, {out.max():.3f}], "
        f"max |ort - torch| {diff:.1e}, median {1000 * np.median(times):.1f} ms on {threads} threads"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", required=True, help="skimage:<name> or sklearn:<file>")
    ap.add_argument("--crop", help="x,y,w,h region of the image to train on")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr-d", type=float, default=5e-5, help="discriminator learning rate")
    ap.add_argument("--checkpoints", type=int, default=6, help="checkpoints (evenly spaced over the second half... the last) to choose from")
    ap.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    ap.add_argument("--max-seconds", type=float, help="stop training after this long (the last step is a checkpoint)")
    ap.add_argument("--white", type=int, default=4, help="white-noise fields (noise input channels = 256 * this)")
    ap.add_argument("--levels", type=int, default=5, help="a-trous smoothing levels of each field")
    ap.add_argument("--width", type=int, default=16, help="channels of the first (1x1) conv")
    ap.add_argument("--narrow", type=int, default=16, help="channels of the 3x3 convs")
    ap.add_argument("--convs", type=int, default=1, help="3x3 convs")
    ap.add_argument("--swd", type=float, default=0.0,
                    help="weight of a multi-scale patch sliced-Wasserstein loss added to the generator's (0: GAN loss alone)")
    ap.add_argument("--out", required=True, help="output ONNX path")
    ap.add_argument("--sample", help="output sample PNG path (256x448)")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    img = crop(load_image(args.image), args.crop)
    if img.shape[0] < CROP or img.shape[1] < CROP:
        raise SystemExit(f"training region {img.shape[:2]} is smaller than {CROP}x{CROP}")
    print(f"training image {args.image} crop={args.crop} -> {img.shape[1]}x{img.shape[0]}")
    dev = torch.device(args.device)
    real_img = (torch.from_numpy(np.ascontiguousarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1.0).to(dev)

    g, d = Generator(args.white, args.levels, args.width, args.narrow, args.convs), Discriminator()
    g.apply(init_weights)
    d.apply(init_weights)
    g.to(dev)
    d.to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    # A slower discriminator and soft real labels (0.9): with the smoother resize-conv
    # generator, an equal-rate D wins outright and G collapses to blob outlines.
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr_d, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits

    # Checkpoints to choose from by texture fidelity (patch SWD, models/gan/fidelity.py).
    n = args.checkpoints
    checkpoints = {args.steps // 2 + (args.steps - args.steps // 2) * k // n for k in range(1, n + 1)}
    saved = {}
    t0 = time.time()
    for step in range(1, args.steps + 1):
        real = random_crops(real_img, args.batch, gen)
        z = torch.randn(args.batch, g.noise_channels, NOISE_SIZE, NOISE_SIZE, generator=gen).to(dev)
        fake = g(z)

        opt_d.zero_grad(set_to_none=True)
        lr_ = d(real)
        lf_ = d(fake.detach())
        loss_d = bce(lr_, torch.full_like(lr_, 0.9)) + bce(lf_, torch.zeros_like(lf_))
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        lg_ = d(fake)
        loss_g = bce(lg_, torch.ones_like(lg_))
        if args.swd > 0:
            loss_g = loss_g + args.swd * patch_swd_loss(fake, real, gen)
        loss_g.backward()
        opt_g.step()

        out_of_time = args.max_seconds is not None and time.time() - t0 > args.max_seconds
        if step in checkpoints or out_of_time:
            saved[step] = {k: v.detach().cpu().clone() for k, v in g.state_dict().items()}
        if step % 100 == 0 or step == args.steps:
            print(
                f"step {step}/{args.steps} loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
                f"{time.time() - t0:.0f}s",
                flush=True,
            )
        if out_of_time:
            print(f"stopped at step {step} after {args.max_seconds:.0f}s")
            break
    print(f"training took {time.time() - t0:.0f}s")

    best = None
    for step, state in sorted(saved.items()):
        g.load_state_dict(state)
        recalibrate_bn(g, torch.Generator().manual_seed(args.seed))
        with torch.no_grad():
            z = torch.randn(1, g.noise_channels, 16, 16, generator=torch.Generator().manual_seed(7)).to(dev)
            arr = ((g(z)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        got, floor = fidelity(arr, img)
        print(f"checkpoint step {step}: patch SWD {got:.4f} (floor {floor:.4f}, ratio {got / floor:.2f})")
        if best is None or got < best[0]:
            best = (got, step, state)
    print(f"chosen checkpoint: step {best[1]}")
    g.load_state_dict(best[2])
    recalibrate_bn(g, gen)
    g.cpu()
    if args.sample:
        with torch.no_grad():
            # As segsynth runs it (the manifests' `border = 1`): one noise cell beyond each
            # edge, cropped, since the outermost pixels see the convolutions' padding.
            z = torch.randn(1, g.noise_channels, 256 // SCALE + 2, 448 // SCALE + 2, generator=gen)
            to_png(g(z)[:, :, SCALE:SCALE + 256, SCALE:SCALE + 448], args.sample)
        print(f"sample written to {args.sample}")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    export_onnx(g, args.out)
    print(f"ONNX written to {args.out} ({os.path.getsize(args.out)} bytes)")
    check_onnx(args.out, g, args.threads)
    try:
        grid = grid_ratio([onnx_sample(args.out, g.noise_channels, SCALE, seed=k).astype(np.float64) for k in range(32)],
                          SCALE)
        print(f"grid ratio {grid:.3f} (32 layers of 256x256; the tests' bound is 1.15)")
    except ImportError:
        print("onnxruntime not installed; no grid ratio")


if __name__ == "__main__":
    main()
