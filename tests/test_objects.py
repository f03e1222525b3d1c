"""The object detector analyzer on real photos: Rekognition-shaped labels with boxes, and its
quality on photos the detectors never trained on (bench/eval_labels.py measures the same)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pixdex.analyzers.base import merge_partials
from pixdex.analyzers.objects import PRESETS, ObjectDetectionAnalyzer
from pixdex.config import Settings
from pixdex.imaging import decode
from pixdex.models.detectors import COCO80

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import datasets  # noqa: E402
import eval_labels  # noqa: E402


@pytest.fixture(scope="module")
def analyzer() -> ObjectDetectionAnalyzer:
    return ObjectDetectionAnalyzer.from_settings(Settings(threads=2, store_min_confidence=20))


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_contract(analyzer: ObjectDetectionAnalyzer) -> None:
    assert analyzer.name == "objects"
    assert analyzer.min_side == 416
    assert "ssdlite:" in analyzer.version and "nanodet:" in analyzer.version
    assert "+min20" in analyzer.version  # the stored floor changes what is stored
    assert "+unsure0.25-0.5." in analyzer.version  # when NanoDet runs changes the labels too
    assert analyzer.analyze([]) == []


def test_people_and_umbrella_with_boxes(analyzer: ObjectDetectionAnalyzer, coco_dir: Path):
    """coco128 000000000036: a person under an umbrella. Each gets a label, a box that matches
    the annotated one, and parent labels where the vocabulary has them."""
    data = json.loads((coco_dir / "annotations" / "instances.json").read_text())
    image = next(im for im in data["images"] if im["file_name"] == "000000000036.jpg")
    names = {c["id"]: c["name"] for c in data["categories"]}
    truth = [
        (names[a["category_id"]], a["bbox"])
        for a in data["annotations"]
        if a["image_id"] == image["id"]
    ]
    decoded = decode((coco_dir / "images" / "000000000036.jpg").read_bytes(), min_side=416)
    labels = {lb.Name: lb for lb in analyzer.analyze([decoded])[0]["Labels"]}
    # SSDLite is sure of both (0.74, 0.89): its calibration, no NanoDet (Person 88.7 here)
    assert labels["Person"].Confidence >= 85 and labels["Umbrella"].Confidence >= 90
    assert {"People", "Man", "Woman", "Kid"} <= {a.Name for a in labels["Person"].Aliases}
    for name, coco_name in (("Person", "person"), ("Umbrella", "umbrella")):
        inst = labels[name].Instances[0]
        bb = inst.BoundingBox
        assert 0 <= bb.Left <= 1 and 0 <= bb.Top <= 1 and bb.Width > 0 and bb.Height > 0
        assert bb.Left + bb.Width <= 1.0001 and bb.Top + bb.Height <= 1.0001
        box = (
            bb.Left * image["width"],
            bb.Top * image["height"],
            (bb.Left + bb.Width) * image["width"],
            (bb.Top + bb.Height) * image["height"],
        )
        best = max(_iou(box, (x, y, x + w, y + h)) for c, (x, y, w, h) in truth if c == coco_name)
        assert best >= 0.7, (name, best)
        assert inst.Confidence == labels[name].Confidence  # the best instance is the label's


def test_parents_are_labels_and_merge_with_the_classifier(analyzer, coco_dir: Path) -> None:
    """A detected car yields Car, Motor Vehicle, Vehicle, Transportation, each once after the
    classifier's labels are merged in (the two vocabularies share these names)."""
    from pixdex.analyzers.labels import LabelAnalyzer

    decoded = decode((coco_dir / "images" / "000000000071.jpg").read_bytes(), min_side=512)
    objects = analyzer.analyze([decoded])[0]
    classifier = LabelAnalyzer.from_settings(Settings(threads=2)).analyze([decoded])[0]
    merged = merge_partials([classifier, objects])["Labels"]
    names = [lb.Name for lb in merged]
    assert len(names) == len(set(names))
    by_name = {lb.Name: lb for lb in merged}
    for name in ("Car", "Motor Vehicle", "Vehicle", "Transportation", "Train"):
        assert name in by_name, names
    assert by_name["Vehicle"].Confidence >= by_name["Car"].Confidence
    assert not by_name["Vehicle"].Instances and by_name["Car"].Instances


def test_nothing_below_the_floor_and_empty_images(analyzer, coco_dir: Path) -> None:
    from PIL import Image

    from pixdex.imaging import DecodedImage

    blank = Image.new("RGB", (640, 480), (128, 128, 128))
    result = analyzer.analyze([DecodedImage(blank, 640, 480, "PNG")])[0]
    assert result == {"Labels": []}
    decoded = decode((coco_dir / "images" / "000000000009.jpg").read_bytes(), min_side=416)
    for label in analyzer.analyze([decoded])[0]["Labels"]:
        assert label.Confidence >= 20
        assert all(i.Confidence >= 20 for i in label.Instances)


