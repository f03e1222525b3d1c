#!/usr/bin/env python3
"""What turning faces on costs ``pixdex index``: CPU time of the whole command (user + system,
model loading included) on a folder, with and without ``--faces``, in interleaved rounds.

    PYTHONPATH=src python bench/bench_faces_cost.py [FOLDER] [--rounds 3]

FOLDER defaults to ``../shared/data/coco128/images``. Each run indexes into a fresh SQLite file
in its own process (``pixdex index FOLDER --index … --[no-]faces -q``), so nothing is cached
between runs but the operating system's file cache. CPU time is steadier than wall time on a
shared machine; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"


def cpu_seconds(folder: Path, faces: bool, db: Path) -> float:
    """CPU seconds (user + system) of one ``pixdex index`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    flag = "--faces" if faces else "--no-faces"
    command = [sys.executable, "-m", "pixdex", "index", str(folder), "--index", str(db), flag, "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run(
        command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, nargs="?", default=SHARED / "coco128" / "images")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    photos = sum(1 for p in args.folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for faces in (False, True) if n % 2 == 0 else (True, False):
                db = Path(tmp) / f"{n}-{faces}.db"
                times[faces].append(cpu_seconds(args.folder, faces, db))
    plain, with_faces = (statistics.median(times[f]) for f in (False, True))
    print(f"{photos} photos, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"pixdex index          CPU {plain:.2f} s (median; {plain / photos * 1000:.1f} ms/photo)")
    print(
        f"pixdex index --faces  CPU {with_faces:.2f} s "
        f"(median; {with_faces / photos * 1000:.1f} ms/photo)"
    )
    print(f"ratio {with_faces / plain:.3f}")


if __name__ == "__main__":
    main()
