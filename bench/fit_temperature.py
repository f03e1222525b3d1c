#!/usr/bin/env python3
"""Fit the ImageNet classifier's softmax temperature (``analyzers/labels.py`` TEMPERATURES), and
score the classifier alone on coco128.

    .venv/bin/python bench/fit_temperature.py [--model efficientnet-lite0] [--fit-temperature]

Recall counts an (image, category) pair as found when any label mapped to the category is
emitted with Confidence ≥ --min-confidence (55, Rekognition's default); "salient" restricts to
categories whose annotated boxes cover ≥ 10 % of the image. Precision: of the emitted labels that
map to some COCO category, the share whose category is annotated in the image.
``--fit-temperature`` picks the temperature with the best recall at the floor whose precision
stays ≥ 0.85, and prints reliability before/after. The whole label pipeline (classifier + object
detectors) is evaluated by bench/eval_labels.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pixdex.models.classifier import Classifier

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
COCO = SHARED / "data" / "coco128"
LABEL_MAP = REPO / "tests" / "data" / "coco_label_map.json"


@dataclass
class Truth:
    """COCO annotations per image: category → share of the image its boxes cover."""

    images: list[Path]
    present: list[dict[str, float]]


def load_truth(coco: Path = COCO) -> Truth:
    data = json.loads((coco / "annotations" / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    size = {im["id"]: (im["file_name"], im["width"] * im["height"]) for im in data["images"]}
    cover: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for a in data["annotations"]:
        cover[a["image_id"]][names[a["category_id"]]] += a["area"] / size[a["image_id"]][1]
    ids = sorted(size, key=lambda i: size[i][0])
    return Truth(
        images=[coco / "images" / size[i][0] for i in ids],
        present=[dict(cover[i]) for i in ids],
    )


def load_map(path: Path = LABEL_MAP) -> dict[str, list[str]]:
    return json.loads(path.read_text())["map"]


@dataclass
class Quality:
    pairs: int = 0
    found: int = 0
    salient_pairs: int = 0
    salient_found: int = 0
    emitted: int = 0
    correct: int = 0
    per_category: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    wrong: list[tuple[str, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / max(1, self.pairs)

    @property
    def salient_recall(self) -> float:
        return self.salient_found / max(1, self.salient_pairs)

    @property
    def precision(self) -> float:
        return self.correct / max(1, self.emitted)


def score(
    labels_per_image: list[dict[str, float]],
    truth: Truth,
    mapping: dict[str, list[str]],
    *,
    min_confidence: float = 55.0,
    skip: set[str] = frozenset(),
) -> Quality:
    """``labels_per_image``: label name → confidence, per image in ``truth`` order."""
    category_of = {label: cat for cat, labels in mapping.items() for label in labels}
    q = Quality()
    for path, present, labels in zip(truth.images, truth.present, labels_per_image, strict=True):
        shown = {n for n, c in labels.items() if c >= min_confidence}
        for cat, labels_for in mapping.items():
            if cat not in present or cat in skip:
                continue
            hit = any(lb in shown for lb in labels_for)
            q.pairs += 1
            q.found += hit
            q.per_category[cat][0] += 1
            q.per_category[cat][1] += hit
            if present[cat] >= 0.10:
                q.salient_pairs += 1
                q.salient_found += hit
        for cat in {category_of[n] for n in shown if n in category_of} - skip:
            q.emitted += 1
            if cat in present:
                q.correct += 1
            else:
                q.wrong.append((path.name, cat))
    return q


@cache
def classifier(model: str) -> Classifier:
    """One ONNX Runtime session per model for the run (the temperature fit scores 21 times)."""
    from pixdex.models.classifier import Classifier

    return Classifier(model)


def logits_for(images: list[Path], model: str, batch: int = 16) -> np.ndarray:
    from pixdex.imaging import decode

    clf = classifier(model)
    out = []
    for i in range(0, len(images), batch):
        decoded = [decode(p.read_bytes(), min_side=clf.min_side) for p in images[i : i + batch]]
        out.append(clf.predict(np.stack([clf.preprocess(d.image) for d in decoded])))
    return np.concatenate(out)


def label_scores(logits: np.ndarray, model: str, temperature: float | None) -> list[dict]:
    from pixdex.analyzers.labels import LabelAnalyzer

    analyzer = LabelAnalyzer(classifier(model), temperature=temperature)
    return [analyzer.scores(p) for p in analyzer.probabilities(logits)]


def log_loss(scores: list[dict], truth: Truth, mapping: dict[str, list[str]]) -> float:
    total, n = 0.0, 0
    for present, labels in zip(truth.present, scores, strict=True):
        for cat, names in mapping.items():
            if cat == "person":
                continue
            p = min(max(max(labels.get(x, 0.0) for x in names) / 100, 1e-6), 1 - 1e-6)
            y = cat in present
            total -= math.log(p if y else 1 - p)
            n += 1
    return total / n


def reliability(scores: list[dict], truth: Truth, mapping: dict[str, list[str]]) -> list[str]:
    """Confidence bins of emitted mapped labels → how often the category was really there."""
    bins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for present, labels in zip(truth.present, scores, strict=True):
        for cat, names in mapping.items():
            if cat == "person":
                continue
            c = max(labels.get(x, 0.0) for x in names)
            if c >= 20:
                b = min(int(c // 20), 4)
                bins[b][0] += 1
                bins[b][1] += cat in present
    return [
        f"  confidence {b * 20:>3}-{b * 20 + 20:<3}: {k:>3} labels, {100 * h / k:5.1f} % right"
        for b, (k, h) in sorted(bins.items())
    ]


def fit_temperature(
    logits: np.ndarray,
    model: str,
    truth: Truth,
    mapping: dict[str, list[str]],
    min_confidence: float,
    target_precision: float = 0.85,
) -> float:
    """The temperature with the best recall at ``min_confidence`` whose precision there stays
    ≥ ``target_precision``: Rekognition's default floor (55) should mean "usually right".
    The log-loss optimum is printed too; on 128 photos it mostly rewards silence."""
    print(f"{'T':>5} {'recall':>7} {'salient':>7} {'precision':>9} {'log loss':>8}")
    best, best_recall = 1.0, -1.0
    for t in [round(0.5 + 0.05 * i, 2) for i in range(21)]:
        scores = label_scores(logits, model, t)
        q = score(scores, truth, mapping, min_confidence=min_confidence, skip={"person"})
        loss = log_loss(scores, truth, mapping)
        print(f"{t:5.2f} {q.recall:7.3f} {q.salient_recall:7.3f} {q.precision:9.3f} {loss:8.4f}")
        if q.precision >= target_precision and q.recall > best_recall:
            best, best_recall = t, q.recall
    print(f"chosen T={best} (best recall with precision >= {target_precision})")
    for t in sorted({1.0, best}):
        print(f"reliability at T={t}:")
        print("\n".join(reliability(label_scores(logits, model, t), truth, mapping)))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--min-confidence", type=float, default=55.0)
    ap.add_argument("--fit-temperature", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))

    truth, mapping = load_truth(), load_map()
    logits = logits_for(truth.images, args.model)
    if args.fit_temperature:
        fit_temperature(logits, args.model, truth, mapping, args.min_confidence)
    scores = label_scores(logits, args.model, args.temperature)
    # ImageNet has no person class: 'person' is the object detector's (bench/eval_labels.py)
    q = score(scores, truth, mapping, min_confidence=args.min_confidence, skip={"person"})
    print(f"model {args.model}, {len(truth.images)} images, min confidence {args.min_confidence}")
    print(f"recall (all annotated mapped categories): {q.found}/{q.pairs} = {q.recall:.3f}")
    print(
        f"recall (categories covering >= 10 % of the image): {q.salient_found}/{q.salient_pairs}"
        f" = {q.salient_recall:.3f}"
    )
    print(f"precision of mapped labels: {q.correct}/{q.emitted} = {q.precision:.3f}")
    unlabelled = sum(max(s.values()) < args.min_confidence for s in scores)
    print(f"photos with no label >= {args.min_confidence}: {unlabelled}/{len(scores)}")
    print("per category (found/annotated):")
    for cat, (n, k) in sorted(q.per_category.items(), key=lambda kv: -kv[1][0]):
        print(f"  {cat:<16} {k}/{n}")
    print("wrong mapped labels:", ", ".join(f"{img}:{cat}" for img, cat in q.wrong) or "none")


if __name__ == "__main__":
    main()
