"""Index writes and free-text search through the Index contract, on any backend.

Usage (from the repo root, ../shared beside it):
    PYTHONPATH=src:tests python bench/bench_search.py [--copies N] [--index URL]

The index (a new SQLite file by default, or ``es+http://…/name`` / ``opensearch+http://…/name``,
dropped afterwards) holds the 128 coco128 records (labels from COCO's annotations, as in
tests/test_api.py) and N-1 copies of each under other keys. Reports the write time per record
(upsert in batches of 128, including the search helpers each backend derives) and the latency of
text and label searches (explicit ``min_confidence=0``, so any pixdex version answers the same
question). Only the Index contract is used, so the same script times older versions too
(``PYTHONPATH=<old checkout>/src:tests``). For SQLite, also the file's size after VACUUM.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from test_api import coco_records

from pixdex.indexes import open_index
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Record

QUERIES = [
    SearchQuery(text="dog"),
    SearchQuery(text="dogs"),
    SearchQuery(text="hot dog"),
    SearchQuery(text="person"),
    SearchQuery(text="dining table"),
    SearchQuery(text="traffic light"),
    SearchQuery(labels=["person"]),
]


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"p50 {statistics.median(samples) * 1000:7.2f} ms, p95 {p95 * 1000:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10, help="copies of each coco128 record")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--index", help="index URL (default: a new SQLite file)")
    args = parser.parse_args()
    location = args.index or str(Path(tempfile.mkdtemp(prefix="pixdex-bench-")) / "index.db")
    if "://" in location and not location.startswith("sqlite"):
        base, _, query = location.partition("?")
        location = f"{base}-{uuid.uuid4().hex[:8]}?{query or 'refresh=false'}"
    index = open_index(location)
    base_records = coco_records()
    writes = []
    for copy in range(args.copies):
        batch = [
            Record.model_validate({**r.to_json(), "key": f"copy{copy}/{r.key}", "id": ""})
            for r in base_records
        ]
        start = time.perf_counter()
        assert index.upsert(batch) == []
        writes.append(time.perf_counter() - start)
    if hasattr(index, "conn"):
        index.conn.call("POST", f"/{index.name}/_refresh")
    print(f"index {index.location}: {index.stats().records} records")
    n = len(base_records)
    print(f"upsert, first batch of {n} (one-time loads included): {writes[0]:.2f} s")
    if len(writes) > 1:
        steady = sum(writes[1:]) / (n * (len(writes) - 1))
        print(f"upsert, later batches: {steady * 1000:.3f} ms per record")
    try:
        for query in QUERIES:
            query.min_confidence = 0
            query.limit = 24
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                result = index.search(query)
                times.append(time.perf_counter() - start)
            what = query.text or f"label={','.join(query.labels)}"
            print(f"search {what:16} total {result.total:6}  {ms(times)}")
        if isinstance(index, SqliteIndex):
            index.close()
            with sqlite3.connect(index.location) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("VACUUM")
            size = Path(index.location).stat().st_size
            print(f"SQLite file after VACUUM: {size / 1e6:.2f} MB")
            return
    finally:
        drop = getattr(index, "drop", None)
        if drop is not None:
            drop()
        index.close()


if __name__ == "__main__":
    main()
