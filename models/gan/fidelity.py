#!/usr/bin/env python3
"""Texture fidelity of the shipped generators: the sliced Wasserstein distance (SWD)
between the 7x7 patch distributions of a generated layer and of the training image
(patch-distribution distances of this kind go back to Rabin et al. 2011). No
pretrained network is involved.

Usage: python models/gan/fidelity.py [NAME ...]     (default: every models/gan/*.toml)

For each generator it prints:
  swd    generated 256x256 layer (seeded noise) vs the training region;
  floor  the same distance between two disjoint crops of the training region (the two
         colours of a chessboard of 32x32 tiles): what two real samples of the texture
         differ by;
  ratio  swd / floor (1 is as close as real texture gets to itself);
  grid   the upsampling-grid figure (`grid_ratio`; the tests' bound is 1.15).
Frame-conditioned (`image`) generators are measured on their outputs for three photos
(256x256, seeded noise when they take it), and their grid is the highest of the 4-,
8- and 16-pixel periods.

Patches are 7x7x3 in [0,1] (4096 random ones per side); 256 random unit directions;
the distance is the root mean square of the sorted projections' differences. Every
random choice is seeded, so the figures are repeatable.
"""

import functools
import os
import re
import sys

import numpy as np

K = 7
PATCHES = 4096
DIRECTIONS = 256


def load_image(spec):
    """Return an HxWx3 uint8 array for `skimage:<name>` or `sklearn:<file>`."""
    kind, _, name = spec.partition(":")
    if kind == "skimage":
        import skimage.data

        img = np.asarray(getattr(skimage.data, name)())
    elif kind == "sklearn":
        from sklearn.datasets import load_sample_images

        data = load_sample_images()
        names = [os.path.basename(f) for f in data.filenames]
        if name not in names:
            raise SystemExit(f"unknown sklearn sample image {name!r}; have {names}")
        img = np.asarray(data.images[names.index(name)])
    else:
        raise SystemExit(f"--image must be skimage:<name> or sklearn:<file>, got {spec!r}")
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    return img


def crop(img, spec):
    if not spec:
        return img
    x, y, w, h = (int(v) for v in spec.split(","))
    return img[y:y + h, x:x + w]


def patches(img, rng, n=PATCHES):
    """n random KxK patches of an HxWx3 uint8 image, flattened, in [0,1]."""
    h, w = img.shape[:2]
    ys = rng.integers(0, h - K + 1, n)
    xs = rng.integers(0, w - K + 1, n)
    out = np.stack([img[y:y + K, x:x + K] for y, x in zip(ys, xs)])
    return out.reshape(n, -1).astype(np.float32) / 255.0


