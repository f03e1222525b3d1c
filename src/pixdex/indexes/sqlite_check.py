"""``pixdex check`` on a SQLite index: every row a search reads must be exactly what the stored
documents derive.

A record's document (``records.doc``) is the truth; everything else is derived from it by
``SqliteIndex._derive``: the ``records`` columns that filters read, ``label_terms`` (label
searches and facets), ``label_fts`` and ``label_phrases`` (free text on labels), ``path_fts`` and
``text_fts`` (free text on keys and on the text read in photos). The check recomputes each
record's rows the same way and compares, a chunk of records at a time (memory stays flat at any
size), then looks for rows whose record is gone. ``repair`` re-derives what disagrees from the
document; a document that cannot be read at all is removed and recorded as a failure, so the
next ``pixdex index`` analyzes the photo again.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pixdex.indexes.base import CheckReport
from pixdex.indexes.sqlite import label_rows, photo_text, record_columns, term_phrases
from pixdex.indexes.words import term_text
from pixdex.records import Failure, Record

if TYPE_CHECKING:
    from pixdex.indexes.sqlite import SqliteIndex

#: records compared at a time
CHUNK = 2000
#: the failure recorded for a record check had to remove
REMOVED = "pixdex check: its stored record could not be mended; analyzed again on the next run"

#: the ``records`` columns besides ``doc``, in ``record_columns`` order
COLUMNS = ("id", "bucket", "key", "timestamp", "fingerprint", "content_sha256")
COLUMNS += ("analysis_version", "label_model")
#: rows whose record (or label term) is gone: (table, SQL counting them, SQL deleting them)
ORPHANS = (
    (
        "label_terms",
        "SELECT COUNT(*) FROM label_terms WHERE rid NOT IN (SELECT rid FROM records)",
        "DELETE FROM label_terms WHERE rid NOT IN (SELECT rid FROM records)",
    ),
    (
        "label_phrases",
        "SELECT COUNT(*) FROM label_phrases WHERE rid NOT IN (SELECT rid FROM records)",
        "DELETE FROM label_phrases WHERE rid NOT IN (SELECT rid FROM records)",
    ),
    (
        "path_fts",
        "SELECT COUNT(*) FROM path_fts WHERE rowid NOT IN (SELECT rid FROM records)",
        "DELETE FROM path_fts WHERE rowid NOT IN (SELECT rid FROM records)",
    ),
    (
        "text_fts",
        "SELECT COUNT(*) FROM text_fts WHERE rowid NOT IN (SELECT rid FROM records)",
        "DELETE FROM text_fts WHERE rowid NOT IN (SELECT rid FROM records)",
    ),
    (
        "embeddings",
        "SELECT COUNT(*) FROM embeddings WHERE rid NOT IN (SELECT rid FROM records)",
        "DELETE FROM embeddings WHERE rid NOT IN (SELECT rid FROM records)",
    ),
    (
        "label_fts",
        "SELECT COUNT(*) FROM label_fts WHERE rowid NOT IN (SELECT tid FROM label_terms)",
        "DELETE FROM label_fts WHERE rowid NOT IN (SELECT tid FROM label_terms)",
    ),
)


def check(index: SqliteIndex, repair: bool = False) -> CheckReport:
    """Compare every record's derived rows with its document; with ``repair``, mend them (one
    transaction: searches see the index before or after, never half-mended)."""
    db = index._db
    report = CheckReport(index.location)
    with index._lock:
        damage = [m for (m,) in db.execute("PRAGMA quick_check").fetchall() if m != "ok"]
        if damage:
            report.problems += [f"{index.location}: the file is damaged: {m}" for m in damage[:20]]
            report.problems.append(
                f"{index.location}: restore it from a backup, or delete it and run pixdex index"
                " again (check cannot mend a damaged file)"
            )
            return report
        with index._tx() if repair else _ReadTransaction(db):
            bad = _compare_records(db, report)
            orphans = [(table, delete) for table, count, delete in ORPHANS if _count(db, count)]
            for table, _ in orphans:
                report.problems.append(
                    f"{index.location}: {table} holds rows of records that no longer exist"
                )
            if repair:
                for rid, record in bad:
                    _mend(index, rid, record, report)
                for _, delete in orphans:
                    db.execute(delete)
    return report


class _ReadTransaction:
    """A read transaction: one consistent snapshot while other processes write."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, *exc: object) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")