def test_nanodet_runs_only_where_ssdlite_is_unsure(
    analyzer: ObjectDetectionAnalyzer, coco_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """coco128 000000000034: SSDLite sees a zebra at 0.98 and nothing between 0.25 and 0.5, so
    its objects stand alone (SSDLite's calibration); 000000000086: a bicycle at 0.48 beside a
    person and a motorcycle, so NanoDet runs and the two are fused."""
    nanodet = analyzer.detectors[1]
    calls: list[int] = []
    detect = nanodet.detect
    monkeypatch.setattr(nanodet, "detect", lambda *a, **k: calls.append(1) or detect(*a, **k))

    def labels(name: str) -> dict[str, float]:
        decoded = decode((coco_dir / "images" / name).read_bytes(), min_side=416)
        return {lb.Name: lb.Confidence for lb in analyzer.analyze([decoded])[0]["Labels"]}

    zebra = labels("000000000034.jpg")
    assert calls == [] and zebra["Zebra"] >= 90
    photo = (coco_dir / "images" / "000000000034.jpg").read_bytes()
    view = analyzer.view(decode(photo, min_side=416).image)
    first = analyzer.detectors[0].detect(view)
    dets, calibration = analyzer.combine(first, lambda: pytest.fail("NanoDet was not needed"))
    assert calibration is PRESETS["ssdlite"] and dets is first
    street = labels("000000000086.jpg")
    assert calls == [1]
    assert {"Person", "Motorcycle", "Bicycle"} <= set(street)
    always = ObjectDetectionAnalyzer(analyzer.detectors, PRESETS["ssdlite+nanodet-always"])
    assert "+unsure" not in always.version and always.version != analyzer.version


def test_presets_are_all_runnable() -> None:
    for key, preset in PRESETS.items():
        assert abs(sum(preset.weights) - 1.0) < 1e-9, key
        assert preset.slope > 0
        assert ObjectDetectionAnalyzer.from_settings(Settings(threads=1), key).preset is preset


def test_model_threads_follow_how_many_batches_run_at_once() -> None:
    """A pipeline analyzing two batches at once (the default) runs each model session on one
    thread; DetectLabels (CLI and server, one batch at a time) on every core; `threads` wins."""
    from pixdex.analyzers import default_analyzers
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.models.sessions import available_cores

    def threads(analyzers) -> set[int]:
        sessions = []
        for a in analyzers:
            if hasattr(a, "classifier"):
                sessions.append(a.classifier._session)
            sessions += [d.session for d in getattr(a, "detectors", [])]
        assert len(sessions) == 3  # classifier + the default pair of detectors
        return {s.get_session_options().intra_op_num_threads for s in sessions}

    assert Settings().analysis_workers == 2
    assert threads(default_analyzers(Settings())) == {1}
    # DetectLabels (CLI and server) analyzes two batches at once too, one thread per model each
    assert LabelDetector(Settings()).parallel == 2
    assert threads(LabelDetector(Settings()).analyzers) == {1}
    assert threads(LabelDetector(Settings(analysis_workers=1)).analyzers) == {available_cores()}
    assert threads(default_analyzers(Settings(analysis_workers=1))) == {available_cores()}
    assert threads(default_analyzers(Settings(threads=3))) == {3}


def test_coco80_matches_the_vocabulary() -> None:
    from pixdex.taxonomy import coco

    data = json.loads(
        (Path(__file__).resolve().parents[1] / "src/pixdex/taxonomy/coco.json").read_text()
    )
    assert [c["coco"] for c in data["classes"]] == list(COCO80)
    assert len(coco().classes) == 80


# Measured by `bench/eval_labels.py` (docs/labels.md) on voc-report, photos no detector trained
# on: recall 200/220 = 0.909, precision 200/225 = 0.889, Person 57/59 = 0.966 with 1/87 false,
# boxes 195/226 = 0.863, 1/150 photos without a label. Floors: a few photos below.
def test_quality_on_photos_the_detectors_never_saw() -> None:
    ds = datasets.load("voc-report")
    preset = PRESETS["ssdlite+nanodet"]
    outputs = eval_labels.analyze(ds, preset.detectors, classifier=True, threads=2)
    q = eval_labels.score(ds, eval_labels.labels_for(outputs, preset, preset.detectors), 55.0)
    assert q.pairs == 220
    assert q.found >= 198, q.per_category  # recall ≥ 0.90 (202 measured)
    assert q.precision >= 0.86
    assert q.person_found >= 55 and q.false_person <= 3
    assert q.boxed >= 192, q.boxed  # 0.85 (198 measured)
    assert q.unlabelled <= 3