def swd(a, b, rng):
    dirs = rng.standard_normal((a.shape[1], DIRECTIONS)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa = np.sort(a @ dirs, axis=0)
    pb = np.sort(b @ dirs, axis=0)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


TILE = 32


def tile_patches(img, parity, rng, n=PATCHES):
    """n random KxK patches lying wholly inside the TILExTILE tiles of one chessboard
    colour: the two colours are disjoint crops that both span the whole region."""
    h, w = img.shape[:2]
    tiles = [(ty, tx) for ty in range(h // TILE) for tx in range(w // TILE) if (ty + tx) % 2 == parity]
    pick = rng.integers(0, len(tiles), n)
    oy = rng.integers(0, TILE - K + 1, n)
    ox = rng.integers(0, TILE - K + 1, n)
    out = np.stack([img[tiles[t][0] * TILE + y:][:K, tiles[t][1] * TILE + x:][:, :K]
                    for t, y, x in zip(pick, oy, ox)])
    return out.reshape(n, -1).astype(np.float32) / 255.0


def fidelity(sample, region, seed=0):
    """(swd of sample vs region, floor between the region's two disjoint tile sets)."""
    floor = swd(tile_patches(region, 0, np.random.default_rng(seed)),
                tile_patches(region, 1, np.random.default_rng(seed + 1)), np.random.default_rng(seed + 2))
    got = swd(patches(sample, np.random.default_rng(seed)), patches(region, np.random.default_rng(seed + 1)),
              np.random.default_rng(seed + 2))
    return got, floor


def periodic_fft(y):
    """DFT of the periodic component of y (Moisan 2011, "Periodic plus smooth image
    decomposition"): without it the jumps where opposite borders meet add a cross of
    power along both axes, which reads as a grid on smooth textures with large features."""
    m, n = y.shape
    jumps = np.zeros_like(y)
    jumps[0, :] += y[-1, :] - y[0, :]
    jumps[-1, :] += y[0, :] - y[-1, :]
    jumps[:, 0] += y[:, -1] - y[:, 0]
    jumps[:, -1] += y[:, 0] - y[:, -1]
    q, r = np.arange(m)[:, None], np.arange(n)[None, :]
    d = 2 * np.cos(2 * np.pi * q / m) + 2 * np.cos(2 * np.pi * r / n) - 4
    d[0, 0] = 1
    smooth = np.fft.fft2(jumps) / d
    smooth[0, 0] = 0
    return np.fft.fft2(y) - smooth


def grid_ratio(samples, cell):
    """Power at the multiples of 1/cell cycle per pixel (all 2-D grid frequencies but
    DC) over the mean power of their eight neighbours, on the luma (mean removed, its
    periodic component) with the power spectra of all `samples` averaged (one layer's
    bins are too noisy): the checkerboard of a cell-x upsampling generator.
    tests/generators.rs holds the shipped generators to < 1.15 with its own copy of this
    measure (32 layers of 256x256), and holds this function to that copy on the same
    planes (`grid_ratio_finds_a_checkerboard_and_passes_smooth_noise`)."""
    p = 0
    for rgb in samples:
        y = rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722
        p = p + np.abs(periodic_fft(y - y.mean())) ** 2
    n = p.shape[0]
    step = n // cell
    on = around = 0.0
    for mu in range(cell):
        for mv in range(cell):
            if mu == 0 and mv == 0:
                continue
            u, v = mu * step, mv * step
            on += p[v, u]
            around += sum(p[(v + dv) % n, (u + du) % n] for du in (-1, 0, 1) for dv in (-1, 0, 1)
                          if du or dv) / 8.0
    return on / around


def session(path):
    """One onnxruntime session per model file (and its modification time: a training
    script may write the file again), for all the samples drawn from it."""
    return _session(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _session(path, _mtime):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def to_rgb8(out):
    """A generator's [3, H, W] output in [-1, 1] as an HxWx3 uint8 image."""
    return ((np.clip(out, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)


def onnx_sample(path, noise_channels, scale, size=256, seed=7, border=0):
    """A size x size layer of a spatial generator from seeded noise; with `border`, that
    many noise cells beyond each edge are generated and their pixels cropped away, as
    segsynth does."""
    sess = session(path)
    n = size // scale + 2 * border
    noise = np.random.default_rng(seed).standard_normal((1, noise_channels, n, n)).astype(np.float32)
    m = border * scale
    return to_rgb8(sess.run(None, {sess.get_inputs()[0].name: noise})[0][0][:, m:m + size, m:m + size])


def transfer_sample(path, frame, scale, seed):
    """An `image` generator with a noise input on `frame` (HxWx3 uint8) and seeded noise."""
    sess = session(path)
    h, w, _ = frame.shape
    x = (frame.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
    feed = {"frame": x}
    if "noise" in [i.name for i in sess.get_inputs()]:
        c = sess.get_inputs()[1].shape[1]
        feed["noise"] = np.random.default_rng(seed).standard_normal(
            (1, c, -(-h // scale), -(-w // scale))).astype(np.float32)
    return to_rgb8(sess.run(None, feed)[0][0])


def transfer(name, here, get):
    """A frame-conditioned generator: fidelity of its outputs on three photos (256x256)
    against the texture region, and the grid at the 4-, 8- and 16-pixel periods over
    those photos with 8 noise seeds each."""
    from PIL import Image

    cmd = get("training_command") or ""
    region = crop(load_image(re.search(r"--texture (\S+)", cmd).group(1)),
                  (re.search(r"--crop (\S+)", cmd) or [None, None])[1])
    path, scale = os.path.join(here, get("file")), int(get("scale") or 16)
    frames = [np.asarray(Image.fromarray(load_image(f)).resize((256, 256), Image.BICUBIC))
              for f in ("skimage:astronaut", "skimage:coffee", "skimage:chelsea")]
    samples = [transfer_sample(path, f, scale, seed) for f in frames for seed in range(8)]
    got, floor = fidelity(np.concatenate(samples[::8], 1), region)
    grids = [grid_ratio([s.astype(np.float64) for s in samples], cell) for cell in (4, 8, 16)]
    print(f"{name:<10} {got:7.4f} {floor:7.4f} {got / floor:6.2f} {max(grids):6.2f}"
          f"  (frame-conditioned; grid at 4/8/16 px: {' / '.join(f'{g:.2f}' for g in grids)})")


def manifest(path):
    text = open(path).read()
    get = lambda key: (re.search(rf'^{key}\s*=\s*"?([^"\n]*)"?', text, re.M) or [None, None])[1]
    return text, get


def main(names):
    here = os.path.dirname(os.path.abspath(__file__))
    if not names:
        names = sorted(f[:-5] for f in os.listdir(here) if f.endswith(".toml"))
    print(f"{'generator':<10} {'swd':>7} {'floor':>7} {'ratio':>6} {'grid':>6}")
    for name in names:
        text, get = manifest(os.path.join(here, f"{name}.toml"))
        if get("contract") == "image":
            transfer(name, here, get)
            continue
        if get("contract") != "spatial":
            continue
        cmd = get("training_command") or ""
        image = re.search(r"--image (\S+)", cmd).group(1)
        region = crop(load_image(image), (re.search(r"--crop (\S+)", cmd) or [None, None])[1])
        sample = onnx_sample(os.path.join(here, get("file")), int(get("noise_channels")), int(get("scale")))
        got, floor = fidelity(sample, region)
        c, scale = int(get("noise_channels")), int(get("scale"))
        grid = grid_ratio([onnx_sample(os.path.join(here, get("file")), c, scale, seed=k)
                           .astype(np.float64) for k in range(32)], scale)
        print(f"{name:<10} {got:7.4f} {floor:7.4f} {got / floor:6.2f} {grid:6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
