"""Words as the indexes compare them, the same for every backend.

SQLite's FTS5 ``porter unicode61 remove_diacritics 2`` tokenizer is the reference: the SQLite index
matches free text with it, and the Elasticsearch/OpenSearch index stores the words it makes (run
here, in Python, through an in-memory FTS5 table) so that both find the same images without any
analysis plugin on the cluster (the minimal server distributions have no stemmers).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence


class Words:
    """Words as SQLite FTS5 ``porter unicode61 remove_diacritics 2`` makes them (one per thread)."""

    _local = threading.local()

    @classmethod
    def _db(cls) -> sqlite3.Connection:
        db = getattr(cls._local, "db", None)
        if db is None:
            db = sqlite3.connect(":memory:")
            db.execute(
                "CREATE VIRTUAL TABLE t USING fts5"
                "(x, tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
            cls._local.db = db
        return db

    @classmethod
    def many(cls, texts: Sequence[str]) -> list[list[str]]:
        """Words of each text, in order."""
        if not texts:
            return []
        db = cls._db()
        with db:
            db.executemany(
                "INSERT INTO t (rowid, x) VALUES (?, ?)", [(i + 1, t) for i, t in enumerate(texts)]
            )
            out: list[list[str]] = [[] for _ in texts]
            for doc, term in db.execute("SELECT doc, term FROM v ORDER BY doc, col, offset"):
                out[doc - 1].append(term)
            db.execute("DELETE FROM t")
        return out
