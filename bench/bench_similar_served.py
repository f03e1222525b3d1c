#!/usr/bin/env python3
"""Similar photos and duplicates at 10,000 and 100,000 photos, through the indexes as pixdex
serves them: SQLite (the matrix ``pixdex serve`` keeps in memory) and OpenSearch (its k-NN
plugin, HNSW) — what ``/api/similar`` and ``/api/duplicates`` cost.

    scripts/search-server opensearch start            # for the OpenSearch part (else skipped)
    PYTHONPATH=src python bench/bench_similar_served.py [--sizes 10000 100000] [--queries 300]

The photos are synthetic records carrying embeddings drawn around real ones: coco128 and the
sample photos analyzed by the real label analyzer, and for the rest a real embedding plus
Gaussian noise (cosine ~0.6 to it), its thumbnail plus noise — a collection with clusters of
look-alikes, as real ones have. Per size: the time to fill each index (not the point, said for
scale), then ``--queries`` "more like this" queries for stored photos (p50/p99, first query of
a fresh process apart: it loads the matrix), then ``pixdex duplicates``' whole run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pixdex import similar  # noqa: E402
from pixdex.indexes.base import SimilarQuery  # noqa: E402
from pixdex.records import Embedding, Label, Record  # noqa: E402
from pixdex.similarity import encode_embedding, encode_thumbnail, normalize  # noqa: E402

SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"
OPENSEARCH = os.environ.get("PIXDEX_OPENSEARCH_URL", "http://127.0.0.1:9201")


def real_embeddings() -> tuple[str, np.ndarray, np.ndarray]:
    """(version, unit vectors, thumbnails) of coco128 and the samples, by the real analyzer."""
    from pixdex.analyzers.labels import LabelAnalyzer
    from pixdex.config import load_settings
    from pixdex.imaging import decode

    analyzer = LabelAnalyzer.from_settings(load_settings())
    paths = sorted((SHARED / "coco128" / "images").glob("*.jpg"))
    paths += sorted((REPO / "samples").glob("*.jpg"))
    vectors, thumbs = [], []
    for start in range(0, len(paths), 16):
        chunk = paths[start : start + 16]
        images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in chunk]
        batch = np.stack([analyzer.classifier.preprocess(i.image) for i in images])
        run = analyzer.classifier.predict_with_features(batch)
        vectors.append(analyzer.projection(run.features_max))
        thumbs.append(run.thumbnails)
    assert analyzer.embedding_version is not None
    return analyzer.embedding_version, np.concatenate(vectors), np.concatenate(thumbs)


def records(n: int, version: str, real: np.ndarray, thumbs: np.ndarray, seed: int = 0):
    """``n`` records in batches of 1,000: the real embeddings, then noisy copies of them."""
    rng = np.random.default_rng(seed)
    batch: list[Record] = []
    for i in range(n):
        j = i % len(real)
        vector = (
            real[j] if i < len(real) else normalize(real[j] + rng.normal(0, 0.055, real.shape[1]))
        )
        thumb = (
            thumbs[j]
            if i < len(real)
            else np.clip(
                thumbs[j].astype(int) + rng.integers(-20, 21, thumbs[j].shape), 0, 255
            ).astype(np.uint8)
        )
        embedding = Embedding.of(version, encode_embedding(vector), encode_thumbnail(thumb))
        batch.append(
            Record(
                bucket="bench",
                key=f"{i // 1000:03d}/{i:06d}.jpg",
                Labels=[Label(Name="Photo", Confidence=90.0)],
                embedding=embedding,
                width=640,
                height=480,
                size=100_000 + i,
            )
        )
        if len(batch) == 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def measure(index, version: str, real: np.ndarray, n: int, queries: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(real), queries)
    first = time.perf_counter()
    index.similar(SimilarQuery(real[0], version, 24))
    cold = time.perf_counter() - first
    times = []
    for p in picks:
        started = time.perf_counter()
        found = index.similar(SimilarQuery(real[p], version, 24))
        times.append(time.perf_counter() - started)
        assert found.hits
    started = time.perf_counter()
    groups = similar.duplicates(index, version=version)
    dup = time.perf_counter() - started
    times.sort()
    return {
        "first": cold * 1000,
        "p50": statistics.median(times) * 1000,
        "p99": times[int(0.99 * (len(times) - 1))] * 1000,
        "duplicates_s": dup,
        "groups": len(groups),
    }


def opensearch_up() -> bool:
    try:
        with urllib.request.urlopen(f"{OPENSEARCH}/_cat/plugins", timeout=3) as answer:  # noqa: S310
            return b"opensearch-knn" in answer.read()
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    from pixdex.config import load_settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.integrations.elastic import ElasticIndex

    version, real, thumbs = real_embeddings()
    print(f"{len(real)} real embeddings ({version}); load average {os.getloadavg()[0]:.1f}")
    with_os = opensearch_up()
    if not with_os:
        print(f"OpenSearch with k-NN not at {OPENSEARCH}: its part is skipped")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            index = SqliteIndex(Path(tmp) / "bench.db", memory_search=True)
            started = time.perf_counter()
            for batch in records(n, version, real, thumbs):
                assert index.upsert(batch) == []
            fill = time.perf_counter() - started
            result = measure(index, version, real, n, args.queries)
            print(f"SQLite (served), {n:,} photos: filled in {fill:.0f} s; " + _line(result))
            index.close()
        if with_os:
            settings = load_settings(elastic={"batch_docs": 1000})
            index = ElasticIndex.from_url(f"opensearch+{OPENSEARCH}/bench-similar-{n}", settings)
            try:
                started = time.perf_counter()
                for batch in records(n, version, real, thumbs):
                    assert index.upsert(batch) == []
                index.conn.call("POST", f"/{index.name}/_refresh")
                index.conn.call(
                    "POST", f"/{index.name}/_forcemerge", params={"max_num_segments": 1}
                )
                fill = time.perf_counter() - started
                result = measure(index, version, real, n, args.queries)
                print(f"OpenSearch (k-NN), {n:,} photos: filled in {fill:.0f} s; " + _line(result))
            finally:
                index.drop()
                index.close()


def _line(r: dict[str, float]) -> str:
    return (
        f"similar first {r['first']:.0f} ms, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; "
        f"duplicates {r['duplicates_s']:.1f} s ({r['groups']} groups)"
    )


if __name__ == "__main__":
    main()
