#!/usr/bin/env python3
"""End-to-end indexing speed: a folder of photos → the default analyzers → SQLite.

    .venv/bin/python bench/bench_index.py [--folder DIR] [--copies N] [--rounds 3]

Reports (1) each default analyzer alone, in ms per image, on images decoded the way the pipeline
decodes them, and (2) the whole ``pixdex index`` pipeline (list, read, hash, decode in the
worker pool, batched analysis, SQLite writes) in images per second, cold (empty index) and on a
re-run with nothing changed. ``--copies`` repeats the folder's photos under new names to make a
larger set (default 4 × coco128 = 512 images).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))


def per_analyzer(photos: list[Path], rounds: int) -> None:
    from pixdex.config import load_settings
    from pixdex.imaging import decode
    from pixdex.pipeline import default_analyzers

    analyzers = default_analyzers(load_settings())
    min_side = max(a.min_side for a in analyzers)
    t0 = time.perf_counter()
    images = [decode(p.read_bytes(), min_side=min_side) for p in photos]
    decode_ms = (time.perf_counter() - t0) * 1000 / len(photos)
    print(f"decode (draft, min side {min_side}): {decode_ms:.2f} ms/image")
    for analyzer in analyzers:
        best, cpu = float("inf"), float("inf")
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(images), 16):
                analyzer.analyze(images[i : i + 16])
            best = min(best, (time.perf_counter() - t0) * 1000 / len(images))
            cpu = min(cpu, (time.process_time() - c0) * 1000 / len(images))
        print(
            f"{analyzer.name:<12} {best:7.2f} ms/image wall, {cpu:7.2f} ms CPU"
            f"  ({analyzer.version})"
        )


def pipeline_speed(
    folder: Path,
    rounds: int,
    detector: str | None,
    threads: int | None = None,
    analysis_workers: int | None = None,
) -> None:
    """``detector``: the object detector preset, or None for no object detector; ``threads``
    and ``analysis_workers``: the settings' defaults unless given."""
    from pixdex.config import load_settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import build_pipeline
    from pixdex.sources.local import LocalSource

    n = sum(1 for _ in folder.iterdir())
    cold, warm = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            tuning = {"threads": threads, "analysis_workers": analysis_workers}
            settings = load_settings(
                index=str(Path(tmp) / "index.db"),
                objects=detector is not None,
                detector=detector or "ssdlite",
                **{k: v for k, v in tuning.items() if v is not None},
            )
            index = SqliteIndex(Path(tmp) / "index.db")
            pipeline = build_pipeline(settings, index)
            t0 = time.perf_counter()
            summary = pipeline.run(LocalSource(folder))
            cold.append(n / (time.perf_counter() - t0))
            assert summary.indexed == n, summary
            t0 = time.perf_counter()
            summary = pipeline.run(LocalSource(folder))
            warm.append(n / (time.perf_counter() - t0))
            assert summary.unchanged == n, summary
            index.close()
    what = f"objects by {detector}" if detector else "without the object detector"
    what += (
        f", {settings.session_threads or 'all'} model thread(s) × {settings.analysis_workers}"
        f" analysis worker(s), batch {settings.batch_size}"
    )
    print(
        f"pixdex index, {n} images, {what}, empty index: {statistics.median(cold):.1f} img/s "
        f"(median of {rounds}; runs {', '.join(f'{x:.1f}' for x in cold)})"
    )
    print(f"  re-run, nothing changed: {statistics.median(warm):.0f} img/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=SHARED / "data" / "coco128" / "images")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import numpy
    import onnxruntime
    import PIL

    photos = sorted(args.folder.glob("*.jpg"))
    print(
        f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
        f"Pillow {PIL.__version__}, numpy {numpy.__version__}, {os.cpu_count()} cores"
    )
    per_analyzer(photos, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for c in range(args.copies):
            for p in photos:
                shutil.copy(p, folder / f"{c}-{p.name}")
        for detector in ("ssdlite+nanodet", "ssdlite+nanodet-always", "ssdlite", None):
            pipeline_speed(folder, args.rounds, detector)


if __name__ == "__main__":
    main()
