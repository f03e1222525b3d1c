#!/usr/bin/env python3
"""What the default labels see, measured on annotated photos — and the fit of the object
detectors' fusion weights and confidence calibration.

    .venv/bin/python bench/eval_labels.py                    # report: voc-report and coco128
    .venv/bin/python bench/eval_labels.py --fit              # fit on voc-fit, print the presets
    .venv/bin/python bench/eval_labels.py --fit-cascade      # on voc-fit: when NanoDet runs too
    .venv/bin/python bench/eval_labels.py --speed            # + end-to-end `pixdex index` img/s
    .venv/bin/python bench/eval_labels.py --detector ssdlite --datasets voc-report

Runs the product's own analyzers (the ImageNet classifier and the object detectors, merged as
``pixdex index`` merges them) on each photo and scores, at Confidence ≥ --min-confidence (55,
Rekognition's default):

- image-level recall and precision per COCO category and overall: a category is *emitted* when a
  label mapped to it reaches the floor (detector labels map by name; classifier labels through
  tests/data/coco_label_map.json); on VOC only its 20 categories are scored (bench/datasets.py);
- Person: recall on photos with a person covering > 1 % of the image, and the share of
  person-free photos that get a Person label;
- boxes: the share of non-person objects covering > 1 % of the image that an instance box of the
  right label matches at IoU ≥ 0.5;
- the share of photos with no label at all at the floor.

Where the photos come from and which split is for fitting: bench/datasets.py. Figures on coco128
flatter the detectors, which trained on those photos.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import datasets  # noqa: E402

from pixdex.analyzers.base import merge_partials  # noqa: E402
from pixdex.analyzers.objects import PRESETS, ObjectDetectionAnalyzer, Preset  # noqa: E402
from pixdex.imaging import decode  # noqa: E402
from pixdex.models.detectors import COCO80, DETECTORS, Detections, fuse  # noqa: E402
from pixdex.taxonomy import coco  # noqa: E402

LABEL_MAP = REPO / "tests" / "data" / "coco_label_map.json"
#: analyzers run with this floor so that every threshold can be scored afterwards
FLOOR = 1.0


def category_map() -> dict[str, str]:
    """Label name → COCO category: the detectors' names, then the classifier's mapped labels."""
    out = {info.name: cat for info, cat in zip(coco().classes, COCO80, strict=True)}
    for cat, names in json.loads(LABEL_MAP.read_text())["map"].items():
        for name in names:
            out.setdefault(name, cat)
    return out


@dataclass
class Outputs:
    """What the analyzers said about one photo."""

    per_model: list[Detections]  # raw detections per detector (decoded-image pixels)
    size: tuple[int, int]  # the decoded image's size
    classifier: list  # the classifier's labels (Label objects)


def analyze(ds: datasets.Dataset, detector_keys: tuple[str, ...], classifier: bool,
            threads: int = 0) -> list[Outputs]:  # fmt: skip
    from pixdex.analyzers.labels import LabelAnalyzer
    from pixdex.config import Settings

    detectors = [DETECTORS[key](threads=threads) for key in detector_keys]
    # the analyzer's own view of a photo (one resize for all detectors), as pixdex index does
    objects = ObjectDetectionAnalyzer(
        detectors, Preset(detector_keys, (1 / len(detectors),) * len(detectors), 1.0, 0.0)
    )
    settings = Settings(threads=threads, min_confidence=FLOOR, max_labels=1000)
    clf = LabelAnalyzer.from_settings(settings) if classifier else None
    min_side = max([objects.min_side] + ([clf.min_side] if clf else []))
    out = []
    for photo in ds.photos:
        img = decode(photo.path.read_bytes(), min_side=min_side)
        view = objects.view(img.image)
        per_model = [d.detect(view) for d in detectors]
        labels = clf.analyze([img])[0]["Labels"] if clf else []
        out.append(Outputs(per_model, view.size, labels))
    return out


class _Scoring(ObjectDetectionAnalyzer):
    """The analyzer's rules (which detectors run, fusion, calibration, labels) on detections
    computed beforehand, without loading the models again."""

    def __init__(self, preset: Preset) -> None:
        self.preset, self.min_confidence, self.vocabulary = preset, FLOOR, coco()


def labels_for(outputs: list[Outputs], preset: Preset, detectors: tuple[str, ...],
               ran: list[bool] | None = None) -> list[list]:  # fmt: skip
    """Merged labels per photo (classifier + objects with ``preset``), floor FLOOR; ``ran``
    gets, per photo, whether the detectors after the first ran (``Preset.unsure``)."""
    index = [detectors.index(k) for k in preset.detectors]
    analyzer = _Scoring(preset)
    merged = []
    for o in outputs:
        first, *later = [o.per_model[i] for i in index]
        if ran is not None:
            ran.append(analyzer.unsure(first))
        dets, calibration = analyzer.combine(first, lambda later=later: later)
        objects = analyzer.labels(dets, o.size, calibration)
        merged.append(merge_partials([{"Labels": o.classifier}, {"Labels": objects}])["Labels"])
    return merged


@dataclass
class Quality:
    pairs: int = 0
    found: int = 0
    emitted: int = 0
    correct: int = 0
    per_category: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    person_photos: int = 0
    person_found: int = 0
    no_person_photos: int = 0
    false_person: int = 0
    objects: int = 0
    boxed: int = 0
    unlabelled: int = 0
    photos: int = 0

    @property
    def recall(self) -> float:
        return self.found / max(1, self.pairs)

    @property
    def precision(self) -> float:
        return self.correct / max(1, self.emitted)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def score(ds: datasets.Dataset, labels: list[list], floor: float) -> Quality:
    cat_of = category_map()
    q = Quality(photos=len(ds.photos))
    for photo, photo_labels in zip(ds.photos, labels, strict=True):
        shown = [lb for lb in photo_labels if lb.Confidence >= floor]
        q.unlabelled += not shown
        emitted = {cat_of[lb.Name] for lb in shown if lb.Name in cat_of} & ds.categories
        present, ignored = photo.present(), photo.ignored()
        for cat in present:
            q.pairs += 1
            q.found += cat in emitted
            q.per_category[cat][0] += 1
            q.per_category[cat][1] += cat in emitted
        for cat in emitted - ignored:
            q.emitted += 1
            q.correct += cat in present
        people = [b for b in photo.boxes if b.category == "person"]
        if any(b.xywh[2] * b.xywh[3] > 0.01 * photo.area and not b.difficult for b in people):
            q.person_photos += 1
            q.person_found += "person" in emitted
        if not people:
            q.no_person_photos += 1
            q.false_person += "person" in emitted
        instances = [
            (cat_of[lb.Name], inst) for lb in shown if lb.Name in cat_of for inst in lb.Instances
        ]
        for b in photo.boxes:
            x, y, w, h = b.xywh
            if b.category == "person" or b.difficult or b.crowd or w * h <= 0.01 * photo.area:
                continue
            q.objects += 1
            truth = (x, y, x + w, y + h)
            q.boxed += any(
                cat == b.category and _iou(truth, _pixels(inst, photo)) >= 0.5
                for cat, inst in instances
            )
    return q


def _pixels(inst, photo: datasets.Photo) -> tuple[float, float, float, float]:
    bb = inst.BoundingBox
    x0, y0 = bb.Left * photo.width, bb.Top * photo.height
    return x0, y0, x0 + bb.Width * photo.width, y0 + bb.Height * photo.height


def report(ds: datasets.Dataset, q: Quality, floor: float, what: str) -> None:
    flag = "  (the detectors TRAINED on these photos: flattering)" if ds.seen_in_training else ""
    print(f"\n== {ds.name}: {q.photos} photos, {what}, confidence >= {floor:g}{flag}")
    print(f"image-level recall    {q.found}/{q.pairs} = {q.recall:.3f}")
    print(f"image-level precision {q.correct}/{q.emitted} = {q.precision:.3f}")
    print(
        f"Person recall (> 1 % of the image) {q.person_found}/{q.person_photos} = "
        f"{q.person_found / max(1, q.person_photos):.3f}; false Person on person-free photos "
        f"{q.false_person}/{q.no_person_photos} = {q.false_person / max(1, q.no_person_photos):.3f}"
    )
    print(
        f"objects > 1 % (not person) boxed at IoU >= 0.5: {q.boxed}/{q.objects} = "
        f"{q.boxed / max(1, q.objects):.3f}"
    )
    print(f"photos without any label: {q.unlabelled}/{q.photos} = {q.unlabelled / q.photos:.3f}")
    cats = sorted(q.per_category.items(), key=lambda kv: (-kv[1][0], kv[0]))
    print("per category (found/annotated): " + ", ".join(f"{c} {k}/{n}" for c, (n, k) in cats))


# --- fitting -------------------------------------------------------------------------------------
def pairs_for(ds: datasets.Dataset, outputs: list[Outputs], preset: Preset,
              detectors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(best fused score, present) per (photo, scored category) — what calibration is fit on."""
    index = [detectors.index(k) for k in preset.detectors]
    xs, ys = [], []
    for photo, o in zip(ds.photos, outputs, strict=True):
        dets = fuse([o.per_model[i] for i in index], preset.weights)
        best: dict[str, float] = {}
        for c, s in zip(dets.classes, dets.scores, strict=True):
            best[COCO80[c]] = max(best.get(COCO80[c], 0.0), float(s))
        for cat in ds.categories - photo.ignored():
            xs.append(best.get(cat, 0.0))
            ys.append(cat in photo.present())
    return np.array(xs), np.array(ys, dtype=np.float64)


