"""Build torchvision's MobileNetV2 (ImageNet-1k classifier) as an ONNX model from its state dict, with onnx.

The layer plan is torchvision's (`mobilenet_v2`, width 1.0): a stride-2 stem, 17 inverted-residual blocks,
a 1x1 head to 1280 channels, global average pooling and one linear layer. Batch norms are folded into the
preceding convolutions. The model takes a normalised NCHW float image (224 x 224 is what it was trained
on) and gives 1000 logits. This module runs once at set-up; it does not run the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from ember.vision.tfjs import OPSET

BN_EPS = 1e-5
# torchvision's inverted-residual settings: expansion t, output channels c, repeats n, first stride s
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
INPUT_SIZE = 224
Array = npt.NDArray[Any]


class _Graph:
    def __init__(self, state: dict[str, Array]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: Array) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{kind.lower()}{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, relu6: bool) -> str:
        """Conv (bias-free, torchvision's) with its batch norm folded in, then ReLU6 if asked."""
        weight = self.state[f"{conv}.weight"]
        scale = self.state[f"{bn}.weight"] / np.sqrt(self.state[f"{bn}.running_var"] + BN_EPS)
        bias = self.state[f"{bn}.bias"] - self.state[f"{bn}.running_mean"] * scale
        out_ch, in_per_group, k, _ = weight.shape
        groups = out_ch if in_per_group == 1 and out_ch > 1 else 1
        pad = k // 2
        y = self.op(
            "Conv",
            [x, self.const(weight * scale[:, None, None, None]), self.const(bias)],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=groups,
        )
        if relu6:
            y = self.op("Clip", [y, self.const(np.array(0.0)), self.const(np.array(6.0))])
        return y


def _block(g: _Graph, x: str, index: int, expand: int, stride: int, residual: bool) -> str:
    p = f"features.{index}.conv"
    if expand == 1:
        y = g.conv_bn(x, f"{p}.0.0", f"{p}.0.1", stride, relu6=True)
        y = g.conv_bn(y, f"{p}.1", f"{p}.2", 1, relu6=False)
    else:
        y = g.conv_bn(x, f"{p}.0.0", f"{p}.0.1", 1, relu6=True)
        y = g.conv_bn(y, f"{p}.1.0", f"{p}.1.1", stride, relu6=True)
        y = g.conv_bn(y, f"{p}.2", f"{p}.3", 1, relu6=False)
    return g.op("Add", [x, y]) if residual else y


def build(state: dict[str, Array]) -> onnx.ModelProto:
    """The ONNX classifier: input `image` (1, 3, H, W) normalised with ImageNet's mean and std → `logits`."""
    g = _Graph({k: v.astype(np.float32) for k, v in state.items() if v.dtype.kind == "f"})
    x = g.conv_bn("image", "features.0.0", "features.0.1", 2, relu6=True)
    index, channels = 1, 32
    for expand, out, repeats, first_stride in SETTINGS:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            x = _block(g, x, index, expand, stride, residual=stride == 1 and channels == out)
            index, channels = index + 1, out
    x = g.conv_bn(x, f"features.{index}.0", f"features.{index}.1", 1, relu6=True)
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x])
    fc_w, fc_b = g.state["classifier.1.weight"], g.state["classifier.1.bias"]
    logits = g.op("Gemm", [x, g.const(fc_w), g.const(fc_b)], transB=1)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    graph = helper.make_graph(
        g.nodes,
        "mobilenet_v2",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ember.vision")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
