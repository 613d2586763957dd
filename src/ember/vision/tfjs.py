"""Convert a TensorFlow.js graph model (model.json + weight shards) into an ONNX model, with numpy and onnx.

Only the operators the packaged CenterNet detector uses are known (convolutions with fused bias and ReLU,
depthwise convolutions, element-wise arithmetic, ReLU6, sigmoid, mean, concat, bilinear resize), and only
the subgraph that feeds the requested outputs is converted: the detector's own top-k decoding is left out
and done in numpy by `ember.vision.objects`. The ONNX model takes NCHW input and gives NCHW outputs.
This module runs once at set-up; it never runs a model and never downloads anything.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
Array = npt.NDArray[Any]


def read_weights(manifest: list[dict[str, Any]], shards: bytes) -> dict[str, Array]:
    """Weights by name from the concatenated shards; float16-quantised floats come back as float32."""
    weights: dict[str, Array] = {}
    offset = 0
    for group in manifest:
        for w in group["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            quantised = (w.get("quantization") or {}).get("dtype")
            dtype = np.dtype(quantised or {"float32": "float32", "int32": "int32"}[w["dtype"]])
            values = np.frombuffer(shards, dtype.newbyteorder("<"), count, offset)
            offset += count * dtype.itemsize
            weights[w["name"]] = values.astype(np.float32 if w["dtype"] == "float32" else np.int32).reshape(w["shape"])
    if offset != len(shards):
        raise ValueError(f"the weight shards hold {len(shards)} bytes; the manifest describes {offset}")
    return weights


def _attr(node: dict[str, Any], name: str) -> Any:
    return node.get("attr", {}).get(name, {})


def _text(node: dict[str, Any], name: str) -> str:
    return base64.b64decode(_attr(node, name).get("s", "")).decode()


def _ints(node: dict[str, Any], name: str) -> list[int]:
    return [int(i) for i in _attr(node, name).get("list", {}).get("i", [])]


class _Builder:
    """Collects ONNX nodes and initialisers while walking the TF.js graph in dependency order."""

    def __init__(self, graph: dict[str, dict[str, Any]], weights: dict[str, Array]) -> None:
        self.graph = graph
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.done: set[str] = set()

    def const(self, name: str, value: Array) -> str:
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def op(self, kind: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(kind, inputs, [output], name=output, **attrs))
        return output

    def value(self, name: str) -> str:
        """The ONNX name of TF tensor `name`, converting its producer (and what it needs) first."""
        name = name.split(":")[0].lstrip("^")
        if name in self.done:
            return name
        node = self.graph[name]
        if node["op"] == "Const":
            value = self.weights[name]
            return self.const(name, value.astype(np.float32) if value.dtype == np.float32 else value.astype(np.int64))
        convert = _CONVERTERS.get(node["op"])
        if convert is None:
            raise ValueError(f"TF.js operator {node['op']!r} (node {name!r}) is not supported")
        convert(self, node)
        self.done.add(name)
        return name


def _padding(node: dict[str, Any]) -> dict[str, Any]:
    return {"auto_pad": "SAME_UPPER" if _text(node, "padding") == "SAME" else "VALID"}


def _fused(b: _Builder, node: dict[str, Any], conv: str) -> None:
    """Add the bias (and ReLU / ReLU6) that TF.js fused into a convolution."""
    ops = [base64.b64decode(s).decode() for s in _attr(node, "fused_ops").get("list", {}).get("s", [])]
    out = conv
    if ops and ops[0] == "BiasAdd":
        bias = b.weights[node["input"][2]].reshape(1, -1, 1, 1)
        out = b.op("Add", [out, b.const(node["input"][2] + "/nchw", bias)], node["name"] + "/bias")
        ops = ops[1:]
    for extra in ops:
        if extra == "Relu":
            out = b.op("Relu", [out], node["name"] + "/relu")
        elif extra == "Relu6":
            out = _relu6(b, out, node["name"] + "/relu6")
        else:
            raise ValueError(f"fused operation {extra!r} in {node['name']!r} is not supported")
    b.op("Identity", [out], node["name"])


def _relu6(b: _Builder, x: str, out: str) -> str:
    lo = b.const("relu6/min", np.array(0.0, np.float32))
    hi = b.const("relu6/max", np.array(6.0, np.float32))
    return b.op("Clip", [x, lo, hi], out)


def _conv(b: _Builder, node: dict[str, Any]) -> None:
    x = b.value(node["input"][0])
    kernel = b.weights[node["input"][1]]  # HWIO
    depthwise = "Depthwise" in node["op"]
    if depthwise:  # H, W, in, multiplier -> in*multiplier, 1, H, W
        h, w, cin, mult = kernel.shape
        weight = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, h, w)
        attrs = {"group": cin}
    else:
        weight = kernel.transpose(3, 2, 0, 1)
        attrs = {}
    strides = _ints(node, "strides")[1:3]
    dilations = _ints(node, "dilations")[1:3] or [1, 1]
    w_name = b.const(node["input"][1] + "/oihw", weight)
    target = node["name"] + "/conv" if node["op"].startswith(("_Fused", "Fused")) else node["name"]
    b.op("Conv", [x, w_name], target, strides=strides, dilations=dilations, **_padding(node), **attrs)
    if target != node["name"]:
        _fused(b, node, target)


def _binary(kind: str) -> Callable[[_Builder, dict[str, Any]], None]:
    def convert(b: _Builder, node: dict[str, Any]) -> None:
        b.op(kind, [b.value(i) for i in node["input"][:2]], node["name"])

    return convert


def _unary(kind: str) -> Callable[[_Builder, dict[str, Any]], None]:
    def convert(b: _Builder, node: dict[str, Any]) -> None:
        b.op(kind, [b.value(node["input"][0])], node["name"])

    return convert


_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def _mean(b: _Builder, node: dict[str, Any]) -> None:
    axes = [_NHWC_TO_NCHW[int(a)] for a in np.atleast_1d(b.weights[node["input"][1]])]
    keep = int(bool(_attr(node, "keep_dims").get("b", False)))
    b.op("ReduceMean", [b.value(node["input"][0])], node["name"], axes=axes, keepdims=keep)


def _concat(b: _Builder, node: dict[str, Any]) -> None:
    axis = _NHWC_TO_NCHW[int(b.weights[node["input"][-1]])]
    b.op("Concat", [b.value(i) for i in node["input"][:-1]], node["name"], axis=axis)


def _resize(b: _Builder, node: dict[str, Any]) -> None:
    if _attr(node, "align_corners").get("b") or _attr(node, "half_pixel_centers").get("b"):
        raise ValueError(f"{node['name']!r}: only asymmetric bilinear resizing is supported")
    x = b.value(node["input"][0])
    size = b.weights[node["input"][1]].astype(np.int64)
    shape = b.op("Shape", [x], node["name"] + "/shape")
    starts, ends = b.const("slice/0", np.array([0], np.int64)), b.const("slice/2", np.array([2], np.int64))
    batch_channels = b.op("Slice", [shape, starts, ends], node["name"] + "/nc")
    sizes = b.op("Concat", [batch_channels, b.const(node["input"][1] + "/i64", size)], node["name"] + "/sizes", axis=0)
    b.op(
        "Resize",
        [x, "", "", sizes],
        node["name"],
        mode="linear",
        coordinate_transformation_mode="asymmetric",
    )


def _identity(b: _Builder, node: dict[str, Any]) -> None:
    b.op("Identity", [b.value(node["input"][0])], node["name"])


def _relu6_node(b: _Builder, node: dict[str, Any]) -> None:
    _relu6(b, b.value(node["input"][0]), node["name"])


_CONVERTERS: dict[str, Callable[[_Builder, dict[str, Any]], None]] = {
    "_FusedConv2D": _conv,
    "Conv2D": _conv,
    "FusedDepthwiseConv2dNative": _conv,
    "DepthwiseConv2dNative": _conv,
    "Mul": _binary("Mul"),
    "Add": _binary("Add"),
    "AddV2": _binary("Add"),
    "Sub": _binary("Sub"),
    "Relu": _unary("Relu"),
    "Sigmoid": _unary("Sigmoid"),
    "Relu6": _relu6_node,
    "Identity": _identity,
    "Mean": _mean,
    "ConcatV2": _concat,
    "ResizeBilinear": _resize,
}


def convert(model_json: Path, outputs: dict[str, str]) -> onnx.ModelProto:
    """An ONNX model computing the TF.js graph's `outputs` (TF name → ONNX output name) from its one input.

    The input keeps the graph's NHWC shape but is passed transposed, as NCHW (named `images`)."""
    spec = json.loads(model_json.read_text())
    shards = b"".join((model_json.parent / p).read_bytes() for g in spec["weightsManifest"] for p in g["paths"])
    weights = read_weights(spec["weightsManifest"], shards)
    graph = {node["name"]: node for node in spec["modelTopology"]["node"]}
    (placeholder,) = [n for n in graph.values() if n["op"] == "Placeholder"]
    dims = [int(d["size"]) for d in _attr(placeholder, "shape")["shape"]["dim"]]
    b = _Builder(graph, weights)
    b.done.add(placeholder["name"])
    b.op("Identity", ["images"], placeholder["name"])
    outs = [b.op("Identity", [b.value(tf_name)], name) for tf_name, name in outputs.items()]
    n, h, w, c = dims
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [n, c, h, w])]
    outputs_info = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["n", "c", "h", "w"]) for o in outs]
    graph_proto = helper.make_graph(b.nodes, "tfjs", inputs, outputs_info, list(b.inits.values()))
    model = helper.make_model(
        graph_proto, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ember.vision.tfjs"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
