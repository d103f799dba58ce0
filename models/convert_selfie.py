#!/usr/bin/env python3
"""Convert MediaPipe selfie-segmentation .tflite models to ONNX.

Usage: python models/convert_selfie.py INPUT.tflite OUTPUT.onnx

Why a custom converter: the off-the-shelf tools fail on these files
(tflite2onnx has no HARD_SWISH, tf2onnx cannot handle MediaPipe's custom op).
This script walks the TFLite flatbuffer (via the `tflite` parser package) and
emits an ONNX graph (opset 17) directly:

* Weights are stored as fp16 constants followed by DEQUANTIZE ops.  We fold
  those: the fp16 buffer is widened to an fp32 initializer, no runtime op.
* The MediaPipe custom op `Convolution2DTransposeBias` (options: padding,
  stride_w, stride_h as int32) becomes ONNX ConvTranspose with bias; its
  kernel is OHWI like TFLite's TRANSPOSE_CONV.
* TFLite is NHWC, ONNX conv ops are NCHW.  The graph runs NCHW internally and
  keeps the NHWC interface: input `input` [N,H,W,3] (RGB float in [0,1]) is
  transposed on entry and output `mask` [N,H,W,1] (person probability) on exit;
  the batch dimension N is free, so several frames can run in one call.
  Both models get the same I/O names (the landscape model's original output is
  misleadingly called `segment_back`).
* TF SAME padding can be asymmetric (extra pixel at bottom/right); explicit
  ONNX pads are computed from the static shapes.
* RESIZE_BILINEAR maps to Resize(linear) with the coordinate mode implied by
  the align_corners / half_pixel_centers flags.

The output is deterministic: identical input gives byte-identical ONNX.
"""

import sys

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

OPSET = 17

_OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}

_NP_TYPES = {
    TensorType.FLOAT32: np.float32,
    TensorType.FLOAT16: np.float16,
    TensorType.INT32: np.int32,
    TensorType.INT64: np.int64,
    TensorType.UINT8: np.uint8,
    TensorType.INT8: np.int8,
}

# TFLite Padding enum (schema): SAME=0, VALID=1.
_TFL_SAME, _TFL_VALID = 0, 1
# TfLitePadding C enum (used in the custom op's raw options): SAME=1, VALID=2.
_C_SAME, _C_VALID = 1, 2

# Fused activation enum: NONE=0, RELU=1, RELU_N1_TO_1=2, RELU6=3, TANH=4.