def fit_platt(x: np.ndarray, y: np.ndarray, floor: float = 0.05) -> tuple[float, float]:
    """Logistic regression of presence on logit(score), over the pairs with a candidate at all
    (score ≥ ``floor``; below it nothing is ever emitted). Newton's method, 2 parameters."""
    keep = x >= floor
    z = np.log(np.clip(x[keep], 1e-6, 1 - 1e-6) / (1 - np.clip(x[keep], 1e-6, 1 - 1e-6)))
    t = y[keep]
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a * z + b)))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        w = p * (1 - p) + 1e-9
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


#: the operating point: Confidence 55 is where, on the fit photos, the image-level precision of
#: the labels is this — 0.025 over the 0.80 issue 13 asks. It was 0.85 (the classifier
#: temperature's rule) until coco128's recall at 55 stood at 0.641, under the 0.65 asked, with
#: all the margin on precision (docs/labels.md)
TARGET_PRECISION = 0.825


def operating_point(ds: datasets.Dataset, outputs: list[Outputs], preset: Preset,
                    detectors: tuple[str, ...]) -> float:  # fmt: skip
    """The lowest Confidence (to 0.5) at which precision on ``ds`` is ≥ TARGET_PRECISION."""
    labels = labels_for(outputs, preset, detectors)
    best = 99.5
    for c in np.arange(99.5, 1.0, -0.5):
        if score(ds, labels, float(c)).precision < TARGET_PRECISION:
            break
        best = float(c)
    return best


