"""The embeddings of a SQLite index as a matrix in memory: "more like this" is one
matrix-vector product over it (``similarity.top_k``), and duplicates start from all of it.

The matrix is the ``embeddings`` table's int8 vectors of one version, in rowid order, with their
row norms (a quarter of the memory of float32: ~26 MB at 100,000 photos). It follows the file:
each use first asks whether it changed (``PRAGMA data_version`` for other connections, a write
counter for this one), and then only reads the rows that are new and forgets the ones gone —
rowids only ever grow, so a write is a few deletions and a few appended rows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pixdex.similarity import EMBEDDING_DIM, int8_matrix, row_norms

if TYPE_CHECKING:
    from pixdex.indexes.sqlite import SqliteIndex


@dataclass
class Vectors:
    """One version's embeddings: ``rids[i]`` is the record of ``matrix[i]``."""

    version: str
    rids: np.ndarray  # (N,) int64, ascending
    matrix: np.ndarray  # (N, D) int8
    norms: np.ndarray  # (N,) float32
    stamp: tuple[int, int] = (-1, -1)

    @classmethod
    def empty(cls, version: str) -> Vectors:
        return cls(
            version,
            np.zeros(0, np.int64),
            np.zeros((0, EMBEDDING_DIM), np.int8),
            np.zeros(0, np.float32),
        )


class VectorCache:
    """The last version asked for, kept up to date with the index file."""

    def __init__(self, index: SqliteIndex) -> None:
        self._index = index
        self._lock = threading.Lock()
        self._vectors: Vectors | None = None

    def get(self, version: str) -> Vectors:
        index = self._index
        with self._lock, index._lock:
            db = index._db
            (data_version,) = db.execute("PRAGMA data_version").fetchone()
            stamp = (int(data_version), index.writes)
            cached = self._vectors
            if cached is not None and cached.version == version and cached.stamp == stamp:
                return cached
            if cached is None or cached.version != version:
                cached = Vectors.empty(version)
            rids = np.fromiter(
                (r for (r,) in db.execute(
                    "SELECT rid FROM embeddings WHERE version = ? ORDER BY rid", (version,)
                )),
                np.int64,
            )  # fmt: skip
            keep = np.isin(cached.rids, rids)
            new = rids[~np.isin(rids, cached.rids)]
            blobs: list[bytes] = []
            for start in range(0, len(new), 500):  # SQLite's limit on bound parameters
                chunk = new[start : start + 500].tolist()
                marks = ",".join("?" * len(chunk))
                found = dict(
                    db.execute(f"SELECT rid, vector FROM embeddings WHERE rid IN ({marks})", chunk)
                )
                blobs += [found[r] for r in chunk]
            added = int8_matrix(blobs)
            merged = Vectors(
                version,
                np.concatenate([cached.rids[keep], new]),
                np.concatenate([cached.matrix[keep], added]),
                np.concatenate([cached.norms[keep], row_norms(added)]),
                stamp,
            )
            order = np.argsort(merged.rids, kind="stable")
            if not (order == np.arange(len(order))).all():
                merged = Vectors(
                    version, merged.rids[order], merged.matrix[order], merged.norms[order], stamp
                )
            self._vectors = merged
            return merged
