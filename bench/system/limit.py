"""(1) The limit and (2) the naive baseline, on a sample of the corpus, in this process.

The limit is the work a photo needs, stage by stage, at each stage's most efficient setting, and
what it implies: ``cores / Σ CPU seconds per photo``, the rate at which this machine's cores
would index photos if every cycle went into that work and none into waiting, copying or
coordination. Stages are timed in CPU time of this process (every thread of it), not wall time:
on a shared machine another job's load stretches wall time but hardly changes the CPU a stage
itself burns, so CPU time is the figure the shared machine distorts least.

``cores ×`` assumes every core does a lone core's work while all of them are busy. On this
shared 2-core machine that does not hold: the default analyzers on two threads at once cost 18-20
% more CPU per photo than on one, two cores giving 1.51-1.57 × one (docs/benchmarks.md). So the
limit section also measures it — the analyzers at their pipeline setting (one thread per model,
the pipeline's batch size) over the sample on one thread, then split over ``cores`` threads at
once, in alternating rounds — and reports a second limit, ``speed-up × 1000 / Σ CPU ms``: what
the cores gave when busy together. Both are printed; the ratios are given against both.

The naive baseline runs the same analyzers the plainest way: one photo at a time, read → decode
→ each analyzer on that one image → one write, nothing batched and nothing overlapped
(``Pipeline.analyze_object`` then ``Index.upsert`` of one record).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BATCHES = (1, 8, 16, 32)
THREADS = (1, 2)
#: photos and rounds for the cores-busy-together measurement (~1 min on 2 cores)
TOGETHER_PHOTOS = 256
ROUNDS = 2


@dataclass
class Stage:
    name: str
    cpu_ms: float  # best CPU ms per photo over the settings tried
    wall_ms: float  # wall ms per photo at that setting
    setting: str  # the setting that was best
    tried: dict[str, float] = field(default_factory=dict)  # setting → CPU ms per photo


@dataclass
class Limit:
    photos: int
    cores: int
    stages: list[Stage]
    #: wall-clock speed-up of the analyzers on ``cores`` threads at once over one, per round
    together: list[float] = field(default_factory=list)
    together_photos: int = 0

    @property
    def cpu_ms(self) -> float:
        return sum(s.cpu_ms for s in self.stages)

    @property
    def img_s(self) -> float:
        return self.cores * 1000.0 / self.cpu_ms

    @property
    def speedup(self) -> float:
        """What ``cores`` busy cores gave over one (mean of the rounds; ``cores`` if unmeasured)."""
        return sum(self.together) / len(self.together) if self.together else float(self.cores)

    @property
    def busy_img_s(self) -> float:
        """The limit with the cores' speed-up as measured together instead of ``cores``."""
        return self.speedup * 1000.0 / self.cpu_ms


