"""The shipped ONNX detectors reproduce the original TF.js models.

The reference (tests/data/detector_reference.json) is made by scripts/build_detector_reference.py
with TF.js itself, on the very input tensors pixdex's preprocessing makes.

SSDLite ships as float32 and must match closely; NanoDet ships as int8 (scripts/build_detectors.py)
and must match within quantisation error: same objects, nearly the same boxes and scores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pixdex.imaging import decode
from pixdex.models.detectors import COCO80, NanoDet, SsdLite, box_iou, select

FIXTURE = json.loads((Path(__file__).parent / "data" / "detector_reference.json").read_text())
COCO = Path(os.environ.get("PIXDEX_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = COCO / "data" / "coco128" / "images"

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason=f"needs {IMAGES}")

#: (raw score tolerance, detection score tolerance, box IoU, the score from which a reference
#: detection must be found) — float: conversion error only; int8: quantisation error
TOLERANCE = {"ssdlite": (1e-4, 1e-3, 0.99, 0.3), "nanodet": (0.08, 0.08, 0.7, 0.35)}


@pytest.fixture(scope="module")
def detectors():
    return {"ssdlite": SsdLite(threads=2), "nanodet": NanoDet(threads=2)}


def _raw_and_candidates(detector, image):
    if isinstance(detector, SsdLite):
        out = detector.outputs(detector.preprocess(image)[None])
        out = {k: v[0] for k, v in out.items()}
        return out, detector.decode(out, image.size)
    x, scale = detector.preprocess(image)
    out = {k: v[0] for k, v in detector.outputs(x[None]).items()}
    return out, detector.decode(out, scale)


@pytest.mark.parametrize("model", sorted(FIXTURE["models"]))
def test_onnx_matches_tfjs(model, detectors):
    ref = FIXTURE["models"][model]
    detector = detectors[model]
    assert detector.path.name == ref["file"]
    raw_tol, score_tol, min_iou, must_find = TOLERANCE[model]
    for photo in ref["photos"]:
        image = decode((IMAGES / photo["photo"]).read_bytes()).image
        raw, cands = _raw_and_candidates(detector, image)
        scores = raw[ref["raw"]]
        for anchor, cls, value in photo["top_raw"]:
            assert scores[anchor, cls] == pytest.approx(value, abs=raw_tol), (
                photo["photo"],
                anchor,
            )
        ours = select(cands)
        for det in photo["detections"]:
            if det["score"] < must_find:
                continue
            same = ours.classes == COCO80.index(det["class"])
            assert same.any(), f"{model} lost {det['class']} in {photo['photo']}"
            ious = box_iou(np.array(det["box"], np.float32), ours.boxes[same])
            best = int(ious.argmax())
            assert ious[best] >= min_iou, (photo["photo"], det)
            assert ours.scores[same][best] == pytest.approx(det["score"], abs=score_tol)
        # nothing confident that the original model did not see
        ref_classes = {d["class"] for d in photo["detections"]}
        for cls, score in zip(ours.classes, ours.scores, strict=True):
            if score >= must_find + score_tol:
                assert COCO80[cls] in ref_classes, (photo["photo"], COCO80[cls], score)


def test_reference_covers_several_scenes():
    """The fixture is not trivially empty: real objects were detected in most photos."""
    for model, ref in FIXTURE["models"].items():
        found = [p for p in ref["photos"] if any(d["score"] >= 0.5 for d in p["detections"])]
        assert len(found) >= 4, model