#: Person's own operating point: the share of person-free fit photos with a Person label
TARGET_FALSE_PERSON = 0.04


def person_point(ds: datasets.Dataset, outputs: list[Outputs], preset: Preset,
                 detectors: tuple[str, ...]) -> float:  # fmt: skip
    """The lowest Confidence (to 0.5) at which the false-Person rate on ``ds`` is at most
    TARGET_FALSE_PERSON (a margin under the product's 5 %)."""
    labels = labels_for(outputs, preset, detectors)
    best = 99.5
    for c in np.arange(99.5, 1.0, -0.5):
        q = score(ds, labels, float(c))
        if q.false_person > TARGET_FALSE_PERSON * q.no_person_photos:
            break
        best = float(c)
    return best


def fit(ds: datasets.Dataset, outputs: list[Outputs], detectors: tuple[str, ...],
        floor: float) -> None:  # fmt: skip
    """For each detector combination (and fusion weights): the Platt slope by logistic
    regression of "category present" on logit(fused score), then the offset that puts the
    operating point (TARGET_PRECISION on these photos) at Confidence ``floor``."""
    print(f"\n== fitting on {ds.name} ({len(ds.photos)} photos)")
    candidates: list[Preset] = []
    if len(detectors) == 2:
        for w in (0.3, 0.4, 0.5, 0.6):
            candidates.append(Preset(detectors, (round(1 - w, 2), w), 1.0, 0.0))
    for key in detectors:
        candidates.append(Preset((key,), (1.0,), 1.0, 0.0))
    print(f"{'detectors':<18} {'weights':<10} {'slope':>6} {'offset':>7} {'person':>7} "
          f"{'recall':>7} {'precision':>9} {'person':>7} {'falsePer':>8}")  # fmt: skip
    for cand in candidates:
        x, y = pairs_for(ds, outputs, cand, detectors)
        a, b = fit_platt(x, y)
        point = operating_point(ds, outputs, Preset(cand.detectors, cand.weights, a, b), detectors)
        b += math.log(floor / (100 - floor)) - math.log(point / (100 - point))
        preset = Preset(cand.detectors, cand.weights, a, b)
        person = person_point(ds, outputs, preset, detectors)
        shift = math.log(floor / (100 - floor)) - math.log(person / (100 - person))
        preset = Preset(cand.detectors, cand.weights, round(a, 3), round(b, 3), round(b + shift, 3))
        q = score(ds, labels_for(outputs, preset, detectors), floor)
        print(
            f"{'+'.join(preset.detectors):<18} {','.join(map(str, preset.weights)):<10} "
            f"{preset.slope:6.3f} {preset.offset:7.3f} {preset.person_offset:7.3f} "
            f"{q.recall:7.3f} {q.precision:9.3f} "
            f"{q.person_found / max(1, q.person_photos):7.3f} "
            f"{q.false_person / max(1, q.no_person_photos):8.3f}"
        )
    print("(Confidence = 100 × sigmoid(slope × logit(score) + offset), Person's offset its own;")
    print(f" recall and precision at Confidence >= {floor:g} on these photos)")