def _timed(fn: Any, n: int) -> tuple[float, float, Any]:
    """(CPU ms per photo, wall ms per photo, result) of ``fn()`` over ``n`` photos."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return (time.process_time() - c0) * 1000 / n, (time.perf_counter() - t0) * 1000 / n, result


def _best(name: str, runs: dict[str, tuple[float, float]]) -> Stage:
    setting = min(runs, key=lambda k: runs[k][0])
    cpu, wall = runs[setting]
    return Stage(name, cpu, wall, setting, {k: v[0] for k, v in runs.items()})


def measure_limit(paths: list[Path], cores: int, log=print) -> Limit:
    from pixdex.analyzers import default_analyzers
    from pixdex.config import Settings
    from pixdex.imaging import decode
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import Pipeline
    from pixdex.sources.local import LocalSource

    n = len(paths)
    stages: list[Stage] = []

    def read_hash() -> list[bytes]:
        out = []
        for p in paths:
            data = p.read_bytes()
            hashlib.sha256(data).hexdigest()
            out.append(data)
        return out

    read_hash()  # page cache warm, as it is for the pipeline after the listing
    cpu, wall, blobs = _timed(read_hash, n)
    stages.append(Stage("read + sha256", cpu, wall, "-"))

    by_threads = {t: default_analyzers(Settings(threads=t)) for t in THREADS}
    analyzers = by_threads[THREADS[0]]
    min_side = max(getattr(a, "min_side", 0) for a in analyzers)
    cpu, wall, images = _timed(lambda: [decode(b, min_side=min_side) for b in blobs], n)
    stages.append(Stage(f"decode (draft, short side ≥ {min_side})", cpu, wall, "-"))

    for position, first in enumerate(analyzers):
        batches = BATCHES if first.name == "labels" else (16,)
        runs: dict[str, tuple[float, float]] = {}
        for threads in THREADS:
            analyzer = by_threads[threads][position]
            analyzer.analyze(images[:4])  # warm-up: first-run allocations
            for batch in batches:
                if len(batches) == 1 and threads > 1 and first.name in ("properties", "exif"):
                    continue  # plain Python: no threads setting

                def run(a: Any = analyzer, b: int = batch) -> None:
                    for i in range(0, n, b):
                        a.analyze(images[i : i + b])

                cpu, wall, _ = _timed(run, n)
                runs[f"{threads} thread(s), batch {batch}"] = (cpu, wall)
        stage = _best(first.name, runs)
        log(f"  {first.name:<12} {stage.cpu_ms:6.2f} ms CPU/photo at {stage.setting}")
        stages.append(stage)

    with tempfile.TemporaryDirectory() as tmp:
        index = SqliteIndex(Path(tmp) / "limit.db")
        folder = LocalSource(paths[0].parent)
        pipeline = Pipeline(analyzers, index)
        records = [pipeline.analyze_object(folder, folder.ref_for(p)) for p in paths[:64]]
        index.upsert(records[:16])  # one-time loads (word lexicon) outside the timing
        keyed = [
            type(r).model_validate({**r.to_json(), "key": f"w/{r.key}", "id": ""}) for r in records
        ]
        cpu, wall, _ = _timed(
            lambda: [index.upsert(keyed[i : i + 16]) for i in range(0, len(keyed), 16)],
            len(keyed),
        )
        index.close()
    stages.append(Stage("record + SQLite write", cpu, wall, "batch 16"))
    sample = images[:TOGETHER_PHOTOS]
    batch = Settings().batch_size  # as the pipeline batches
    together = [_together(analyzers, sample, cores, batch) for _ in range(ROUNDS)]
    log(f"  {cores} cores busy together: " + ", ".join(f"{x:.2f}" for x in together) + " × one")
    return Limit(n, cores, stages, together, len(sample))


def _together(analyzers: list[Any], images: list[Any], cores: int, batch: int) -> float:
    """Wall-clock speed-up of the analyzers (one model thread each, ``batch`` photos at a time)
    over ``images`` split across ``cores`` threads at once, against all of them on one thread."""
    from concurrent.futures import ThreadPoolExecutor

    def run(part: list[Any]) -> None:
        for i in range(0, len(part), batch):
            for a in analyzers:
                a.analyze(part[i : i + batch])

    t0 = time.perf_counter()
    run(images)
    alone = time.perf_counter() - t0
    parts = [images[k::cores] for k in range(cores)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(run, parts))
    return alone / (time.perf_counter() - t0)


@dataclass
class Naive:
    photos: int
    img_s: float
    cpu_ms: float


def measure_naive(paths: list[Path]) -> Naive:
    from pixdex.analyzers import default_analyzers
    from pixdex.config import Settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import Pipeline
    from pixdex.sources.local import LocalSource

    with tempfile.TemporaryDirectory() as tmp:
        index = SqliteIndex(Path(tmp) / "naive.db")
        # one photo at a time: each model on every core, as a single stream of work gets them
        pipeline = Pipeline(default_analyzers(Settings(analysis_workers=1)), index)
        folder = LocalSource(paths[0].parent)
        warm = pipeline.analyze_object(folder, folder.ref_for(paths[0]))
        index.upsert([warm])  # model sessions and lexicon loaded before the clock starts
        index.delete(warm.bucket, [warm.key])
        c0, t0 = time.process_time(), time.perf_counter()
        for p in paths:
            record = pipeline.analyze_object(folder, folder.ref_for(p))
            index.upsert([record])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert index.stats().records == len(paths)
        index.close()
    return Naive(len(paths), len(paths) / wall, cpu * 1000 / len(paths))
