#!/usr/bin/env python3
"""The floor under the default labels' cost: what the models alone take per photo, and so the
highest rate any pipeline could index at with them on this machine's cores.

    .venv/bin/python bench/bench_floor.py [--rounds 3]

The default analyzers' labels need three networks (docs/labels.md): the ImageNet classifier on
every photo, SSDLite on every photo and NanoDet on the photos where SSDLite is unsure (the Person
bar, recall ≥ 0.92, is met by neither detector alone). Whatever a pipeline batches, overlaps or
skips around them, each photo costs at least its decode plus those models' own time inside ONNX
Runtime. This measures, in one run and on the same photos (coco128, as ``bench_index.py`` and
``eval_text.py --index-cost`` time ``pixdex index``):

- each model's ``session.run`` alone, one thread, batched as the pipeline runs it (CPU ms per
  photo; the classifier in the pipeline's batches, the detectors one photo per run, which is
  their cheapest: SSDLite in batches of 4 took about as long per photo, 22.5–23.8 ms against
  23.2–23.3, and in batches of 16 longer, 25.8–28.0, in a one-off run);
- NanoDet's share of photos: for the default band and for the narrowest band of
  ``eval_labels.py --fit-cascade`` that still keeps Person recall ≥ 0.92 on voc-fit;
- the decode, and the whole default analyzers (labels, objects, properties, EXIF) as the
  pipeline runs them, so "everything else" is their difference, measured in the same run.

Then ``cores × 1000 / (decode + models)``: the img/s no pipeline can beat on these cores even if
everything else cost nothing and the cores scaled perfectly.

The same for the text analyzer (off by default; docs/text.md): its detector has to see every
photo at 640 px (no cheaper gate kept the small text), so its model alone, beside the default
analyzers' whole time, bounds what turning text on must cost.

CPU time (all threads of this process) is what a shared machine distorts least; rounds
alternate and the best is kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from pixdex.analyzers import default_analyzers  # noqa: E402
from pixdex.analyzers.objects import ObjectDetectionAnalyzer  # noqa: E402
from pixdex.analyzers.text import TextAnalyzer  # noqa: E402
from pixdex.config import Settings  # noqa: E402
from pixdex.imaging import decode  # noqa: E402
from pixdex.models.ocr import TextRegion  # noqa: E402
from pixdex.models.sessions import available_cores  # noqa: E402

SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))

#: the narrowest cascade band of ``eval_labels.py --fit-cascade`` (docs/labels.md) whose Person
#: recall on voc-fit is still ≥ 0.92 (61/66): NanoDet on the fewest photos the bar allows
NARROWEST_BAND = (0.4, 0.5)
#: photos per analyzer call, as ``pixdex index`` batches them
BATCH = Settings().batch_size


def cpu_ms(fn: Callable[[], object], n: int) -> float:
    """CPU ms per photo of ``fn()`` covering ``n`` photos."""
    c0 = time.process_time()
    fn()
    return (time.process_time() - c0) * 1000 / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime

    folder = SHARED / "data" / "coco128" / "images"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no coco128 photos in {folder} (set PIXDEX_SHARED to the shared data)")
    blobs = [p.read_bytes() for p in paths]
    n = len(blobs)
    analyzers = default_analyzers(Settings(threads=1))
    by_name = {a.name: a for a in analyzers}
    objects: ObjectDetectionAnalyzer = by_name["objects"]
    classifier = by_name["labels"].classifier
    ssd, nano = objects.detectors
    min_side = max(getattr(a, "min_side", 0) for a in analyzers)
    images = [decode(b, min_side=min_side) for b in blobs]
    views = [objects.view(d.image) for d in images]
    firsts = [ssd.detect(v) for v in views]
    default_share = sum(objects.unsure(f) for f in firsts) / n
    narrow = ObjectDetectionAnalyzer(
        objects.detectors, replace(objects.preset, unsure=NARROWEST_BAND)
    )
    narrow_share = sum(narrow.unsure(f) for f in firsts) / n
    clf_batches = [
        np.stack([classifier.preprocess(d.image) for d in images[i : i + BATCH]])
        for i in range(0, n, BATCH)
    ]
    ssd_inputs = [ssd.preprocess(v)[None] for v in views]
    nano_inputs = [nano.preprocess(v)[0][None] for v in views]

    text = TextAnalyzer.from_settings(Settings(threads=1))
    text_images = [decode(b, min_side=max(min_side, text.min_side)) for b in blobs]
    text_inputs = [  # as OcrEngine.detect prepares them (no gate: the default)
        text.engine._normalise(text.engine.detector_view(d.image)) for d in text_images
    ]

    found = [text.engine.detect(d.image) for d in text_images]

    def recognition() -> None:
        # fresh regions each time: recognize_many turns a region's quad into reading order
        work = [
            (d.image, [TextRegion(r.quad.copy(), r.score) for r in regions])
            for d, regions in zip(text_images, found, strict=True)
        ]
        for i in range(0, n, BATCH):
            text.engine.recognize_many(work[i : i + BATCH])

    def whole() -> None:
        for i in range(0, n, BATCH):
            for a in analyzers:
                a.analyze(images[i : i + BATCH])

    def whole_text() -> None:
        for i in range(0, n, BATCH):
            text.analyze(text_images[i : i + BATCH])

    stages: dict[str, Callable[[], object]] = {
        "decode": lambda: [decode(b, min_side=min_side) for b in blobs],
        "classifier model": lambda: [classifier.predict(b) for b in clf_batches],
        "SSDLite model": lambda: [ssd.outputs(x) for x in ssd_inputs],
        "NanoDet model (every photo)": lambda: [nano.outputs(x) for x in nano_inputs],
        "default analyzers, whole": whole,
        "text detector model (every photo, 640 px)": lambda: [
            text.engine._run_det(x) for x in text_inputs
        ],
        "text recognition (crops, model, decoding) of the regions found": recognition,
        "text analyzer, whole": whole_text,
    }
    whole()  # warm-up: first-run allocations
    whole_text()
    best = {name: float("inf") for name in stages}
    for _ in range(args.rounds):
        for name, fn in stages.items():
            best[name] = min(best[name], cpu_ms(fn, n))

    cores = available_cores()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python "
        f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}, {cores} cores; "
        f"{n} coco128 photos, best of {args.rounds} alternating rounds, CPU ms per photo, "
        "one thread per model\n"
    )
    print("| stage | CPU ms/photo |\n|---|---|")
    for name in stages:
        print(f"| {name} | {best[name]:.2f} |")
    models = best["classifier model"] + best["SSDLite model"]
    nano_ms = best["NanoDet model (every photo)"]
    rest = best["default analyzers, whole"] - models - default_share * nano_ms
    print(f"\nNanoDet runs on {default_share:.0%} of these photos with the default band "
          f"{objects.preset.unsure}, on {narrow_share:.0%} with {NARROWEST_BAND}.\n")  # fmt: skip
    print("| per photo | default band | narrowest band |\n|---|---|---|")
    floors = []
    for share in (default_share, narrow_share):
        floors.append(best["decode"] + models + share * nano_ms)
    print(f"| decode + models (the floor), CPU ms | {floors[0]:.1f} | {floors[1]:.1f} |")
    print(
        f"| highest img/s on {cores} cores (× 1000 / floor) | {cores * 1000 / floors[0]:.1f} | "
        f"{cores * 1000 / floors[1]:.1f} |"
    )
    print(
        f"\nEverything else in the default analyzers (their whole time less the models'): "
        f"{rest:.1f} ms per photo; with it, {cores} perfectly scaling cores give "
        f"{cores * 1000 / (floors[0] + rest):.1f} img/s."
    )
    base = best["decode"] + best["default analyzers, whole"]
    detector = best["text detector model (every photo, 640 px)"]
    reading = best["text recognition (crops, model, decoding) of the regions found"]
    on = best["text analyzer, whole"]
    print(
        f"\nText: the default set (decode + analyzers) {base:.1f} ms per photo; turning text on "
        f"adds {on:.1f} (× {1 + on / base:.2f}); the detector model alone {detector:.1f} "
        f"(× {1 + detector / base:.2f}), with the reading of what it found "
        f"{detector + reading:.1f} (× {1 + (detector + reading) / base:.2f}). Bar: × 1.5, "
        f"i.e. ≤ {base / 2:.1f} ms. Text found on {sum(bool(r) for r in found)} of {n} photos."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