#: the bands tried for the cascade (NanoDet only where SSDLite is unsure), around the fused
#: score that Confidence 55 calibrates to (0.25; Person 0.34)
CASCADE_BANDS = ((0.2, 0.4), (0.2, 0.5), (0.25, 0.45), (0.25, 0.5), (0.3, 0.45), (0.3, 0.5),
                 (0.3, 0.6), (0.35, 0.5), (0.35, 0.6), (0.4, 0.5), (0.4, 0.6))  # fmt: skip


#: boxes the cascade may give up against the pair on every photo, as a share of the pair's (2 of
#: the ~190 boxes of voc-fit: the found categories and Person are held exactly)
BOX_SLACK = 0.02


def fit_cascade(ds: datasets.Dataset, outputs: list[Outputs], floor: float) -> None:
    """For each band: on how many photos NanoDet runs and what the labels then score; the
    band chosen is the one with the fewest NanoDet runs whose recall and Person recall are at
    least those of the pair run on every photo, and its boxes within BOX_SLACK of the pair's."""
    both = PRESETS["ssdlite+nanodet-always"]
    detectors = both.detectors
    print(f"\n== cascade bands on {ds.name} ({len(ds.photos)} photos), Confidence >= {floor:g}")
    print(f"{'band':<12} {'NanoDet on':>10} {'recall':>7} {'precision':>9} {'Person':>7} "
          f"{'falsePer':>8} {'boxed':>6}")  # fmt: skip
    rows = []
    for band in (None, *CASCADE_BANDS):
        preset = both if band is None else replace(both, unsure=band, alone=PRESETS["ssdlite"])
        ran: list[bool] = []
        q = score(ds, labels_for(outputs, preset, detectors, ran), floor)
        share = sum(ran) / len(ran)
        rows.append((band, share, q))
        print(f"{'always' if band is None else f'{band[0]:g}-{band[1]:g}':<12} {share:10.2f} "
              f"{q.recall:7.3f} {q.precision:9.3f} {q.person_found:>3}/{q.person_photos:<3} "
              f"{q.false_person:>4}/{q.no_person_photos:<3} {q.boxed:>6}")  # fmt: skip
    ref = rows[0][2]
    keeps = [r for r in rows[1:] if r[2].found >= ref.found
             and r[2].boxed >= (1 - BOX_SLACK) * ref.boxed
             and r[2].person_found >= ref.person_found]  # fmt: skip
    if keeps:
        band, share, _ = min(keeps, key=lambda r: r[1])
        print(f"chosen: {band[0]:g}-{band[1]:g} (NanoDet on {share:.0%} of the photos)")
    else:
        print("no band keeps the pair's recall, Person recall and (nearly) its boxes")


