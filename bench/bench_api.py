"""HTTP API latency on the coco128 photos: searches, cold/warm thumbnails.

Usage (from the repo root, ../shared beside it):
    PYTHONPATH=src:tests python bench/bench_api.py [--copies N]

The index holds the 128 coco128 records (labels from COCO's annotations, as in tests/test_api.py),
optionally N copies of each under other keys to see how search scales. Requests go through the
whole ASGI app in-process (routing, validation, JSON), not over a socket.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from test_api import coco_records

from pixdex.api.app import create_app
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Record

QUERIES = [
    {"label": "person"},
    {"label": "animal"},
    {"label": ["person", "car"]},
    {"label": "person", "min_confidence": 80},
    {"q": "dog"},
    {"q": "dining table"},
    {},
]


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"p50 {statistics.median(samples) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=1, help="copies of each coco128 record")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pixdex-bench-api-"))
    base = coco_records()
    index = SqliteIndex(tmp / "index.db")
    for copy in range(args.copies):
        batch = [
            Record.model_validate({**r.to_json(), "key": f"copy{copy}/{r.key}", "id": ""})
            if copy
            else r
            for r in base
        ]
        index.upsert(batch)
    print(f"index: {index.stats().records} records")
    app = create_app(Settings(index=index.location, cache_dir=tmp / "cache"), index)
    client = TestClient(app, base_url="http://127.0.0.1")  # a loopback Host: the server checks it
    for params in QUERIES:
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            response = client.get("/api/search", params={**params, "limit": 24})
            times.append(time.perf_counter() - start)
            assert response.status_code == 200
        print(f"search {params!s:45} total {response.json()['total']:5}  {ms(times)}")

    cold, warm = [], []
    for record in base:
        start = time.perf_counter()
        assert client.get(f"/api/images/{record.id}/thumb").status_code == 200
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert client.get(f"/api/images/{record.id}/thumb").status_code == 200
        warm.append(time.perf_counter() - start)
    print(f"thumbnail 256px, made (decode+resize+encode+disk write): {ms(cold)}")
    print(f"thumbnail 256px, from the memory cache:                  {ms(warm)}")


if __name__ == "__main__":
    main()
