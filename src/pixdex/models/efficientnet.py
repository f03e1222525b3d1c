"""EfficientNet-Lite as an ONNX graph, built from a PyTorch state dict with ``onnx.helper``.

The architecture mirrors the ``efficientnet-lite-pytorch`` reference (which mirrors TensorFlow's
``efficientnet_lite_builder``): a stride-2 3x3 stem, MBConv blocks (1x1 expand, depthwise kxk,
1x1 project, identity skip when shape is kept) with ReLU6 and no squeeze-excite, a 1x1 head to
1280 channels, global average pooling and a linear classifier. BatchNorm (eps 1e-3) is folded
into the preceding convolution so the graph is only Conv/Clip/Add/Pool/Gemm.

Besides the logits the graph outputs two pooled views of the last feature map, for "more like
this" and duplicates (``pixdex.similarity``): ``features``, the average-pooled 1280-d vector the
classifier reads, and ``features_max``, the same map max-pooled. Both come from the one run; the
logits are computed exactly as without them (tests/test_similarity.py checks bit for bit).

Everything but the strides is read from the weights: the number of blocks, channel widths and
kernel sizes. The strides are per *stage* (EfficientNet-B0's block args, which every Lite variant
shares); a stage starts where a block changes the channel count.

TensorFlow "SAME" padding is asymmetric when the padding total is odd (the extra pixel goes
bottom/right). The graph's spatial size is fixed, so the exact pads are computed here and
written explicitly, matching the reference's static padding bit for bit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pixdex.errors import ModelError

#: bump whenever the generated graph changes, so cached ``.onnx`` files are rebuilt
#: (4: the pooled features as second and third outputs)
BUILDER_VERSION = 4
OPSET = 17
BN_EPS = 1e-3
#: strides of EfficientNet's seven stages (block args r1_k3_s11 ... r1_k3_s11)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: (N, 1280): global average pool of the head's feature map (what the classifier reads)
FEATURES_NAME = "features"
#: (N, 1280): global max pool of the same map (the similarity embedding's input)
FEATURES_MAX_NAME = "features_max"


class ArchitectureError(ModelError):
    """The state dict does not look like an EfficientNet-Lite."""


@dataclass(frozen=True, slots=True)
class BlockSpec:
    index: int
    in_channels: int
    out_channels: int
    expanded: int  # channels after the 1x1 expansion (== in_channels when there is none)
    kernel: int
    stride: int
    stage: int  # 0..6, EfficientNet's stage (block group) the block belongs to

    @property
    def skip(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_specs(state: Mapping[str, np.ndarray]) -> list[BlockSpec]:
    """Infer the MBConv blocks from weight names and shapes."""
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\.", k))})
    if not indices or indices != list(range(len(indices))):
        raise ArchitectureError("no contiguous _blocks.N.* weights")
    specs: list[BlockSpec] = []
    stage = -1
    for i in indices:
        dw = _get(state, f"_blocks.{i}._depthwise_conv.weight")
        proj = _get(state, f"_blocks.{i}._project_conv.weight")
        expand = state.get(f"_blocks.{i}._expand_conv.weight")
        in_ch = int(expand.shape[1]) if expand is not None else int(dw.shape[0])
        out_ch = int(proj.shape[0])
        if dw.shape[1] != 1 or dw.shape[2] != dw.shape[3] or proj.shape[1] != dw.shape[0]:
            raise ArchitectureError(f"block {i}: unexpected shapes {dw.shape} / {proj.shape}")
        if any(k.startswith(f"_blocks.{i}._se_") for k in state):
            raise ArchitectureError(f"block {i} has squeeze-excite: not an EfficientNet-Lite")
        if in_ch != out_ch or i == 0:
            stage += 1
        if stage >= len(STAGE_STRIDES):
            raise ArchitectureError("more stages than EfficientNet has")
        first_of_stage = in_ch != out_ch or i == 0
        specs.append(
            BlockSpec(
                index=i,
                in_channels=in_ch,
                out_channels=out_ch,
                expanded=int(dw.shape[0]),
                kernel=int(dw.shape[2]),
                stride=STAGE_STRIDES[stage] if first_of_stage else 1,
                stage=stage,
            )
        )
    if stage != len(STAGE_STRIDES) - 1:
        raise ArchitectureError(f"found {stage + 1} stages, expected {len(STAGE_STRIDES)}")
    return specs


def _get(state: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    try:
        return state[key]
    except KeyError:
        raise ArchitectureError(f"missing weight {key}") from None


def same_pads(size: int, kernel: int, stride: int) -> tuple[list[int], int]:
    """TensorFlow SAME padding as ONNX pads [top, left, bottom, right], and the output size."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    lo, hi = total // 2, total - total // 2
    return [lo, lo, hi, hi], out