def speed(ds: datasets.Dataset, detector: str) -> None:
    """End to end: ``pixdex index`` over the photos' folder into a fresh SQLite file."""
    folder = ds.photos[0].path.parent
    with tempfile.TemporaryDirectory(prefix="pixdex-eval-") as tmp:
        cmd = [str(REPO / ".venv" / "bin" / "pixdex"), "index", str(folder), "--index",
               str(Path(tmp) / "i.db")]  # fmt: skip
        env = {"PIXDEX_DETECTOR": detector, "PATH": "/usr/bin:/bin"}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        took = time.perf_counter() - start
    n = len(list(folder.glob("*.jpg")))
    print(f"\n`pixdex index {folder}`: {n} photos in {took:.1f} s = {n / took:.1f} img/s "
          "(start-up and model loading included)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["voc-report", "coco128"],
                    choices=datasets.NAMES)  # fmt: skip
    ap.add_argument("--detector", default="ssdlite+nanodet", choices=sorted(PRESETS))
    ap.add_argument("--min-confidence", type=float, default=55.0)
    ap.add_argument("--no-classifier", action="store_true", help="objects only")
    ap.add_argument("--fit", action="store_true", help="fit on voc-fit, print the presets")
    ap.add_argument("--fit-cascade", action="store_true",
                    help="on voc-fit: where SSDLite is unsure enough to run NanoDet")  # fmt: skip
    ap.add_argument("--speed", action="store_true", help="also time `pixdex index` end to end")
    args = ap.parse_args()
    preset = PRESETS[args.detector]
    detectors = preset.detectors
    if args.fit_cascade:
        ds = datasets.load("voc-fit")
        both = PRESETS["ssdlite+nanodet-always"].detectors
        fit_cascade(ds, analyze(ds, both, not args.no_classifier), args.min_confidence)
        return 0
    if args.fit:
        ds = datasets.load("voc-fit")
        fit(ds, analyze(ds, tuple(DETECTORS), not args.no_classifier), tuple(DETECTORS),
            args.min_confidence)  # fmt: skip
        return 0
    what = f"detectors {args.detector}" + ("" if args.no_classifier else " + classifier")
    for name in args.datasets:
        ds = datasets.load(name)
        outputs = analyze(ds, detectors, not args.no_classifier)
        q = score(ds, labels_for(outputs, preset, detectors), args.min_confidence)
        report(ds, q, args.min_confidence, what)
        if args.speed:
            speed(ds, args.detector)
    return 0


if __name__ == "__main__":
    sys.exit(main())