def _count(db: sqlite3.Connection, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def _compare_records(
    db: sqlite3.Connection, report: CheckReport
) -> list[tuple[int, Record | tuple[str, str]]]:
    """(rowid, the record — or (bucket, key) when its document is unreadable) of every record
    whose rows disagree with its document; one problem line each in ``report``."""
    bad: list[tuple[int, Record | tuple[str, str]]] = []
    last = 0
    while True:
        rows = db.execute(
            "SELECT rid, id, bucket, key, timestamp, fingerprint, content_sha256,"
            " analysis_version, label_model, doc FROM records WHERE rid > ? ORDER BY rid LIMIT ?",
            (last, CHUNK),
        ).fetchall()
        if not rows:
            return bad
        low, last = rows[0][0], rows[-1][0]
        report.records += len(rows)
        stored = _Stored(db, low, last)
        for rid, *columns, doc in rows:
            bucket, key = columns[1], columns[2]
            try:
                record = Record.model_validate_json(doc)
            except (ValidationError, ValueError) as exc:
                reason = str(exc).splitlines()[0]
                report.problems.append(f"{bucket}/{key}: unreadable document ({reason})")
                bad.append((rid, (bucket, key)))
                continue
            found = stored.differences(rid, tuple(columns), record)
            if found:
                report.problems.append(f"{bucket}/{key}: {'; '.join(found)}")
                bad.append((rid, record))


class _Stored:
    """The derived rows of the records with rowids in [low, high], grouped by record."""

    def __init__(self, db: sqlite3.Connection, low: int, high: int) -> None:
        span = (low, high)
        self.terms: dict[int, list[tuple[int, str, str | None, float]]] = defaultdict(list)
        for tid, rid, term, name, confidence in db.execute(
            "SELECT tid, rid, term, name, confidence FROM label_terms WHERE rid BETWEEN ? AND ?",
            span,
        ):
            self.terms[rid].append((tid, term, name, confidence))
        self.fts = dict(
            db.execute(
                "SELECT rowid, term FROM label_fts WHERE rowid IN"
                " (SELECT tid FROM label_terms WHERE rid BETWEEN ? AND ?)",
                span,
            ).fetchall()
        )
        self.phrases: dict[int, Counter[tuple[str, float]]] = defaultdict(Counter)
        for rid, phrase, confidence in db.execute(
            "SELECT rid, phrase, confidence FROM label_phrases WHERE rid BETWEEN ? AND ?", span
        ):
            self.phrases[rid][(phrase, confidence)] += 1
        self.paths = dict(
            db.execute("SELECT rowid, path FROM path_fts WHERE rowid BETWEEN ? AND ?", span)
        )
        self.texts = dict(
            db.execute("SELECT rowid, text FROM text_fts WHERE rowid BETWEEN ? AND ?", span)
        )
        self.embeddings = {
            rid: (version, vector, thumbnail)
            for rid, version, vector, thumbnail in db.execute(
                "SELECT rid, version, vector, thumbnail FROM embeddings WHERE rid BETWEEN ? AND ?",
                span,
            )
        }

    def differences(self, rid: int, columns: tuple[object, ...], record: Record) -> list[str]:
        """What in record ``rid``'s rows disagrees with its document, in words."""
        found: list[str] = []
        pairs = zip(COLUMNS, columns, record_columns(record), strict=True)
        wrong = [name for name, stored, derived in pairs if stored != derived]
        if wrong:
            found.append(f"columns disagree with its document ({', '.join(wrong)})")
        expected = label_rows(record)
        terms = self.terms.get(rid, [])
        if Counter(expected) != Counter((t, n, c) for _, t, n, c in terms):
            found.append(
                f"label terms differ from its labels ({len(terms)} rows, {len(expected)} expected;"
                " label searches and facets are wrong)"
            )
        missing = sum(1 for tid, term, _, _ in terms if self.fts.get(tid) != term_text(term))
        if missing:
            found.append(
                f"{missing} of {len(terms)} label terms missing from the free-text index"
                " (label_fts)"
            )
        phrases = Counter((p, c) for t, _, c in expected for p in term_phrases(t))
        if phrases != self.phrases.get(rid, Counter()):
            found.append("label phrases differ from its labels (label_phrases)")
        if self.paths.get(rid) != record.key:
            found.append("its key is missing from the free-text index (path_fts)")
        if self.texts.get(rid, "") != photo_text(record):
            found.append("the text read in the photo differs in the free-text index (text_fts)")
        e = record.embedding
        stored = (e.version, e.vector_bytes(), e.thumbnail_bytes()) if e else None
        if self.embeddings.get(rid) != stored:
            found.append("its embedding differs in the similarity table (embeddings)")
        return found


def _mend(
    index: SqliteIndex, rid: int, record: Record | tuple[str, str], report: CheckReport
) -> None:
    """Re-derive one record's rows from its document, in a savepoint; a record that cannot be
    re-derived (unreadable, or its columns collide with another record) is removed and recorded
    as a failure, so the next ``pixdex index`` analyzes it again."""
    db = index._db
    try:
        if isinstance(record, tuple):  # unreadable: nothing to derive from
            raise ValueError(REMOVED)
        with index._savepoint():
            index._underive(rid)
            db.execute(
                "UPDATE records SET id = ?, bucket = ?, key = ?, timestamp = ?, fingerprint = ?,"
                " content_sha256 = ?, analysis_version = ?, label_model = ? WHERE rid = ?",
                (*record_columns(record), rid),
            )
            index._derive(rid, record)
        report.repaired += 1
        return
    except (sqlite3.IntegrityError, ValueError):
        pass
    bucket, key = record if isinstance(record, tuple) else (record.bucket, record.key)
    with index._savepoint():
        index._underive(rid)
        db.execute("DELETE FROM records WHERE rid = ?", (rid,))
        failure = Failure(bucket=bucket, key=key, reason=REMOVED)
        db.execute(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
            (failure.bucket, failure.key, failure.uri, failure.reason, None, failure.timestamp),
        )
    report.reanalyze += 1