class _GraphBuilder:
    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv_bn(
        self,
        x: str,
        conv: str,
        bn: str,
        size: int,
        *,
        stride: int = 1,
        group: int = 1,
        relu6: bool = True,
    ) -> tuple[str, int]:
        """Conv (no bias) + BatchNorm folded into one Conv with bias, optionally ReLU6."""
        w = _get(self.state, f"{conv}.weight").astype(np.float64)
        gamma = _get(self.state, f"{bn}.weight").astype(np.float64)
        beta = _get(self.state, f"{bn}.bias").astype(np.float64)
        mean = _get(self.state, f"{bn}.running_mean").astype(np.float64)
        var = _get(self.state, f"{bn}.running_var").astype(np.float64)
        scale = gamma / np.sqrt(var + BN_EPS)
        w_folded = (w * scale[:, None, None, None]).astype(np.float32)
        b_folded = (beta - mean * scale).astype(np.float32)
        kernel = int(w.shape[2])
        pads, out_size = same_pads(size, kernel, stride)
        wn = self.const(f"{conv}.weight_folded", w_folded)
        bname = self.const(f"{conv}.bias_folded", b_folded)
        y = conv  # node and output named after the PyTorch module: "_blocks.3._expand_conv"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, wn, bname],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=pads,
                group=group,
                name=y,
            )
        )
        if relu6:  # Clip(0, 6); the bounds are shared initializers created by build_model
            self.nodes.append(
                helper.make_node(
                    "Clip", [y, "relu6_min", "relu6_max"], [f"{y}.relu6"], name=f"{y}.relu6"
                )
            )
            y = f"{y}.relu6"
        return y, out_size


def build_model(state: Mapping[str, np.ndarray], input_size: int, name: str) -> onnx.ModelProto:
    """The ONNX model: input (N,3,S,S) float32 normalised as (pixel-127)/128; outputs the logits
    (N,1000), then ``features`` and ``features_max`` (N,1280 each)."""
    specs = block_specs(state)
    g = _GraphBuilder(state)
    g.const("relu6_min", np.array(0.0, np.float32))
    g.const("relu6_max", np.array(6.0, np.float32))

    x, size = g.conv_bn(INPUT_NAME, "_conv_stem", "_bn0", input_size, stride=2)
    for b in specs:
        p = f"_blocks.{b.index}"
        inp = x
        if f"{p}._expand_conv.weight" in state:
            x, size = g.conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", size)
        x, size = g.conv_bn(
            x, f"{p}._depthwise_conv", f"{p}._bn1", size, stride=b.stride, group=b.expanded
        )
        x, size = g.conv_bn(x, f"{p}._project_conv", f"{p}._bn2", size, relu6=False)
        if b.skip:
            y = f"{p}.add"
            g.nodes.append(helper.make_node("Add", [x, inp], [y], name=y))
            x = y
    x, size = g.conv_bn(x, "_conv_head", "_bn1", size)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], [FEATURES_NAME], axis=1, name="flatten"))
    g.nodes.append(helper.make_node("GlobalMaxPool", [x], ["pooled_max"], name="pool_max"))
    g.nodes.append(
        helper.make_node("Flatten", ["pooled_max"], [FEATURES_MAX_NAME], axis=1, name="flatten_max")
    )
    fc_w = _get(state, "_fc.weight").astype(np.float32)
    fc_b = _get(state, "_fc.bias").astype(np.float32)
    g.const("_fc.weight", fc_w)
    g.const("_fc.bias", fc_b)
    g.nodes.append(
        helper.make_node(
            "Gemm", [FEATURES_NAME, "_fc.weight", "_fc.bias"], [OUTPUT_NAME], transB=1, name="_fc"
        )
    )

    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", 3, input_size, input_size]
            )
        ],
        [
            helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", fc_w.shape[0]]),
            helper.make_tensor_value_info(FEATURES_NAME, TensorProto.FLOAT, ["N", fc_w.shape[1]]),
            helper.make_tensor_value_info(
                FEATURES_MAX_NAME, TensorProto.FLOAT, ["N", fc_w.shape[1]]
            ),
        ],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="pixdex",
        producer_version=str(BUILDER_VERSION),
    )
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model
