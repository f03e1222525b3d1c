"""Profile of ``pixdex index`` (folder → SQLite) with py-spy: where the wall time of each thread
goes, summed into the pipeline's stages.

py-spy samples the real process from outside (no instrumentation, so no distortion of the
threads' interplay); time in ONNX Runtime, Pillow or numpy's C code counts for the Python frame
that called it. Its
raw output is one line per distinct stack (``thread;frame;…;frame count``) of threads that were
running (py-spy leaves out threads asleep in a lock, a queue or I/O); every sample is put into
the first stage in ``STAGES`` its stack reaches. Busy samples against the samples a thread would
give over the whole run show how much of the run each thread kind was working: what keeps the
cores from being kept busy.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from system.runs import clean_env

REPO = Path(__file__).resolve().parents[2]

#: (stage, pattern matched against a frame "function (file:line)"); first match in stack order
#: from the leaf wins for waits, from the root for work (see ``_stage``)
STAGES: list[tuple[str, str]] = [
    ("labels: classifier (ONNX Runtime)", r"predict \(pixdex/models/classifier\.py"),
    ("labels: preprocess", r"preprocess \(pixdex/models/classifier\.py"),
    ("labels: taxonomy, records", r"\(pixdex/analyzers/labels\.py"),
    ("objects: detector models", r"\(pixdex/models/detectors\.py"),
    ("objects: resize, labels", r"\(pixdex/analyzers/objects\.py"),
    ("properties", r"\(pixdex/analyzers/properties\.py"),
    ("exif", r"\(pixdex/analyzers/exif\.py"),
    ("text (OCR)", r"\(pixdex/analyzers/text\.py"),
    ("merge partial records", r"merge_partials \(pixdex/analyzers/base\.py"),
    ("decode", r"decode \(pixdex/imaging\.py"),
    ("read + sha256", r"_fetch_one \(pixdex/pipeline\.py"),
    ("SQLite write", r"\(pixdex/indexes/sqlite\.py"),
    ("record building", r"_record \(pixdex/pipeline\.py"),
    ("listing, planning", r"(run|plan) \(pixdex/pipeline\.py"),
    ("start-up (imports, model load)", r"<module>|from_settings|__init__ \(pixdex/models"),
]


@dataclass
class Profile:
    photos: int
    wall_s: float
    rate: int
    by_stage: dict[str, int]  # busy samples per stage
    leaves: list[tuple[str, int]]  # top busy leaf frames
    threads: dict[str, int]  # busy samples per thread kind
    thread_count: dict[str, int]  # threads of each kind seen

    def busy(self, kind: str) -> float:
        """Share of the run one thread of this kind was running, on average."""
        return self.threads[kind] / (self.rate * self.wall_s * self.thread_count[kind])


def _thread_kind(head: str) -> str:
    """py-spy names threads ``thread (TID): NAME``; the pipeline names its pools."""
    if "pixdex-fetch" in head:
        return "fetch/decode workers"
    if "pixdex-analyze" in head:
        return "analysis workers"
    if "MainThread" in head:
        return "main (listing, batching, writes)"
    return "other"


def _stage(frames: list[str]) -> str:
    for stage, pattern in STAGES:
        if any(re.search(pattern, f) for f in frames):
            return stage
    return "other Python"


def run(folder: Path, photos: int, rate: int = 50) -> Profile:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy not found: pip install '.[dev]' (it is a dev dependency)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        cmd = [spy, "record", "--rate", str(rate), "--format", "raw", "--threads",
               "--nonblocking", "--output", str(out), "--", sys.executable, "-m", "pixdex",
               "index", str(folder), "--index", str(Path(tmp) / "index.db"), "--quiet"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), cwd=REPO)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"py-spy failed ({done.returncode}):\n{done.stderr[-3000:]}")
        lines = out.read_text().splitlines()
    by_stage: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        head, *frames = stack.split(";")
        kind = _thread_kind(head)
        seen[kind].add(head)
        threads[kind] += n
        by_stage[_stage(frames)] += n
        if frames:
            leaves[re.sub(r":\d+\)", ")", frames[-1])] += n
    return Profile(
        photos,
        wall,
        rate,
        dict(by_stage),
        leaves.most_common(12),
        dict(threads),
        {k: len(v) for k, v in seen.items()},
    )
