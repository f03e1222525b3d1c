"""The ONNX graph built from the shipped weights reproduces the reference PyTorch predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from pixdex.models.classifier import Classifier, weights_file
from pixdex.models.efficientnet import block_specs, build_model, same_pads
from pixdex.models.pth import read_state_dict


@pytest.fixture(scope="module")
def reference(shared_dir: Path) -> dict:
    path = shared_dir / "data" / "reference" / "efficientnet_lite_top5.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("model", ["efficientnet-lite0", "efficientnet-lite2"])
def test_reproduces_reference_top5(
    model: str, reference: dict, coco_dir: Path, model_cache: Path
) -> None:
    expected = reference["models"][model]
    clf = Classifier(model, cache_dir=model_cache)
    assert clf.input_size == expected["input_size"]
    preds = expected["predictions"]
    assert len(preds) == 24
    batch = np.stack(
        [clf.preprocess(Image.open(coco_dir / "images" / p["image"]).convert("RGB")) for p in preds]
    )
    probs = softmax(clf.predict(batch))
    for row, pred in zip(probs, preds, strict=True):
        classes = [t["class_index"] for t in pred["top5"]]
        assert list(np.argsort(-row)[:5]) == classes, pred["image"]
        got = row[classes]
        want = np.array([t["probability"] for t in pred["top5"]])
        np.testing.assert_allclose(got, want, atol=1e-3, err_msg=pred["image"])


def test_architecture_inferred_from_weights() -> None:
    specs = block_specs(read_state_dict(weights_file("efficientnet-lite0")))
    assert len(specs) == 16
    # EfficientNet-B0 stages: repeats 1,2,2,3,3,4,1; strides 1,2,2,2,1,2,1; kernels 3,3,5,3,5,5,3
    assert [s.stride for s in specs] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [s.kernel for s in specs] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert [s.out_channels for s in specs][::5] == [16, 80, 112, 320]
    assert sum(s.skip for s in specs) == 9


def test_tf_same_padding_is_asymmetric_for_stride_2() -> None:
    assert same_pads(224, 3, 2) == ([0, 0, 1, 1], 112)  # 111*2+3-224 = 1 extra pixel, at the end
    assert same_pads(56, 5, 2) == ([1, 1, 2, 2], 28)
    assert same_pads(65, 5, 2) == ([2, 2, 2, 2], 33)  # Lite2 at 260: odd size, symmetric
    assert same_pads(14, 5, 1) == ([2, 2, 2, 2], 14)


def test_graph_is_folded_and_dynamic_in_batch() -> None:
    model = build_model(read_state_dict(weights_file("efficientnet-lite0")), 224, "lite0")
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"Conv", "Clip", "Add", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Gemm"}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    onnx.checker.check_model(model)
