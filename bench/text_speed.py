#!/usr/bin/env python3
"""What the text models cost on this CPU, and what did not make them cheaper (docs/text.md).

    .venv/bin/python bench/text_speed.py [--rounds N]

CPU ms (this process) of single ONNX Runtime runs, the variants interleaved round by round so
they see the same machine load, medians printed:

- the detector on one 640×480 input: float as shipped, with 1 and 2 intra-op threads, at
  ONNX Runtime's lower graph optimisation levels, 4 photos in one run (per photo), and int8
  (ONNX Runtime static quantisation, QDQ and QOperator formats, per-channel weights,
  calibrated on 40 voc2007 photos — not photos the accuracy figures are measured on);
- the recognizer on crops 48 px high: per crop by input width and batch size (is batching
  worth it? is cost linear in width?), and int8 (QDQ, calibrated on random crops — only its
  speed is asked here) and dynamic int8 MatMuls, after converting the graph to opset 17
  (per-channel quantisation needs it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
VOC = SHARED / "data" / "voc2007" / "images"
sys.path.insert(0, str(REPO / "src"))

from pixdex.models.ocr import OcrModels, _det_size  # noqa: E402
from pixdex.models.sessions import session_options  # noqa: E402


def session(path: Path, threads: int = 1, level=None):
    import onnxruntime as ort

    opts = session_options(threads)
    if level is not None:
        opts.graph_optimization_level = level
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def timed(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median CPU ms of each case, interleaved (one warm-up call each first)."""
    for run in cases.values():
        run()
    spent: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            c0 = time.process_time()
            run()
            spent[name].append((time.process_time() - c0) * 1e3)
    return {name: statistics.median(v) for name, v in spent.items()}


def det_input(path: Path) -> np.ndarray:
    """A photo as the detector sees it (as ``OcrEngine``: ≤ 640 px, BGR, ImageNet stats)."""
    image = Image.open(path).convert("RGB")
    image = image.resize(_det_size(image.size, 640), Image.Resampling.BILINEAR)
    x = np.asarray(image, np.float32)[:, :, ::-1]
    x = (x - np.array((0.485, 0.456, 0.406), np.float32) * 255) / (
        np.array((0.229, 0.224, 0.225), np.float32) * 255
    )
    return x.transpose(2, 0, 1)[None].copy()


class Feed:
    """onnxruntime.quantization's CalibrationDataReader over a list of inputs."""

    def __init__(self, inputs: list[np.ndarray]) -> None:
        self.inputs = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.inputs, None)
        return None if x is None else {"x": x}


def int8(src: Path, out: Path, inputs: list[np.ndarray], fmt: str) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        Feed(inputs),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    import logging

    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    models = OcrModels.default()
    print(f"# {time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp(prefix="pixdex-text-speed-"))

    calibration = [det_input(p) for p in sorted(VOC.glob("*.jpg"))[:40]]
    x1 = np.random.default_rng(0).random((1, 3, 480, 640), np.float32)
    x4 = np.repeat(x1, 4, axis=0)
    levels = ort.GraphOptimizationLevel
    det = {
        "float, 1 thread": session(models.det),
        "float, 2 threads": session(models.det, 2),
        "float, graph level EXTENDED": session(models.det, level=levels.ORT_ENABLE_EXTENDED),
        "float, graph level BASIC": session(models.det, level=levels.ORT_ENABLE_BASIC),
        "int8 QDQ": session(int8(models.det, tmp / "det-qdq.onnx", calibration, "qdq")),
        "int8 QOperator": session(int8(models.det, tmp / "det-qop.onnx", calibration, "qop")),
    }
    cases = {name: (lambda s=s: s.run(None, {"x": x1})) for name, s in det.items()}
    cases["float, 4 photos in one run (per photo: ÷ 4)"] = lambda: det["float, 1 thread"].run(
        None, {"x": x4}
    )
    print("\n## detector, one 640×480 input, CPU ms")
    for name, ms in timed(cases, args.rounds).items():
        print(f"- {name}: {ms / 4 if 'per photo' in name else ms:.1f}")

    rec = session(models.rec)
    print("\n## recognizer, float, 1 thread: CPU ms per crop (48 px high)")
    rng = np.random.default_rng(1)
    shapes = [(1, 96), (1, 160), (1, 320), (1, 640), (4, 160), (8, 160), (16, 160), (8, 320)]
    inputs = {s: rng.uniform(-1, 1, (s[0], 3, 48, s[1])).astype(np.float32) for s in shapes}
    cases = {f"{n} × {w} px": (lambda x=x: rec.run(None, {"x": x})) for (n, w), x in inputs.items()}
    for (n, w), (name, ms) in zip(shapes, timed(cases, args.rounds).items(), strict=True):
        print(f"- {name}: {ms / n:.1f} per crop ({ms / n / w * 100:.1f} per 100 px)")

    opset17 = tmp / "rec-opset17.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(models.rec)), 17), str(opset17))
    crops = [rng.uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32) for _ in range(4)]
    dynamic = tmp / "rec-dyn.onnx"
    quantize_dynamic(
        str(opset17), str(dynamic), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
    )
    recs = {
        "float as shipped": rec,
        "float, opset 17": session(opset17),
        "int8 QDQ": session(int8(opset17, tmp / "rec-qdq.onnx", crops, "qdq")),
        "dynamic int8 MatMuls": session(dynamic),
    }
    x8 = inputs[(8, 320)]
    print("\n## recognizer, 8 crops × 320 px in one run, CPU ms")
    cases = {name: (lambda s=s: s.run(None, {"x": x8})) for name, s in recs.items()}
    for name, ms in timed(cases, args.rounds).items():
        print(f"- {name}: {ms:.1f}")


if __name__ == "__main__":
    main()