class Converter:
    def __init__(self, buf):
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError("expected exactly one subgraph")
        self.g = self.model.Subgraphs(0)
        self.nodes = []
        self.inits = []
        self.consts = {}  # tflite tensor index -> np.ndarray (NHWC layout)
        self.names = {}  # tflite tensor index -> onnx value name (NCHW)
        self.used = set()
        self.ops_seen = {}
        self.in_idx = self.g.Inputs(0)
        self.out_idx = self.g.Outputs(0)

    # ---- helpers ---------------------------------------------------------
    def uniq(self, base):
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name

    def tensor(self, i):
        return self.g.Tensors(i)

    def shape(self, i):
        t = self.tensor(i)
        return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def tname(self, i):
        return self.tensor(i).Name().decode()

    def buffer_array(self, i):
        t = self.tensor(i)
        b = self.model.Buffers(t.Buffer())
        if b is None or b.DataLength() == 0:
            if hasattr(b, "Size") and b.Size() > 0:
                raise NotImplementedError("external (offset) buffers not supported")
            return None
        if t.Type() not in _NP_TYPES:
            raise NotImplementedError(f"tensor type {t.Type()} for {self.tname(i)}")
        if t.Quantization() is not None and t.Quantization().ScaleLength():
            raise NotImplementedError(f"quantized constant {self.tname(i)}")
        raw = b.DataAsNumpy().tobytes()
        arr = np.frombuffer(raw, dtype=_NP_TYPES[t.Type()]).copy()
        return arr.reshape(self.shape(i))

    def const(self, i):
        if i not in self.consts:
            arr = self.buffer_array(i)
            if arr is None:
                raise ValueError(f"tensor {self.tname(i)} is not constant")
            self.consts[i] = arr
        return self.consts[i]

    def is_const(self, i):
        if i in self.consts:
            return True
        return self.buffer_array(i) is not None

    def add_init(self, base, arr):
        name = self.uniq(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op, inputs, outputs, name=None, **attrs):
        self.nodes.append(
            helper.make_node(op, inputs, outputs, name=name or self.uniq(op), **attrs)
        )

    def act_in(self, i):
        """ONNX name of a non-constant (activation) input, in NCHW."""
        if i in self.names:
            return self.names[i]
        if self.is_const(i):
            arr = self.const(i).astype(np.float32)
            if arr.ndim == 4:
                arr = arr.transpose(0, 3, 1, 2)
            elif arr.ndim == 1 and arr.size > 1:
                arr = arr.reshape(1, -1, 1, 1)  # NHWC broadcast over C
            elif arr.ndim not in (0, 1):
                raise NotImplementedError(f"const rank {arr.ndim} in elementwise op")
            return self.add_init(self.tname(i), arr)
        raise ValueError(f"tensor {self.tname(i)} used before definition")

    def emit(self, op, inputs, out_idx, fused=0, **attrs):
        """Emit `op` producing TFLite tensor out_idx, plus any fused activation."""
        final = self.uniq(self.tname(out_idx))
        if fused == 0:
            self.node(op, inputs, [final], **attrs)
        else:
            pre = self.uniq(final + "_preact")
            self.node(op, inputs, [pre], **attrs)
            if fused == 1:
                self.node("Relu", [pre], [final])
            elif fused == 2:
                self.node("Clip", [pre, self.scalar(-1.0), self.scalar(1.0)], [final])
            elif fused == 3:
                self.node("Clip", [pre, self.scalar(0.0), self.scalar(6.0)], [final])
            elif fused == 4:
                self.node("Tanh", [pre], [final])
            else:
                raise NotImplementedError(f"fused activation {fused}")
        self.names[out_idx] = final

    _scalars = None

    def scalar(self, v):
        if self._scalars is None:
            self._scalars = {}
        if v not in self._scalars:
            self._scalars[v] = self.add_init(f"const_{v}", np.array(v, np.float32))
        return self._scalars[v]

    @staticmethod
    def same_pads(in_hw, k_hw, s_hw, d_hw):
        pads_b, pads_e = [], []
        for n, k, s, d in zip(in_hw, k_hw, s_hw, d_hw):
            out = -(-n // s)
            eff = (k - 1) * d + 1
            total = max((out - 1) * s + eff - n, 0)
            pads_b.append(total // 2)
            pads_e.append(total - total // 2)
        return pads_b + pads_e

    # ---- op handlers -----------------------------------------------------
    def opts(self, op, cls):
        o = op.BuiltinOptions()
        x = cls()
        x.Init(o.Bytes, o.Pos)
        return x

    def conv_common(self, op, weight, group, o, k_hw, dil):
        x_i, b_i, y_i = op.Inputs(0), op.Inputs(2) if op.InputsLength() > 2 else -1, op.Outputs(0)
        n, h, w, _ = self.shape(x_i)
        strides = [o.StrideH(), o.StrideW()]
        if o.Padding() == _TFL_SAME:
            pads = self.same_pads([h, w], k_hw, strides, dil)
        elif o.Padding() == _TFL_VALID:
            pads = [0, 0, 0, 0]
        else:
            raise NotImplementedError(f"padding {o.Padding()}")
        base = self.tname(y_i)
        ins = [self.act_in(x_i), self.add_init(base + "/W", weight)]
        if b_i >= 0:
            ins.append(self.add_init(base + "/B", self.const(b_i).astype(np.float32)))
        self.emit("Conv", ins, y_i, o.FusedActivationFunction(),
                  kernel_shape=list(k_hw), strides=strides, pads=pads,
                  dilations=list(dil), group=group)

    def op_CONV_2D(self, op):
        o = self.opts(op, tflite.Conv2DOptions)
        w = self.const(op.Inputs(1)).astype(np.float32)  # O,H,W,I
        self.conv_common(op, w.transpose(0, 3, 1, 2), 1, o, w.shape[1:3],
                         [o.DilationHFactor(), o.DilationWFactor()])

    def op_DEPTHWISE_CONV_2D(self, op):
        o = self.opts(op, tflite.DepthwiseConv2DOptions)
        w = self.const(op.Inputs(1)).astype(np.float32)  # 1,H,W,C*M
        cin = self.shape(op.Inputs(0))[3]
        self.conv_common(op, w.transpose(3, 0, 1, 2), cin, o, w.shape[1:3],
                         [o.DilationHFactor(), o.DilationWFactor()])

    def op_CUSTOM_Convolution2DTransposeBias(self, op):
        raw = bytes(op.CustomOptionsAsNumpy())
        padding, stride_w, stride_h = np.frombuffer(raw[:12], dtype="<i4").tolist()
        x_i, w_i, b_i, y_i = op.Inputs(0), op.Inputs(1), op.Inputs(2), op.Outputs(0)
        w = self.const(w_i).astype(np.float32)  # O,H,W,I
        _, kh, kw, _ = w.shape
        _, ih, iw, _ = self.shape(x_i)
        _, oh, ow, _ = self.shape(y_i)
        if padding == _C_SAME:
            pads_b, pads_e = [], []
            for n, o_, k, s in ((ih, oh, kh, stride_h), (iw, ow, kw, stride_w)):
                if o_ != n * s:
                    raise ValueError("unexpected SAME transpose-conv output size")
                total = max((n - 1) * s + k - o_, 0)
                pads_b.append(total // 2)
                pads_e.append(total - total // 2)
            pads = pads_b + pads_e
        elif padding == _C_VALID:
            pads = [0, 0, 0, 0]
        else:
            raise NotImplementedError(f"transpose conv padding {padding}")
        base = self.tname(y_i)
        ins = [self.act_in(x_i),
               self.add_init(base + "/W", w.transpose(3, 0, 1, 2)),  # I,O,H,W
               self.add_init(base + "/B", self.const(b_i).astype(np.float32))]
        self.emit("ConvTranspose", ins, y_i, kernel_shape=[kh, kw],
                  strides=[stride_h, stride_w], pads=pads)

    def op_AVERAGE_POOL_2D(self, op):
        o = self.opts(op, tflite.Pool2DOptions)
        x_i, y_i = op.Inputs(0), op.Outputs(0)
        _, h, w, _ = self.shape(x_i)
        k = [o.FilterHeight(), o.FilterWidth()]
        s = [o.StrideH(), o.StrideW()]
        if k == [h, w] and self.shape(y_i)[1:3] == [1, 1]:
            self.emit("GlobalAveragePool", [self.act_in(x_i)], y_i,
                      o.FusedActivationFunction())
            return
        if o.Padding() == _TFL_SAME:
            pads = self.same_pads([h, w], k, s, [1, 1])
        else:
            pads = [0, 0, 0, 0]
        self.emit("AveragePool", [self.act_in(x_i)], y_i, o.FusedActivationFunction(),
                  kernel_shape=k, strides=s, pads=pads, count_include_pad=0)

    def op_MEAN(self, op):
        o = self.opts(op, tflite.ReducerOptions)
        x_i, y_i = op.Inputs(0), op.Outputs(0)
        axes = sorted(int(a) % 4 for a in self.const(op.Inputs(1)).reshape(-1))
        if axes == [1, 2] and o.KeepDims():
            self.emit("GlobalAveragePool", [self.act_in(x_i)], y_i)
        else:
            raise NotImplementedError(f"MEAN axes={axes} keepdims={o.KeepDims()}")

    def op_RESIZE_BILINEAR(self, op):
        o = self.opts(op, tflite.ResizeBilinearOptions)
        x_i, y_i = op.Inputs(0), op.Outputs(0)
        n, _, _, c = self.shape(x_i)
        oh, ow = (int(v) for v in self.const(op.Inputs(1)).reshape(-1))
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():
            # TFLite clamps negative source coords to 0, as ORT does for half_pixel.
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        _, ih, iw, _ = self.shape(x_i)
        if oh % ih or ow % iw:
            raise NotImplementedError(f"RESIZE_BILINEAR {ih}x{iw} -> {oh}x{ow}: not a whole factor")
        # Scales, not sizes: the batch dimension stays free (sizes would pin it to 1).
        scales = self.add_init(self.tname(y_i) + "/scales",
                               np.array([1, 1, oh // ih, ow // iw], np.float32))
        self.emit("Resize", [self.act_in(x_i), "", scales], y_i, mode="linear",
                  coordinate_transformation_mode=mode)

    def _binary(self, op, onnx_op, cls):
        o = self.opts(op, cls)
        a, b = op.Inputs(0), op.Inputs(1)
        for i in (a, b):
            if i in self.names and len(self.shape(i)) != 4:
                raise NotImplementedError("non-4D activation in elementwise op")
        self.emit(onnx_op, [self.act_in(a), self.act_in(b)], op.Outputs(0),
                  o.FusedActivationFunction())

    def op_ADD(self, op):
        self._binary(op, "Add", tflite.AddOptions)

    def op_MUL(self, op):
        self._binary(op, "Mul", tflite.MulOptions)

    def _unary(self, op, onnx_op):
        self.emit(onnx_op, [self.act_in(op.Inputs(0))], op.Outputs(0))

    def op_HARD_SWISH(self, op):
        self._unary(op, "HardSwish")

    def op_RELU(self, op):
        self._unary(op, "Relu")

    def op_LOGISTIC(self, op):
        self._unary(op, "Sigmoid")

    def op_RELU6(self, op):
        self.emit("Clip", [self.act_in(op.Inputs(0)), self.scalar(0.0), self.scalar(6.0)],
                  op.Outputs(0))

    def op_DEQUANTIZE(self, op):
        x_i, y_i = op.Inputs(0), op.Outputs(0)
        if not self.is_const(x_i):
            raise NotImplementedError("DEQUANTIZE of a runtime tensor")
        if self.tensor(x_i).Type() != TensorType.FLOAT16:
            raise NotImplementedError("DEQUANTIZE of non-fp16 constant")
        self.consts[y_i] = self.const(x_i).astype(np.float32)

    # ---- driver ----------------------------------------------------------
    def convert(self):
        in_shape = self.shape(self.in_idx)
        out_shape = self.shape(self.out_idx)
        if len(in_shape) != 4 or len(out_shape) != 4:
            raise ValueError("expected 4-D NHWC input and output")
        self.used.update(["input", "mask"])
        nchw_in = self.uniq("input_nchw")
        self.node("Transpose", ["input"], [nchw_in], perm=[0, 3, 1, 2])
        self.names[self.in_idx] = nchw_in

        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = _OP_NAMES.get(code, str(code))
            if name == "CUSTOM":
                name = "CUSTOM_" + oc.CustomCode().decode()
            self.ops_seen[name] = self.ops_seen.get(name, 0) + 1
            handler = getattr(self, "op_" + name, None)
            if handler is None:
                raise NotImplementedError(f"unsupported op {name}")
            handler(op)

        self.node("Transpose", [self.names[self.out_idx]], ["mask"], perm=[0, 2, 3, 1])
        # A free batch dimension: several streams' frames can run in one call.
        in_shape, out_shape = ["batch"] + in_shape[1:], ["batch"] + out_shape[1:]
        graph = helper.make_graph(
            self.nodes, "selfie_segmentation",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("mask", TensorProto.FLOAT, out_shape)],
            initializer=self.inits,
        )
        model = helper.make_model(
            graph, producer_name="segsynth-convert_selfie", producer_version="1",
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        conv = Converter(f.read())
    model = conv.convert()
    data = model.SerializeToString(deterministic=True)
    with open(argv[2], "wb") as f:
        f.write(data)
    print("ops:", ", ".join(f"{k}x{v}" for k, v in sorted(conv.ops_seen.items())))
    print(f"wrote {argv[2]} ({len(data)} bytes, {len(conv.nodes)} nodes, "
          f"opset {OPSET})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
