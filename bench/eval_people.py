"""Measure the "Person" label of PeopleAnalyzer on coco128 against its annotations.

Image level: a photo is positive when COCO annotates a person in it. Recall is reported twice:
over photos where some person covers > 1 % of the image (segmentation area; 47 photos) and over
all 61 person photos. Precision counts a "Person" as right when any person is annotated. Also:
the share of annotated persons (> 1 %) whose box some instance matches at IoU > 0.5, and speed.

    .venv/bin/python bench/eval_people.py [--threads 1] [--coco ../shared/data/coco128]

``--ablation`` also scores subsets of the views and the single-view maximum, from the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from pixdex.analyzers import people as P
from pixdex.imaging import decode

REPO = Path(__file__).resolve().parents[1]


def load_truth(coco: Path) -> tuple[list[str], dict[str, float], dict[str, list[list[float]]]]:
    """File names, largest person share per file, person boxes [x0, y0, x1, y1] per file."""
    data = json.loads((coco / "annotations" / "instances.json").read_text())
    images = {i["id"]: i for i in data["images"]}
    share: dict[str, float] = defaultdict(float)
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann["category_id"] != 1:
            continue
        img = images[ann["image_id"]]
        name = img["file_name"]
        share[name] = max(share[name], ann["area"] / (img["width"] * img["height"]))
        x, y, w, h = ann["bbox"]
        boxes[name].append([x, y, x + w, y + h, ann["area"] / (img["width"] * img["height"])])
    return sorted(i["file_name"] for i in data["images"]), dict(share), dict(boxes)


def rates(scores: dict[str, float], share: dict[str, float], threshold: float) -> dict[str, float]:
    pred = {f for f, s in scores.items() if s >= threshold}
    big = {f for f, v in share.items() if v > 0.01}
    tp = len(pred & set(share))
    precision = tp / len(pred) if pred else 1.0
    recall_big = len(pred & big) / len(big)
    recall_all = tp / len(share)
    f1 = 2 * precision * recall_big / (precision + recall_big) if precision + recall_big else 0
    return {
        "n": len(pred),
        "precision": precision,
        "recall_1pct": recall_big,
        "recall_all": recall_all,
        "f1_1pct": f1,
    }


def table(title: str, scores: dict[str, float], share: dict[str, float], ths: list[float]) -> None:
    print(f"\n{title}")
    print("  score  conf  photos  precision  recall>1%  recall-all  F1(>1%)")
    for t in ths:
        r = rates(scores, share, t)
        print(
            f"  {t:5.2f} {P.confidence(t):5.1f}  {r['n']:6d}  {r['precision']:9.3f}  "
            f"{r['recall_1pct']:9.3f}  {r['recall_all']:10.3f}  {r['f1_1pct']:7.3f}"
        )


def best_at(scores: dict[str, float], share: dict[str, float], min_precision: float) -> str:
    best = None
    for i in range(10, 100):
        r = rates(scores, share, i / 100)
        if r["precision"] >= min_precision and (best is None or r["recall_1pct"] > best[1]):
            best = (i / 100, r["recall_1pct"], r["precision"])
    if best is None:
        return "none"
    return f"score {best[0]:.2f}: recall>1% {best[1]:.3f} at precision {best[2]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coco", type=Path, default=REPO.parent / "shared" / "data" / "coco128")
    ap.add_argument("--threads", type=int, default=1, help="TFLite threads")
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--views", choices=sorted(P.VIEW_MODES), default="full")
    args = ap.parse_args()

    files, share, truth = load_truth(args.coco)
    analyzer = P.PeopleAnalyzer(threads=args.threads, min_confidence=0, views=args.views)
    blobs = {f: (args.coco / "images" / f).read_bytes() for f in files}
    analyzer.detect(decode(blobs[files[0]]).image)  # warm up

    raw: dict[str, list[P.Detection]] = {}
    nviews: dict[str, int] = {}
    nsquares: dict[str, int] = {}
    t_decode = t_detect = 0.0
    for f in files:
        t0 = time.perf_counter()
        img = decode(blobs[f], min_side=analyzer.min_side).image
        t1 = time.perf_counter()
        raw[f] = analyzer.detect(img)
        t_detect += time.perf_counter() - t1
        t_decode += t1 - t0
        nviews[f] = len(P.views(*img.size, tiles=analyzer.tiles))
        nsquares[f] = len(P.views(*img.size, tiles=False))
    n = len(files)
    print(
        f"coco128: {n} photos, {len(share)} with a person, "
        f"{sum(v > 0.01 for v in share.values())} with a person > 1 % of the image"
    )
    print(
        f"speed (threads={args.threads}): decode {n / t_decode:.1f} img/s, "
        f"detect {n / t_detect:.1f} img/s ({sum(nviews.values()) / n:.1f} views/img), "
        f"both {n / (t_decode + t_detect):.1f} img/s"
    )

    def image_scores(keep=lambda f, d: True, agree=True) -> dict[str, float]:
        out = {}
        for f, dets in raw.items():
            dets = [d for d in dets if keep(f, d)]
            if agree:
                out[f] = max((s for s, _ in P.merge(dets)), default=0.0)
            else:
                out[f] = max((d.score for d in dets), default=0.0)
        return out

    ths = [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8, 0.9]
    scores = image_scores()
    table(f"views={args.views}, agreement score (what PeopleAnalyzer does)", scores, share, ths)
    print(f"  operating point: score {analyzer.score_at_55} = Confidence 55")
    called = {f for f, v in scores.items() if v >= analyzer.score_at_55}
    big = {f for f, v in share.items() if v > 0.01}
    print(
        f"  at the operating point: recall>1% {len(called & big)}/{len(big)},"
        f" precision {len(called & set(share))}/{len(called)}"
    )
    for p in (0.9, 0.95):
        print(f"  best recall at precision >= {p}: {best_at(scores, share, p)}")

    # instance boxes: annotated persons > 1 % matched by an instance at IoU > 0.5, on photos
    # called Person at Confidence >= 55
    matched = total = 0
    for f, dets in raw.items():
        big = [b for b in truth.get(f, []) if b[4] > 0.01]
        if not big or scores[f] < P.SCORE_AT_55:
            continue
        people = [box for s, box in P.merge(dets) if s >= P.SCORE_AT_55 * 0.5]
        for b in big:
            total += 1
            matched += any(P.iou(b[:4], box) > 0.5 for box in people)
    print(f"  boxes: {matched}/{total} persons > 1 % matched at IoU > 0.5 (on detected photos)")

    if args.ablation:
        whole = image_scores(lambda f, d: d.view == 0, agree=False)
        table("whole image only (view 0), max score", whole, share, ths)
        print(f"  best at precision >= 0.9: {best_at(whole, share, 0.9)}")
        table("all views, max score (no agreement)", image_scores(agree=False), share, ths)
        print(f"  best at precision >= 0.9: {best_at(image_scores(agree=False), share, 0.9)}")
        sq = image_scores(lambda f, d: d.view < nsquares[f])
        table("whole image + squares (no tiles), agreement score", sq, share, ths)
        print(f"  views=fast operating point: score {P.SCORE_AT_55_FAST} = Confidence 55")
        print(f"  best at precision >= 0.9: {best_at(sq, share, 0.9)}")


if __name__ == "__main__":
    main()
