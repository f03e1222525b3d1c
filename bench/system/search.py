"""(5) Search latency at 100,000 records on SQLite and OpenSearch.

Records are synthetic but shaped like what the analyzers store: each takes the annotated objects
of a random coco128 photo (real co-occurrences, real boxes as Instances) as object-detector
labels with their parents from ``taxonomy/coco.json``, plus the ImageNet classifier's kind of
output (a class, its WordNet parents at higher confidence, two weaker guesses) from
``taxonomy/imagenet.json``, merged as the pipeline merges them. Confidences are drawn between
the store floor (20) and 99, so confidence filters cut real fractions. Seeded: the same 100,000
records every run.

Queries go through the Index contract in this process (what the CLI, API and gallery call),
``limit`` 20 and 10 facets, at the default floor of 55, and again with a confidence filter of 80.
SQLite is measured both ways it searches: from its in-memory copy of the labels, as ``pixdex
serve`` does, and in SQL, as a one-shot ``pixdex search`` does. The served backends are measured
as a running server answers: after untimed passes over all the queries (``WARM_PASSES``), with
what the process holds frozen out of the cyclic collector's way as ``pixdex serve`` does
(``memory.freeze_long_lived``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system.corpus import SHARED
from system.latency import p50_p99
from system.servers import rss_mb

QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("label Person (common)", {"labels": ["Person"]}),
    ("label Dog", {"labels": ["Dog"]}),
    ("label Giraffe (rare)", {"labels": ["Giraffe"]}),
    ("label Vehicle (a parent)", {"labels": ["Vehicle"]}),
    ("labels Person + Car", {"labels": ["Person", "Car"]}),
    ("text 'dog'", {"text": "dog"}),
    ("text 'traffic light'", {"text": "traffic light"}),
]
FLOORS = (55.0, 80.0)
#: untimed passes over every query before timing any (see ``measure``)
WARM_PASSES = 30


def _templates() -> list[list[tuple[str, tuple[float, float, float, float]]]]:
    """Per coco128 photo: (COCO category name, box as fractions) of every annotated object."""
    data = json.loads((SHARED / "data" / "coco128" / "annotations" / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    objects: dict[int, list] = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        objects[a["image_id"]].append((names[a["category_id"]], (bw / w, bh / h, x / w, y / h)))
    return [objs for objs in objects.values()]


def records(n: int, seed: int = 10) -> Iterator[Any]:
    from pixdex.analyzers.base import merge_partials
    from pixdex.models.detectors import COCO80
    from pixdex.records import BoundingBox, Instance, Label, Named, Record
    from pixdex.taxonomy import LabelInfo, coco, imagenet

    vocab, tax = coco(), imagenet()
    by_coco = {name: vocab.classes[i] for i, name in enumerate(COCO80)}
    templates = _templates()
    rng = random.Random(seed)

    def label(info: LabelInfo, conf: float, instances: list[Instance]) -> Label:
        return Label(
            Name=info.name,
            Confidence=round(conf, 3),
            Instances=instances,
            Parents=[Named(Name=p) for p in info.parents],
            Aliases=[Named(Name=a) for a in info.aliases],
            Categories=[Named(Name=c) for c in info.categories],
        )

    for i in range(n):
        objects: list[Label] = []
        parents: dict[str, float] = {}
        found: dict[str, list[Instance]] = {}
        for name, (w, h, left, top) in rng.choice(templates):
            if rng.random() < 0.8:  # detectors miss some objects
                conf = rng.uniform(20, 99)
                box = BoundingBox(Width=w, Height=h, Left=left, Top=top)
                found.setdefault(name, []).append(Instance(BoundingBox=box, Confidence=conf))
        for name, instances in found.items():
            info = by_coco[name]
            best = max(x.Confidence for x in instances)
            objects.append(label(info, best, instances[:25]))
            for parent in info.parents:
                parents[parent] = max(parents.get(parent, 0.0), best)
        objects += [label(vocab.parents[p], c, []) for p, c in parents.items()]
        guess = tax.classes[rng.randrange(len(tax.classes))]
        top = rng.uniform(20, 95)
        classified = [label(guess, top, [])]
        for parent in guess.parents:
            top = min(99.0, top + rng.uniform(0, 15))
            info = tax.parents.get(parent)
            if info is not None:
                classified.append(label(info, top, []))
        for _ in range(2):
            weak = tax.classes[rng.randrange(len(tax.classes))]
            classified.append(label(weak, rng.uniform(10, 30), []))
        merged = merge_partials([{"Labels": objects}, {"Labels": classified}])
        yield Record(
            bucket="bench",
            key=f"photos/{i // 1000:03d}/p{i:06d}.jpg",
            uri=f"s3://bench/photos/{i // 1000:03d}/p{i:06d}.jpg",
            size=rng.randint(20_000, 400_000),
            width=640,
            height=480,
            format="JPEG",
            timestamp=f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00.000000",
            analyzers={"labels": "synthetic", "objects": "synthetic"},
            **merged,
        )


@dataclass
class Latency:
    backend: str
    query: str
    floor: float
    total: int
    p50_ms: float
    p99_ms: float
    #: the same query asked again and again (what a server's caches can answer); None: not timed
    again_p50_ms: float | None = None
    again_p99_ms: float | None = None


def fill(index: Any, n: int, batch: int = 1000, log=print) -> float:
    """Write n records; returns seconds taken."""
    t0 = time.perf_counter()
    chunk: list[Any] = []
    for record in records(n):
        chunk.append(record)
        if len(chunk) == batch:
            errors = index.upsert(chunk)
            assert not errors, errors[:3]
            chunk = []
    if chunk:
        assert not index.upsert(chunk)
    took = time.perf_counter() - t0
    log(f"  wrote {n:,} records in {took:.0f} s")
    return took


def measure(
    index: Any, backend: str, rounds: int, warm: int = WARM_PASSES, again: bool = True
) -> list[Latency]:
    """p50/p99 of each query, timed ``rounds`` times after ``warm`` untimed passes over all of
    them and 3 runs of its own: each timed run as a query the server has not seen, and (with
    ``again``) as the same query asked again.

    Why both: OpenSearch's shard request cache answers a search it has answered before (the
    facets, a ``size: 0`` search) from memory until the next refresh, so the same query timed
    200 times measures the cache: label Person at floor 55, 100,000 records, p50 19-25 ms asked
    again against 49-59 ms as a new query (one-off, 2026-12-01). A query nobody asked since the
    last refresh — what a user who types something new waits for — is timed by asking for one
    more facet each run (11, 12, …): the request cache keys on it, the filter caches a running
    server holds (the floor's range, shared by every query at that floor) do not, and the first
    ten facets, the total and the hits stay the same (asserted). Nudging the floor instead also
    made every run miss the index's lists of names at fixed floors (``pixdex_facets``)."""
    import dataclasses

    from pixdex.indexes.base import SearchQuery

    queries = [
        (what, floor, SearchQuery(**spec, min_confidence=floor, limit=20, facets=10))
        for floor in FLOORS
        for what, spec in QUERIES
    ]
    # A server that has been answering searches for a while, not one just started: the JVM
    # compiles a query's code paths over its first hundreds of runs (a freshly started
    # OpenSearch, 200 timed runs of each query: label Person p99 78 ms on the first pass over
    # the queries, 28 ms on a second; one-off, 2026-12-01)
    for _ in range(warm):
        for _, _, query in queries:
            index.search(query)
    out = []
    for what, floor, query in queries:
        for _ in range(3):
            result = index.search(query)  # warm caches, as a server's are
        fresh, repeated = [], []
        for run in range(rounds):
            new = dataclasses.replace(query, facets=query.facets + 1 + run)
            t0 = time.perf_counter()
            answer = index.search(new)
            fresh.append((time.perf_counter() - t0) * 1000)
            same = answer.total == result.total and answer.facets[: query.facets] == result.facets
            assert same, (what, floor, answer.total, result.total)
            if again:
                t0 = time.perf_counter()
                index.search(query)
                repeated.append((time.perf_counter() - t0) * 1000)
        p50, p99 = p50_p99(fresh)
        again_p50, again_p99 = p50_p99(repeated) if repeated else (None, None)
        out.append(Latency(backend, what, floor, result.total, p50, p99, again_p50, again_p99))
    return out


def sqlite_latencies(
    n: int, rounds: int, folder: Path, sql_rounds: int = 10, log=print
) -> tuple[list[Latency], float, float]:
    """SQLite as ``pixdex serve`` searches it (labels in memory: ``indexes.sqlite_memory``) and
    as one-shot ``pixdex search`` does (SQL; far slower, so fewer rounds). Also returns the
    seconds the in-memory copy took to load and the MB it holds."""
    from pixdex.indexes.sqlite import SqliteIndex

    path = folder / f"search-{n}.db"
    writer = SqliteIndex(path)
    if writer.stats().records != n:
        fill(writer, n, log=log)
    writer.close()
    served = SqliteIndex(path, memory_search=True)
    before = rss_mb(os.getpid())[0]
    t0 = time.perf_counter()
    if not served.memory_ready():
        raise RuntimeError("the in-memory copy did not load")
    load = time.perf_counter() - t0
    rss = rss_mb(os.getpid())[0] - before
    grew = served._memory.nbytes() / 1e6  # noqa: SLF001 - the copy's own size
    log(
        f"  in-memory copy of {n:,} records loaded in {load:.1f} s: {grew:.0f} MB of arrays and"
        f" keys (process RSS {rss:+.0f} MB: the load also hands back what writing freed)"
    )
    try:
        found = measure(served, "SQLite, pixdex serve (in memory)", rounds)
    finally:
        served.close()
    one_shot = SqliteIndex(path)
    try:
        # a one-shot `pixdex search` process is never warm: no passes before
        found += measure(one_shot, "SQLite, pixdex search (SQL)", sql_rounds, warm=0, again=False)
    finally:
        one_shot.close()
    return found, load, grew


def opensearch_latencies(url: str, n: int, rounds: int, log=print) -> list[Latency]:
    from pixdex import memory
    from pixdex.indexes import open_index

    index = open_index(f"opensearch+{url}/search-bench?refresh=false")
    try:
        fill(index, n, log=log)
        index.conn.call("POST", f"/{index.name}/_refresh")
        index.conn.call("POST", f"/{index.name}/_forcemerge?max_num_segments=1")
        memory.freeze_long_lived()  # as `pixdex serve` does once started
        return measure(index, "OpenSearch", rounds)
    finally:
        index.close()
