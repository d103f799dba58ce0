#!/usr/bin/env python3
"""Generate tiny, deterministic ONNX test models for segsynth.

Usage:  python models/tiny/make_tiny_models.py [OUTDIR]      (default: tests/data)

All models: opset 17 (default domain), ir_version 8, float32 unless stated,
no weights beyond a few small constants. Output is byte-identical across runs.
After writing, every model is run with onnxruntime and checked against a numpy
reference (the formulas below are exactly what the tests can rely on).

Segmentation models (input name `image`, float32 values in [0,1], fixed 32x32;
each pixel's class scores depend only on that pixel's colour):

  seg3_nchw_logits.onnx
      image  [1,3,32,32] NCHW  ->  logits [1,3,32,32] float32
      logits = 10 * image                  (class = argmax over R,G,B)

  seg3_nhwc_probs.onnx
      image  [1,32,32,3] NHWC  ->  probs  [1,32,32,3] float32
      probs  = softmax(10 * image, axis=-1)

  seg3_nchw_labels.onnx
      image  [1,3,32,32] NCHW  ->  labels [1,32,32] int64
      labels = argmax(image, axis=1)       (ties -> lowest channel index)

  seg_bad_channels.onnx
      image  [1,5,32,32]       ->  logits [1,5,32,32] float32
      logits = 10 * image                  (wrong channel count on purpose)

Generator models (float32; dims named 'h','w' are dynamic):

  gen_spatial.onnx
      noise [1,4,'h','w']  ->  image [1,3,4h,4w]
      image = tanh(nearest_upsample_4x(noise[:, 0:3]))
      i.e. image[0,c,y,x] = tanh(noise[0,c,y//4,x//4]), c in 0..2
      (Slice -> Resize(mode=nearest, coordinate_transformation_mode=asymmetric,
       nearest_mode=floor, scales=[1,1,4,4]) -> Tanh; channel 3 is ignored)

  gen_latent.onnx
      z [1,8]  ->  image [1,3,16,16]
      image[0,c,y,x] = tanh(z[0,c]) for c in 0..2 (constant per channel)
      (Slice z[:,0:3] -> Tanh -> Reshape [1,3,1,1] -> Expand [1,3,16,16])

  gen_image.onnx
      frame [1,3,'h','w'] (values in [-1,1])  ->  image [1,3,'h','w']
      image = -frame

  gen_image_mask.onnx
      frame [1,3,'h','w'], mask [1,1,'h','w'] (in [0,1])  ->  image [1,3,'h','w']
      image = frame * (2 * mask - 1)   (the frame where the mask is 1, inverted where 0)

  gen_image_noise.onnx
      frame [1,3,'h','w'], noise [1,4,'nh','nw'] (h = 4 nh, w = 4 nw)  ->  image [1,3,'h','w']
      image = tanh(nearest_upsample_4x(noise[:, 0:3])) + 0 * frame
      (gen_spatial's formula behind an `image` contract with a `[noise_input]`: the noise
       must arrive in cells of 4 pixels covering the frame; the frame must be fed too)

  gen_nan.onnx
      noise [1,4,'h','w']  ->  image [1,3,4h,4w]   (same I/O as gen_spatial)
      image = sqrt(tanh(nearest_upsample_4x(noise[:, 0:3])))
      i.e. image[0,c,y,x] = sqrt(tanh(n)), n = noise[0,c,y//4,x//4]:
        NaN            exactly where n <  0  (about half the pixels for N(0,1) noise)
        finite, in [0, sqrt(tanh(n))] <= 1   where n >= 0 (n == 0 -> 0)
      (Same as gen_spatial followed by Sqrt.)

Also writes not_a_model.onnx containing the text "this is not an onnx model\\n".
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def const_init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name=name)


def make_model(name, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="segsynth-make_tiny_models",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------- segmentation
def seg_logits(channels, name):
    return make_model(
        name,
        [helper.make_node("Mul", ["image", "ten"], ["logits"])],
        [helper.make_tensor_value_info("image", F, [1, channels, 32, 32])],
        [helper.make_tensor_value_info("logits", F, [1, channels, 32, 32])],
        [const_init("ten", np.array(10.0, dtype=np.float32))],
    )


def seg3_nhwc_probs():
    return make_model(
        "seg3_nhwc_probs",
        [
            helper.make_node("Mul", ["image", "ten"], ["scaled"]),
            helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
        ],
        [helper.make_tensor_value_info("image", F, [1, 32, 32, 3])],
        [helper.make_tensor_value_info("probs", F, [1, 32, 32, 3])],
        [const_init("ten", np.array(10.0, dtype=np.float32))],
    )


def seg3_nchw_labels():
    return make_model(
        "seg3_nchw_labels",
        [helper.make_node("ArgMax", ["image"], ["labels"], axis=1, keepdims=0)],
        [helper.make_tensor_value_info("image", F, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("labels", I64, [1, 32, 32])],
    )


# ---------------------------------------------------------------- generators
def upsample_nodes_and_inits(out_name):
    nodes = [
        helper.make_node("Slice", ["noise", "s_start", "s_end", "s_axes"], ["rgb"]),
        helper.make_node(
            "Resize",
            ["rgb", "", "scales"],
            ["up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Tanh", ["up"], [out_name]),
    ]
    inits = [
        const_init("s_start", np.array([0], dtype=np.int64)),
        const_init("s_end", np.array([3], dtype=np.int64)),
        const_init("s_axes", np.array([1], dtype=np.int64)),
        const_init("scales", np.array([1, 1, 4, 4], dtype=np.float32)),
    ]
    return nodes, inits


def gen_spatial():
    nodes, inits = upsample_nodes_and_inits("image")
    return make_model(
        "gen_spatial",
        nodes,
        [helper.make_tensor_value_info("noise", F, [1, 4, "h", "w"])],
        [helper.make_tensor_value_info("image", F, [1, 3, "h4", "w4"])],
        inits,
    )


def gen_nan():
    nodes, inits = upsample_nodes_and_inits("t")
    nodes.append(helper.make_node("Sqrt", ["t"], ["image"]))
    return make_model(
        "gen_nan",
        nodes,
        [helper.make_tensor_value_info("noise", F, [1, 4, "h", "w"])],
        [helper.make_tensor_value_info("image", F, [1, 3, "h4", "w4"])],
        inits,
    )


def gen_latent():
    return make_model(
        "gen_latent",
        [
            helper.make_node("Slice", ["z", "s_start", "s_end", "s_axes"], ["z3"]),
            helper.make_node("Tanh", ["z3"], ["t"]),
            helper.make_node("Reshape", ["t", "rshape"], ["t4"]),
            helper.make_node("Expand", ["t4", "eshape"], ["image"]),
        ],
        [helper.make_tensor_value_info("z", F, [1, 8])],
        [helper.make_tensor_value_info("image", F, [1, 3, 16, 16])],
        [
            const_init("s_start", np.array([0], dtype=np.int64)),
            const_init("s_end", np.array([3], dtype=np.int64)),
            const_init("s_axes", np.array([1], dtype=np.int64)),
            const_init("rshape", np.array([1, 3, 1, 1], dtype=np.int64)),
            const_init("eshape", np.array([1, 3, 16, 16], dtype=np.int64)),
        ],
    )


def gen_image():
    return make_model(
        "gen_image",
        [helper.make_node("Neg", ["frame"], ["image"])],
        [helper.make_tensor_value_info("frame", F, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("image", F, [1, 3, "h", "w"])],
    )


def gen_image_mask():
    # image = frame * (2 * mask - 1): the frame where the mask is 1, inverted where 0.
    return make_model(
        "gen_image_mask",
        [
            helper.make_node("Mul", ["mask", "two"], ["m2"]),
            helper.make_node("Sub", ["m2", "one"], ["sign"]),
            helper.make_node("Mul", ["frame", "sign"], ["image"]),
        ],
        [
            helper.make_tensor_value_info("frame", F, [1, 3, "h", "w"]),
            helper.make_tensor_value_info("mask", F, [1, 1, "h", "w"]),
        ],
        [helper.make_tensor_value_info("image", F, [1, 3, "h", "w"])],
        [
            const_init("two", np.array(2.0, dtype=np.float32)),
            const_init("one", np.array(1.0, dtype=np.float32)),
        ],
    )


def gen_image_noise():
    nodes, inits = upsample_nodes_and_inits("t")
    nodes += [
        helper.make_node("Mul", ["frame", "zero"], ["f0"]),
        helper.make_node("Add", ["t", "f0"], ["image"]),
    ]
    return make_model(
        "gen_image_noise",
        nodes,
        [
            helper.make_tensor_value_info("frame", F, [1, 3, "h", "w"]),
            helper.make_tensor_value_info("noise", F, [1, 4, "nh", "nw"]),
        ],
        [helper.make_tensor_value_info("image", F, [1, 3, "h", "w"])],
        inits + [const_init("zero", np.array(0.0, dtype=np.float32))],
    )


# ---------------------------------------------------------------- references
def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def up4(x):
    return np.repeat(np.repeat(x, 4, axis=2), 4, axis=3)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    os.makedirs(outdir, exist_ok=True)

    models = {
        "seg3_nchw_logits.onnx": seg_logits(3, "seg3_nchw_logits"),
        "seg3_nhwc_probs.onnx": seg3_nhwc_probs(),
        "seg3_nchw_labels.onnx": seg3_nchw_labels(),
        "seg_bad_channels.onnx": seg_logits(5, "seg_bad_channels"),
        "gen_spatial.onnx": gen_spatial(),
        "gen_latent.onnx": gen_latent(),
        "gen_image.onnx": gen_image(),
        "gen_image_mask.onnx": gen_image_mask(),
        "gen_image_noise.onnx": gen_image_noise(),
        "gen_nan.onnx": gen_nan(),
    }
    for fname, model in models.items():
        with open(os.path.join(outdir, fname), "wb") as f:
            f.write(model.SerializeToString(deterministic=True))
    with open(os.path.join(outdir, "not_a_model.onnx"), "wb") as f:
        f.write(b"this is not an onnx model\n")

    # ------------------------------------------------------------ verification
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    f32 = np.float32

    def run(fname, feeds):
        sess = ort.InferenceSession(
            os.path.join(outdir, fname), providers=["CPUExecutionProvider"]
        )
        return sess.run(None, feeds)[0]

    def report(fname, out, note=""):
        size = os.path.getsize(os.path.join(outdir, fname))
        print(f"{fname:26s} {size:5d} B  ok  out {out.dtype} {list(out.shape)} {note}")

    close = dict(rtol=1e-5, atol=1e-6)

    x = rng.random((1, 3, 32, 32), dtype=f32)
    out = run("seg3_nchw_logits.onnx", {"image": x})
    assert out.shape == (1, 3, 32, 32) and out.dtype == f32
    np.testing.assert_allclose(out, 10 * x, **close)
    report("seg3_nchw_logits.onnx", out)

    xh = rng.random((1, 32, 32, 3), dtype=f32)
    out = run("seg3_nhwc_probs.onnx", {"image": xh})
    assert out.shape == (1, 32, 32, 3) and out.dtype == f32
    np.testing.assert_allclose(out, softmax(10 * xh.astype(np.float64), -1), **close)
    report("seg3_nhwc_probs.onnx", out)

    out = run("seg3_nchw_labels.onnx", {"image": x})
    assert out.shape == (1, 32, 32) and out.dtype == np.int64
    assert np.array_equal(out, np.argmax(x, axis=1))
    # tie -> lowest index
    tie = np.zeros((1, 3, 32, 32), f32)
    assert (run("seg3_nchw_labels.onnx", {"image": tie}) == 0).all()
    report("seg3_nchw_labels.onnx", out)

    x5 = rng.random((1, 5, 32, 32), dtype=f32)
    out = run("seg_bad_channels.onnx", {"image": x5})
    assert out.shape == (1, 5, 32, 32)
    np.testing.assert_allclose(out, 10 * x5, **close)
    report("seg_bad_channels.onnx", out)

    for h, w in [(4, 4), (3, 5), (8, 2)]:
        n = rng.standard_normal((1, 4, h, w)).astype(f32)
        out = run("gen_spatial.onnx", {"noise": n})
        assert out.shape == (1, 3, 4 * h, 4 * w) and out.dtype == f32
        np.testing.assert_allclose(out, np.tanh(up4(n[:, :3])), **close)
    report("gen_spatial.onnx", out, "(checked h,w in (4,4),(3,5),(8,2))")

    z = rng.standard_normal((1, 8)).astype(f32)
    out = run("gen_latent.onnx", {"z": z})
    assert out.shape == (1, 3, 16, 16) and out.dtype == f32
    ref = np.broadcast_to(np.tanh(z[0, :3]).reshape(1, 3, 1, 1), (1, 3, 16, 16))
    np.testing.assert_allclose(out, ref, **close)
    report("gen_latent.onnx", out)

    for h, w in [(16, 16), (7, 9)]:
        fr = rng.uniform(-1, 1, (1, 3, h, w)).astype(f32)
        out = run("gen_image.onnx", {"frame": fr})
        assert out.shape == (1, 3, h, w)
        assert np.array_equal(out, -fr)
    report("gen_image.onnx", out, "(checked h,w in (16,16),(7,9))")

    fr = rng.uniform(-1, 1, (1, 3, 6, 10)).astype(f32)
    m = (rng.random((1, 1, 6, 10)) < 0.5).astype(f32)
    out = run("gen_image_mask.onnx", {"frame": fr, "mask": m})
    np.testing.assert_allclose(out, fr * (2 * m - 1), **close)
    report("gen_image_mask.onnx", out)

    fr = rng.uniform(-1, 1, (1, 3, 8, 12)).astype(f32)
    n = rng.standard_normal((1, 4, 2, 3)).astype(f32)
    out = run("gen_image_noise.onnx", {"frame": fr, "noise": n})
    assert out.shape == (1, 3, 8, 12)
    np.testing.assert_allclose(out, np.tanh(up4(n[:, :3])), **close)
    report("gen_image_noise.onnx", out)

    n = rng.standard_normal((1, 4, 8, 8)).astype(f32)
    n[0, 0, 0, 0] = 0.0
    out = run("gen_nan.onnx", {"noise": n})
    assert out.shape == (1, 3, 32, 32) and out.dtype == f32
    nan_expected = up4(n[:, :3]) < 0
    assert np.array_equal(np.isnan(out), nan_expected)
    assert np.isfinite(out[~nan_expected]).all()
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(np.tanh(up4(n[:, :3]).astype(np.float64)))
    np.testing.assert_allclose(out[~nan_expected], ref[~nan_expected], **close)
    report("gen_nan.onnx", out, f"(NaN fraction {np.isnan(out).mean():.2f})")

    with open(os.path.join(outdir, "not_a_model.onnx"), "rb") as f:
        assert f.read() == b"this is not an onnx model\n"
    try:
        ort.InferenceSession(os.path.join(outdir, "not_a_model.onnx"))
    except Exception:
        pass
    else:
        raise AssertionError("not_a_model.onnx unexpectedly loaded")
    print(f"{'not_a_model.onnx':26s} {os.path.getsize(os.path.join(outdir, 'not_a_model.onnx')):5d} B  ok  (ORT refuses to load it)")


if __name__ == "__main__":
    main()
