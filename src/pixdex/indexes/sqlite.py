"""The embedded default index: one SQLite file, zero set-up.

The layout (``sqlite_schema``) makes every search index lookups rather than scans; every row
but the record's own JSON is derived from it (``_derive``), which ``pixdex check`` verifies
(``sqlite_check``). Each record is written whole or not at all: a transaction per batch and a
savepoint per record.
WAL mode: searches (other processes too) keep working while an index run writes, and a run killed
half-way leaves every committed batch intact.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pixdex.errors import ConfigError, IndexUnavailable
from pixdex.indexes.base import (
    PHOTO_FIELDS,
    CheckReport,
    EmbeddingSet,
    Hit,
    Indexed,
    IndexStats,
    ReindexResult,
    SearchQuery,
    SearchResult,
    SimilarQuery,
    Transform,
    date_range,
    similarity_score,
)
from pixdex.indexes.sqlite_memory import MemorySearch
from pixdex.indexes.sqlite_schema import migrate
from pixdex.indexes.sqlite_vectors import VectorCache
from pixdex.indexes.words import fts_phrase, query_phrase, query_tokens, term_keys, term_text
from pixdex.records import Failure, Record
from pixdex.similarity import decode_thumbnails, int8_matrix, top_k

log = logging.getLogger(__name__)

#: records read, transformed and written back at a time by ``reindex``
REINDEX_PAGE = 200
_KEY_END = "\U0010ffff"  # sorts after every character: key range [prefix, prefix + _KEY_END)


def _least(parts: list[str]) -> str:
    """SQL for the smallest of ``parts`` (SQLite's MIN needs two arguments or more)."""
    return parts[0] if len(parts) == 1 else f"MIN({', '.join(parts)})"


def document(record: Record) -> str:
    """The JSON stored for a record: the record whole, as Rekognition-shaped JSON."""
    return json.dumps(record.to_json(), separators=(",", ":"))


def record_columns(record: Record) -> tuple[object, ...]:
    """The ``records`` columns besides ``doc`` (what filters and ``known`` read), in order."""
    return (
        record.id,
        record.bucket,
        record.key,
        record.timestamp,
        record.fingerprint,
        record.content_sha256,
        record.analysis_version,
        record.LabelModelVersion,
    )


def label_rows(record: Record) -> list[tuple[str, str | None, float]]:
    """(term, name, confidence) per ``label_terms`` row: each label's name, parents and aliases,
    lower-cased, once each; ``name`` (the display name, for facets) on the label's own row."""
    rows: list[tuple[str, str | None, float]] = []
    for label in record.Labels:
        seen: set[str] = set()
        for i, term in enumerate(label.terms()):
            if term.lower() in seen:
                continue
            seen.add(term.lower())
            rows.append((term.lower(), label.Name if i == 0 else None, label.Confidence))
    return rows


def term_phrases(term: str) -> list[str]:
    """The ``label_phrases`` of one label term (``words.term_keys``)."""
    return term_keys(term)[0]


def photo_text(record: Record) -> str:
    """What ``text_fts`` holds for a record: the LINEs read in the photo (WORDs are their parts);
    empty when there are none (no row)."""
    return "\n".join(record.text_lines())


class SqliteIndex:
    """Index backed by one SQLite file (``:memory:`` works too, for throw-away use)."""

    def __init__(
        self, path: str | Path, *, create: bool = True, memory_search: bool = False
    ) -> None:
        """``memory_search``: answer label and text searches from an in-memory copy of the labels
        (``sqlite_memory``), for long-lived processes that search (``pixdex serve``)."""
        self.location = str(path)
        #: writes through this connection (its own commits do not change PRAGMA data_version)
        self.writes = 0
        if self.location != ":memory:":
            file = Path(self.location).expanduser()
            if not create and not file.is_file():
                raise IndexUnavailable(
                    f"no index at {self.location}: nothing indexed there yet "
                    "(pixdex index FOLDER creates it; --index picks another)"
                )
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IndexUnavailable(
                    f"cannot create the folder for {self.location}: {exc.strerror or exc}"
                ) from exc
        try:
            self._db = sqlite3.connect(
                str(Path(self.location).expanduser())
                if self.location != ":memory:"
                else ":memory:",
                timeout=30,
                check_same_thread=False,
                isolation_level=None,  # explicit transactions below
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._tx():
                migrate(self._db, self.location)
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"cannot open SQLite index {self.location}: {exc}") from exc
        # One connection shared by threads (API worker threads, pipeline): serialise use of it.
        self._lock = threading.RLock()
        self._vectors = VectorCache(self)
        self._memory: MemorySearch | None = None
        if memory_search and self.location != ":memory:":
            self._memory = MemorySearch(str(Path(self.location).expanduser()))

    # --- transactions -------------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        self.writes += 1
        return _Transaction(self._db)

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """Inside the open transaction: undo exactly what the block wrote if it raises."""
        self._db.execute("SAVEPOINT one_record")
        try:
            yield
            self._db.execute("RELEASE one_record")
        except BaseException:
            if self._db.in_transaction:  # else SQLite already rolled everything back
                self._db.execute("ROLLBACK TO one_record")
                self._db.execute("RELEASE one_record")
            raise

    # --- writes -------------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> list[Failure]:
        """One transaction for the batch, one savepoint per record: a record that fails half-way
        is rolled back to its old version (or to nothing) and reported, the others are kept."""
        errors: list[Failure] = []
        with self._lock, self._tx():
            for record in records:
                try:
                    with self._savepoint():
                        self._delete_one(record.bucket, record.key)
                        self._insert(record)
                except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
                    if not self._db.in_transaction:
                        # SQLite rolled the whole transaction back itself (disk full, I/O
                        # error): none of the batch is written
                        return [Failure.of(r, f"sqlite: {exc}") for r in records]
                    errors.append(Failure.of(record, f"sqlite: {exc}"))
        return errors

    def _insert(self, record: Record) -> None:
        cur = self._db.execute(
            "INSERT INTO records (id, bucket, key, timestamp, fingerprint, content_sha256,"
            " analysis_version, label_model, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*record_columns(record), document(record)),
        )
        self._derive(cur.lastrowid, record)
        self._db.execute(
            "DELETE FROM failures WHERE bucket = ? AND key = ?", (record.bucket, record.key)
        )

    def _derive(self, rid: int | None, record: Record) -> None:
        """The rows searches read, all derived from the record: its key's words, the text read
        in the photo, and its label terms with their phrases and words (``pixdex check``
        recomputes them the same way to find rows that disagree)."""
        self._db.execute("INSERT INTO path_fts (rowid, path) VALUES (?, ?)", (rid, record.key))
        if text := photo_text(record):
            self._db.execute("INSERT INTO text_fts (rowid, text) VALUES (?, ?)", (rid, text))
        if (e := record.embedding) is not None:
            self._db.execute(
                "INSERT INTO embeddings (rid, version, vector, thumbnail) VALUES (?, ?, ?, ?)",
                (rid, e.version, e.vector_bytes(), e.thumbnail_bytes()),
            )
        for term, name, confidence in label_rows(record):
            tcur = self._db.execute(
                "INSERT INTO label_terms (rid, term, name, confidence) VALUES (?, ?, ?, ?)",
                (rid, term, name, confidence),
            )
            self._index_term(tcur.lastrowid, rid, term, confidence)

    def _index_term(self, tid: int | None, rid: int | None, term: str, confidence: float) -> None:
        """What free text matches a label term by: its phrases and its words (``words``)."""
        self._db.executemany(
            "INSERT INTO label_phrases (rid, phrase, confidence) VALUES (?, ?, ?)",
            [(rid, phrase, confidence) for phrase in term_phrases(term)],
        )
        self._db.execute(
            "INSERT INTO label_fts (rowid, term) VALUES (?, ?)", (tid, term_text(term))
        )

    def _underive(self, rid: int) -> None:
        """Remove every row derived from record ``rid`` (the record itself stays)."""
        self._db.execute(
            "DELETE FROM label_fts WHERE rowid IN (SELECT tid FROM label_terms WHERE rid = ?)",
            (rid,),
        )
        self._db.execute("DELETE FROM label_terms WHERE rid = ?", (rid,))
        self._db.execute("DELETE FROM label_phrases WHERE rid = ?", (rid,))
        self._db.execute("DELETE FROM path_fts WHERE rowid = ?", (rid,))
        self._db.execute("DELETE FROM text_fts WHERE rowid = ?", (rid,))
        self._db.execute("DELETE FROM embeddings WHERE rid = ?", (rid,))

    def _delete_one(self, bucket: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT rid FROM records WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        if row is None:
            return False
        self._underive(row[0])
        self._db.execute("DELETE FROM records WHERE rid = ?", (row[0],))
        return True

    def delete(self, bucket: str, keys: Iterable[str]) -> int:
        removed = 0
        with self._lock, self._tx():
            for key in keys:
                removed += self._delete_one(bucket, key)
                self._db.execute("DELETE FROM failures WHERE bucket = ? AND key = ?", (bucket, key))
        return removed

    def record_failures(self, failures: Sequence[Failure]) -> None:
        with self._lock, self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                [(f.bucket, f.key, f.uri, f.reason, f.fingerprint, f.timestamp) for f in failures],
            )

    # --- reads --------------------------------------------------------------------------------
    def get(self, bucket: str, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM records WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
        return Record.model_validate_json(row[0]) if row else None

    def get_by_id(self, record_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM records WHERE id = ?", (record_id,)).fetchone()
        return Record.model_validate_json(row[0]) if row else None

    def known(self, bucket: str, prefix: str = "") -> dict[str, Indexed]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, fingerprint, content_sha256, analysis_version FROM records"
                " WHERE bucket = ? AND key >= ? AND key < ?",
                (bucket, prefix, prefix + _KEY_END),
            ).fetchall()
        return {key: Indexed(fp, sha, version) for key, fp, sha, version in rows}

    def failures(self, bucket: str | None = None, limit: int = 1000) -> list[Failure]:
        sql = "SELECT bucket, key, uri, reason, fingerprint, timestamp FROM failures"
        args: tuple = ()
        if bucket is not None:
            sql += " WHERE bucket = ?"
            args = (bucket,)
        sql += " ORDER BY bucket, key LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [
            Failure(bucket=b, key=k, uri=u or "", reason=r, fingerprint=fp, timestamp=ts)
            for b, k, u, r, fp, ts in rows
        ]

    def search(self, query: SearchQuery) -> SearchResult:
        memory = self._memory
        if memory is not None and memory.handles(query) and memory.ready():
            try:
                return memory.search(query)
            except Exception as exc:  # noqa: BLE001 - the same question in SQL below
                log.warning("in-memory search failed, searching in SQL: %s", exc)
        return self._search_sql(query)

    def memory_ready(self, timeout: float = 600) -> bool:
        """Wait until label searches are answered from memory (benchmarks, tests)."""
        return self._memory is not None and self._memory.wait(timeout)

    def _search_sql(self, query: SearchQuery) -> SearchResult:
        ctes: list[str] = []
        args: list[object] = []
        # One CTE per required label and per text token: (rid, c[, lab]) where c is the
        # confidence of the best label matching it (0 for a path match) and lab says whether a
        # label matched at all. A record must appear in all of them.
        for label in query.labels:
            ctes.append(
                "SELECT rid, MAX(confidence) AS c FROM label_terms"
                " WHERE term = ? AND confidence >= ? GROUP BY rid"
            )
            args += [label.strip().lower(), query.min_confidence]
        label_parts = [f"m{i}.c" for i in range(len(ctes))]
        tokens = query_tokens(query.text or "")
        for token in tokens:
            ctes.append(
                "SELECT rid, MAX(c) AS c, MAX(lab) AS lab FROM ("
                " SELECT lt.rid AS rid, lt.confidence AS c, 1 AS lab FROM label_fts"
                " JOIN label_terms lt ON lt.tid = label_fts.rowid"
                " WHERE label_fts MATCH ? AND lt.confidence >= ?"
                " UNION ALL SELECT rowid AS rid, 0 AS c, 0 AS lab FROM path_fts"
                " WHERE path_fts MATCH ?"
                " UNION ALL SELECT rowid AS rid, 0 AS c, 0 AS lab FROM text_fts"
                " WHERE text_fts MATCH ?"
                ") GROUP BY rid"
            )
            phrase = fts_phrase(token)
            args += [phrase, query.min_confidence, phrase, phrase]
        word_parts = [f"m{i}" for i in range(len(label_parts), len(ctes))]

        with_sql = ""
        joins = ""
        if ctes:
            with_sql = "WITH " + ", ".join(f"m{i} AS ({sql})" for i, sql in enumerate(ctes)) + " "
            joins = " ".join(f"JOIN m{i} ON m{i}.rid = r.rid" for i in range(len(ctes)))
        # Ranking needs more than matching: the count and the facets use only the CTEs above;
        # the page adds the "equal" tier's lookup.
        eq_with, eq_join, eq_args = "", "", []
        if tokens:
            # the tiers (see base): a label equal to the whole query, labels containing every
            # word, a word only in the path
            eq_with = (
                ", eq AS (SELECT rid, MAX(confidence) AS c FROM label_phrases"
                " WHERE phrase = ? AND confidence >= ? GROUP BY rid) "
            )
            eq_args = [query_phrase(query.text or ""), query.min_confidence]
            eq_join = " LEFT JOIN eq ON eq.rid = r.rid"
            contains = _least([f"{m}.c" for m in word_parts] + label_parts)
            equal = _least(["eq.c", *label_parts])
            score = f"CASE WHEN eq.rid IS NOT NULL THEN {equal} ELSE {contains} END"
            labelled = _least([f"{m}.lab" for m in word_parts])
            tier = f"CASE WHEN eq.rid IS NOT NULL THEN 2 WHEN {labelled} = 1 THEN 1 ELSE 0 END"
        else:
            score = _least(label_parts) if label_parts else "0"
            tier = "0"

        cte_args = len(args)
        where: list[str] = []
        if query.bucket is not None:
            where.append("r.bucket = ?")
            args.append(query.bucket)
        if query.prefix:
            where.append("r.key >= ? AND r.key < ?")
            args += [query.prefix, query.prefix + _KEY_END]
        since, until = date_range(query.since, query.until)
        if since:
            where.append("r.timestamp >= ?")
            args.append(since)
        if until:
            where.append("r.timestamp <= ?")
            args.append(until)
        where_sql = (" WHERE " + " AND ".join(where)) if where else ""
        base = f"{with_sql}SELECT r.rid AS rid FROM records r {joins}{where_sql}"
        ranked = (
            f"{with_sql}{eq_with}SELECT r.doc AS doc, r.key AS key, {score} AS score,"
            f" {tier} AS tier FROM records r {joins}{eq_join}{where_sql}"
        )
        ranked_args = args[:cte_args] + eq_args + args[cte_args:]

        with self._lock:
            try:
                total = self._db.execute(f"SELECT COUNT(*) FROM ({base})", args).fetchone()[0]
                rows = self._db.execute(
                    f"SELECT doc, score FROM ({ranked})"
                    " ORDER BY tier DESC, score DESC, key LIMIT ? OFFSET ?",
                    [*ranked_args, query.limit, query.offset],
                ).fetchall()
                facets: list[tuple[str, int]] = []
                if query.facets:
                    facets = [
                        (name, count)
                        for name, count in self._db.execute(
                            f"SELECT lt.name, COUNT(DISTINCT lt.rid) AS n FROM label_terms lt"
                            f" WHERE lt.name IS NOT NULL AND lt.confidence >= ?"
                            f" AND lt.rid IN (SELECT rid FROM ({base}))"
                            f" GROUP BY lt.name ORDER BY n DESC, lt.name LIMIT ?",
                            [query.min_confidence, *args, query.facets],
                        )
                    ]
            except sqlite3.OperationalError as exc:
                raise IndexUnavailable(f"search failed on {self.location}: {exc}") from exc
        hits = [Hit(Record.model_validate_json(doc), float(score)) for doc, score in rows]
        return SearchResult(total=total, hits=hits, facets=facets)

    def stats(self) -> IndexStats:
        with self._lock:
            db = self._db
            records = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            failures = db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
            labels = db.execute(
                "SELECT COUNT(DISTINCT name) FROM label_terms WHERE name IS NOT NULL"
            ).fetchone()[0]
            top = db.execute(
                "SELECT name, COUNT(DISTINCT rid) AS n FROM label_terms WHERE name IS NOT NULL"
                " GROUP BY name ORDER BY n DESC, name LIMIT 20"
            ).fetchall()
            models = db.execute(
                "SELECT COALESCE(label_model, ''), COUNT(*) FROM records GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        return IndexStats(
            location=self.location,
            records=records,
            failures=failures,
            labels=labels,
            top_labels=[(n, c) for n, c in top],
            model_versions=[(m, c) for m, c in models],
        )

    def similar(self, query: SimilarQuery) -> SearchResult:
        vectors = self._vectors.get(query.version)
        exclude = None
        if query.exclude is not None:
            with self._lock:
                row = self._db.execute(
                    "SELECT rid FROM records WHERE id = ?", (query.exclude,)
                ).fetchone()
            if row is not None and len(found := np.flatnonzero(vectors.rids == row[0])):
                exclude = int(found[0])
        rows, cosines = top_k(
            vectors.matrix, query.vector, query.limit, exclude, norms=vectors.norms
        )
        rids = [int(r) for r in vectors.rids[rows]]
        marks = ",".join("?" * len(rids))
        with self._lock:
            docs = dict(
                self._db.execute(f"SELECT rid, doc FROM records WHERE rid IN ({marks})", rids)
            )
        hits = [
            Hit(Record.model_validate_json(docs[rid]), similarity_score(cosine))
            for rid, cosine in zip(rids, cosines.tolist(), strict=True)
            if rid in docs
        ]
        return SearchResult(total=len(hits), hits=hits)

    def embeddings(self, version: str) -> EmbeddingSet:
        with self._lock:
            rows = self._db.execute(
                "SELECT r.id, r.bucket, r.key, r.timestamp, json_extract(r.doc, '$.uri'),"
                " json_extract(r.doc, '$.width'), json_extract(r.doc, '$.height'),"
                " json_extract(r.doc, '$.size'), json_extract(r.doc, '$.last_modified'),"
                " e.vector, e.thumbnail"
                " FROM embeddings e JOIN records r ON r.rid = e.rid WHERE e.version = ?"
                " ORDER BY e.rid",
                (version,),
            ).fetchall()
        return EmbeddingSet(
            version=version,
            vectors=int8_matrix([row[9] for row in rows]),
            thumbnails=decode_thumbnails([row[10] for row in rows]),
            photos=[dict(zip(PHOTO_FIELDS, row[:9], strict=True)) for row in rows],
        )

    def embedding_versions(self) -> list[tuple[str, int]]:
        with self._lock:
            return [
                (v, n)
                for v, n in self._db.execute(
                    "SELECT version, COUNT(*) FROM embeddings GROUP BY version ORDER BY 2 DESC, 1"
                )
            ]

    def reindex(
        self,
        transform: Transform | None = None,
        *,
        source: str | None = None,
        keep_old: bool = False,
    ) -> ReindexResult:
        """``pixdex reindex`` in place: every record through ``transform``, those it changes
        written back a page at a time (each page one transaction), those it drops deleted. A
        file is not copied, so there is nothing to copy from (``source``) or keep (``keep_old``).
        """
        if transform is None or source is not None or keep_old:
            raise ConfigError(
                "a SQLite index is updated in place, not copied: use pixdex reindex --reanalyze"
                " to bring its records up to the current analyzers (--from and --keep-old need"
                " an es+… or opensearch+… index URL)"
            )
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(rid), 0) FROM records").fetchone()
        result = ReindexResult(written=0)
        after = 0
        while True:  # rewritten records get new rowids above ``last``: each is seen once
            with self._lock:
                rows = self._db.execute(
                    "SELECT rid, doc FROM records WHERE rid > ? AND rid <= ? ORDER BY rid LIMIT ?",
                    (after, last, REINDEX_PAGE),
                ).fetchall()
            if not rows:
                return result
            after = rows[-1][0]
            changed: list[Record] = []
            dropped: list[Record] = []
            for _, doc in rows:
                record = Record.model_validate_json(doc)
                new = transform(record)
                if new is None:
                    dropped.append(record)
                elif new is not record:
                    changed.append(new)
            errors = self.upsert(changed)
            if errors:
                raise IndexUnavailable(
                    f"{self.location} refused {len(errors)} record(s), first: {errors[0].reason}"
                )
            for record in dropped:
                self.delete(record.bucket, [record.key])
            result.written += len(changed)
            result.skipped += len(dropped)

    def check(self, repair: bool = False) -> CheckReport:
        """``pixdex check``: whether every derived row agrees with its record (``sqlite_check``);
        with ``repair``, re-derive what disagrees."""
        from pixdex.indexes.sqlite_check import check

        return check(self, repair)

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT: what the block wrote is committed together, or rolled back
    together when the block or the COMMIT fails."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._rollback()
            return
        if not self._db.in_transaction:  # rolled back by SQLite itself; the caller reported it
            return
        try:
            self._db.execute("COMMIT")
        except BaseException:
            # a COMMIT that fails (disk full, I/O error, interrupted) may leave the transaction
            # open: end it, or the next batch would be written into it and committed with it
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
