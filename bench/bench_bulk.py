"""Bulk indexing throughput (docs/s) into a local single-node Elasticsearch and OpenSearch.

Usage (from the repo root, ../shared beside it):
    PYTHONPATH=src:tests .venv/bin/python bench/bench_bulk.py [--docs 20000] [--batch 500 2000]

Servers: ``--es URL`` / ``--opensearch URL``, or by default the ones ``scripts/search-server
{elasticsearch|opensearch} start`` starts (pinned versions, 512 MiB heap, 1 shard, 0 replicas).
Records are the 128 coco128 photos with their COCO labels (as in tests/test_api.py), copied under
other keys up to ``--docs``; each run writes them through ``ElasticIndex.upsert`` in calls of
1000 records (as the pipeline does), with ``refresh=false``, into a fresh index that is dropped
afterwards. "prep" is the client-side share: building the documents (JSON + words).
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
from pathlib import Path

from test_api import coco_records

from pixdex.integrations.elastic import ElasticIndex, search_doc
from pixdex.records import Record

REPO = Path(__file__).resolve().parents[1]


def records(n: int) -> list[Record]:
    base = coco_records()
    out = []
    for i in range(n):
        r = base[i % len(base)]
        out.append(r.model_copy(update={"key": f"copy{i // len(base)}/{r.key}", "id": ""}))
    return [Record.model_validate(r.to_json()) for r in out]  # fresh ids from the new keys


def server(dist: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(REPO / "scripts" / "search-server"), dist, "start"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run(scheme: str, url: str, docs: list[Record], batch: int) -> tuple[float, str]:
    name = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    index = ElasticIndex.from_url(f"{scheme}+{url}/{name}?replicas=0&batch_docs={batch}")
    try:
        started = time.perf_counter()
        for i in range(0, len(docs), 1000):
            errors = index.upsert(docs[i : i + 1000])
            assert not errors, errors[:3]
        elapsed = time.perf_counter() - started
        index.conn.call("POST", f"/{name}/_refresh")
        assert index.stats().records == len(docs)
        return len(docs) / elapsed, index.server_version
    finally:
        index.drop()
        index.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--batch", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--es")
    parser.add_argument("--opensearch")
    args = parser.parse_args()
    docs = records(args.docs)
    started = time.perf_counter()
    size = sum(len(str(search_doc(r))) for r in docs)
    prep = len(docs) / (time.perf_counter() - started)
    print(f"{len(docs)} records, ~{size / len(docs):.0f} chars/doc; prep {prep:,.0f} docs/s")
    targets = [
        ("Elasticsearch", "es", args.es or server("elasticsearch")),
        ("OpenSearch", "opensearch", args.opensearch or server("opensearch")),
    ]
    print("| server | version | batch (docs) | docs/s |")
    print("| --- | --- | --- | --- |")
    for label, scheme, url in targets:
        for batch in args.batch:
            run(scheme, url, docs[:2000], batch)  # warm-up (JIT, caches)
            rate, version = run(scheme, url, docs, batch)
            print(f"| {label} | {version} | {batch} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
