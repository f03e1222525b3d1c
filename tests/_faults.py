"""Fault injection for the write paths: fail the n-th write step, then check the invariants.

``FailingConnection`` stands in for a SQLite index's connection and raises at its n-th statement
that writes (or begins, ends or marks a transaction); running a write once with no fault counts
the steps, and a test then fails each of them in turn. ``agreement`` is the invariant every
fault must leave: the index's own check is clean, and every way of searching — by label, by free
text, the facets, the in-memory copy of ``pixdex serve`` — answers what the stored records say.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from pixdex.indexes.base import Index, SearchQuery
from pixdex.records import Record

#: statements that change the file, or begin, commit or mark a transaction
WRITES = re.compile(r"\s*(INSERT|DELETE|UPDATE|REPLACE|BEGIN|COMMIT|SAVEPOINT|RELEASE)\b", re.I)


class InjectedFault(sqlite3.OperationalError):
    """The fault a test caused (an OperationalError, as a full disk or an I/O error is)."""


class FailingConnection:
    """A ``sqlite3.Connection`` whose ``fail_at``-th write statement raises ``InjectedFault``
    (None: none does); ``writes`` counts them."""

    def __init__(self, db: sqlite3.Connection, fail_at: int | None = None) -> None:
        self._db = db
        self.fail_at = fail_at
        self.writes = 0
        self.fired: str | None = None  # the statement that was failed

    def _step(self, sql: str) -> None:
        if WRITES.match(sql):
            self.writes += 1
            if self.writes == self.fail_at:
                self.fired = " ".join(sql.split()[:4])
                raise InjectedFault(f"injected fault at write step {self.writes}: {self.fired}")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._step(sql)
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        self._step(sql)
        return self._db.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class faults_in:
    """``with faults_in(index, n) as conn:`` — the SQLite index's writes go through a
    ``FailingConnection`` failing step ``n`` inside the block."""

    def __init__(self, index: Any, fail_at: int | None) -> None:
        self.index = index
        self.conn = FailingConnection(index._db, fail_at)

    def __enter__(self) -> FailingConnection:
        self.index._db = self.conn
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.index._db = self.conn._db


def stored(index: Index, bucket: str, keys: list[str]) -> dict[str, dict[str, Any] | None]:
    """key → the stored record's JSON (None: absent)."""
    return {key: (record.to_json() if (record := index.get(bucket, key)) else None) for key in keys}


def expected_hits(records: list[dict[str, Any]], term: str) -> tuple[set[str], set[str]]:
    """(keys a label search for ``term`` must find, keys a free-text search must at least find)
    from the records' own labels, parents and aliases."""
    term = term.lower()
    by_label = {
        r["key"]
        for r in records
        for label in r.get("Labels", [])
        if term
        in {label["Name"].lower()}
        | {p["Name"].lower() for p in label.get("Parents", [])}
        | {a["Name"].lower() for a in label.get("Aliases", [])}
    }
    by_text = by_label | {
        r["key"]
        for r in records
        for t in r.get("TextDetections") or []
        if t["Type"] == "LINE" and term in t["DetectedText"].lower().split()
    }
    return by_label, by_text


def agreement(index: Index, records: list[Record | dict[str, Any]], terms: list[str]) -> None:
    """Assert that every search answers what ``records`` (the stored ones) say, and that the
    index's own check finds nothing."""
    docs = [r.to_json() if isinstance(r, Record) else r for r in records]
    report = index.check()  # type: ignore[attr-defined]
    assert report.clean, report.problems
    for term in terms:
        by_label, by_text = expected_hits(docs, term)
        labelled = index.search(SearchQuery(labels=(term,), limit=1000, facets=100))
        assert {h.record.key for h in labelled.hits} == by_label, term
        assert labelled.total == len(by_label), term
        assert dict(labelled.facets) == _names([d for d in docs if d["key"] in by_label]), term
        text = index.search(SearchQuery(text=term, limit=1000, facets=100))
        assert {h.record.key for h in text.hits} == by_text, term
        assert dict(text.facets) == _names([d for d in docs if d["key"] in by_text]), term
    everything = index.search(SearchQuery(limit=1000, facets=100))
    assert dict(everything.facets) == _names(docs)


def _names(docs: list[dict[str, Any]]) -> dict[str, int]:
    """The facets of these records: label name → how many of them have it."""
    names: dict[str, int] = {}
    for doc in docs:
        for name in {label["Name"] for label in doc.get("Labels", [])}:
            names[name] = names.get(name, 0) + 1
    return names
