#!/usr/bin/env python3
"""Object detector speed, stage by stage: preprocessing, the ONNX model (1 and all threads),
decoding + NMS, fusion — per photo, as wall time and CPU time; then the whole analyzer with
each detector setting.

    .venv/bin/python bench/bench_detectors.py [--photos 64] [--rounds 3]

CPU time is what a busy machine distorts least (the development machine is shared): compare
detectors by it, and by ratios measured in the same run. Photos: coco128, decoded the way the
pipeline decodes them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))

from pixdex.analyzers.objects import PRESETS, ObjectDetectionAnalyzer  # noqa: E402
from pixdex.config import Settings  # noqa: E402
from pixdex.imaging import decode  # noqa: E402
from pixdex.models.detectors import DETECTORS, fuse  # noqa: E402
from pixdex.models.sessions import available_cores  # noqa: E402


def timed(fn: Callable[[], object], n: int, rounds: int) -> tuple[float, float]:
    """Best of ``rounds``: (wall ms, CPU ms) per item for ``fn`` covering ``n`` items."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, (time.perf_counter() - t0) * 1000 / n)
        cpu = min(cpu, (time.process_time() - c0) * 1000 / n)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime

    paths = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))[: args.photos]
    print(
        f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
        f"{available_cores()} cores; {len(paths)} coco128 photos, best of {args.rounds}"
    )
    analyzer = ObjectDetectionAnalyzer.from_settings(
        Settings(detector="ssdlite+nanodet", threads=1, store_min_confidence=20)
    )
    decoded = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in paths]
    images = [d.image for d in decoded]
    n = len(images)
    wall, cpu = timed(lambda: [analyzer.view(i) for i in images], n, args.rounds)
    views = [analyzer.view(i) for i in images]
    print("\n| stage | wall ms/photo | CPU ms/photo |\n|---|---|---|")
    print(f"| one resize for both detectors (long side 416) | {wall:.2f} | {cpu:.2f} |")
    per_model = []
    for key, cls in DETECTORS.items():
        one, every = cls(threads=1), cls(threads=0)
        prepared = [one.preprocess(v) for v in views]
        wall, cpu = timed(lambda d=one: [d.preprocess(v) for v in views], n, args.rounds)
        print(f"| {key}: preprocess | {wall:.2f} | {cpu:.2f} |")
        tensors = [p[0] if isinstance(p, tuple) else p for p in prepared]
        for label, det in (("1 thread", one), (f"{available_cores()} threads", every)):
            wall, cpu = timed(
                lambda d=det, ts=tensors: [d.outputs(t[None]) for t in ts], n, args.rounds
            )
            print(f"| {key}: model, {label} | {wall:.2f} | {cpu:.2f} |")
        wall, cpu = timed(lambda d=one: [d.detect(v) for v in views], n, args.rounds)
        print(f"| {key}: whole detector (preprocess, model, decode, NMS), 1 thread | "
              f"{wall:.2f} | {cpu:.2f} |")  # fmt: skip
        per_model.append([one.detect(v) for v in views])
    weights = PRESETS["ssdlite+nanodet-always"].weights
    pairs = list(zip(*per_model, strict=True))
    wall, cpu = timed(lambda: [fuse(list(p), weights) for p in pairs], n, args.rounds)
    print(f"| fusion of both | {wall:.2f} | {cpu:.2f} |")
    fused = [fuse(list(p), weights) for p in pairs]
    wall, cpu = timed(
        lambda: [analyzer.labels(f, v.size) for f, v in zip(fused, views, strict=True)],
        n,
        args.rounds,
    )
    print(f"| labels (calibration, Rekognition shape) | {wall:.2f} | {cpu:.2f} |")
    # the first detector's objects, computed above: where the default runs NanoDet too
    firsts = dict(zip(DETECTORS, per_model, strict=True))[analyzer.preset.detectors[0]]
    ran = sum(analyzer.unsure(d) for d in firsts)
    print(f"\nThe whole analyzer, 1 thread (default: NanoDet ran on {ran} of {n} photos):\n")
    print("| detector setting | wall ms/photo | CPU ms/photo |\n|---|---|---|")
    for key in ("ssdlite+nanodet", "ssdlite+nanodet-always", "ssdlite"):
        whole = ObjectDetectionAnalyzer.from_settings(
            Settings(detector=key, threads=1, store_min_confidence=20)
        )
        wall, cpu = timed(
            lambda a=whole: [a.analyze(decoded[i : i + 8]) for i in range(0, n, 8)],
            n,
            args.rounds,
        )
        print(f"| `{key}` | {wall:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
