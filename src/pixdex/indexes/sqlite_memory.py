"""Label and text searches of a served SQLite index, answered from an in-memory copy of its labels.

Why: in SQL, a search whose label matches a third of 100,000 photos joins ~35,000 records and
counts facets over their ~400,000 label rows, which is slow whatever the indexes; the same work
over numpy arrays of those rows is a small fraction of it (docs/benchmarks.md, "(5) Search at
100,000 records"). A long-lived process that searches (``pixdex serve``) keeps such a copy;
one-shot commands (``pixdex search``) would spend longer loading it than searching, and stay on
SQL.

The copy is exact, not a cache of answers: every search first brings it up to date with the file
(``PRAGMA data_version`` says when another connection, this process's writer included, committed),
then answers from it precisely what ``SqliteIndex.search`` answers in SQL — the same matching,
tiers, scores, order and facets (the contract suite runs on both). Catching up is incremental:
records are only ever inserted with a rowid above every existing one (SQLite's rule for an
``INTEGER PRIMARY KEY`` without AUTOINCREMENT; an update is a delete and an insert), so what a
write changed is the rowids that disappeared and the ones above the highest seen; the highest
itself may be reused after its deletion, which its identity (id, timestamp, document length)
shows. Queries with key-prefix or date filters are answered in SQL (a narrower case, and an
easy one there).

Memory: ~33 bytes per label term row (a name, parent or alias of a label) in numpy arrays, on the
order of 100 MB at 100,000 photos of ~37 terms each; the process grows by more while loading it
(docs/benchmarks.md, "(5) Search at 100,000 records").
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

from pixdex import memory
from pixdex.indexes.base import Hit, SearchQuery, SearchResult
from pixdex.indexes.words import fts_phrase, query_phrase, query_tokens, term_keys, term_text
from pixdex.records import Record

log = logging.getLogger(__name__)

#: label term rows a first search loads before answering (a small index loads quickly); a bigger
#: copy is loaded in a background thread while searches are answered in SQL
INLINE_ROWS = 50_000
#: rebuild from scratch once this share of the rows belongs to deleted records
COMPACT_SHARE = 0.3


@dataclass
class _Identity:
    id: str
    timestamp: str
    size: int


class _Terms:
    """Distinct label terms: id by term, and an FTS5 table of their texts (``words.term_text``,
    as ``label_fts`` holds per row) to find which terms a query word matches."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.phrases: dict[str, list[int]] = {}  # term_keys phrase → term ids
        self.fts = sqlite3.connect(":memory:", check_same_thread=False)
        self.fts.execute(
            "CREATE VIRTUAL TABLE t USING fts5"
            " (x, tokenize = 'porter unicode61 remove_diacritics 2')"
        )

    def id(self, term: str) -> int:
        found = self.ids.get(term)
        if found is None:
            found = self.ids[term] = len(self.ids)
            self.fts.execute("INSERT INTO t (rowid, x) VALUES (?, ?)", (found + 1, term_text(term)))
            for phrase in term_keys(term)[0]:
                self.phrases.setdefault(phrase, []).append(found)
        return found

    def matching(self, token: str) -> np.ndarray:
        rows = self.fts.execute("SELECT rowid - 1 FROM t WHERE t MATCH ?", (fts_phrase(token),))
        return np.fromiter((r for (r,) in rows), np.int64)


class MemorySearch:
    """The in-memory copy of one SQLite index file's labels, and searches over it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA query_only = 1")
        self._lock = threading.Lock()
        self._state = "empty"  # empty → loading → ready | failed
        self.searches = 0  # answered from memory (tests, metrics)
        self._reset()

    # --- the copy -----------------------------------------------------------------------------
    def _reset(self) -> None:
        self.terms = _Terms()
        self.names: dict[str, int] = {}
        self.name_list: list[str] = []
        self.buckets: dict[str, int] = {}
        # label term rows
        self.rid = np.zeros(0, np.int32)
        self.term = np.zeros(0, np.int32)
        self.conf = np.zeros(0, np.float64)  # as SQLite's REAL: scores compare exactly
        self.name = np.zeros(0, np.int32)  # -1: not a label's own row (a parent or alias)
        self.alive = np.zeros(0, bool)
        # rows by term (CSR) for the first ``indexed`` rows; rows appended since are scanned
        self.indexed = 0
        self.by_term = np.zeros(0, np.int32)
        self.term_start = np.zeros(1, np.int64)
        # the rows that carry a label name, copied out contiguously (facets)
        self.named_rid = np.zeros(0, np.int32)
        self.named_conf = np.zeros(0, np.float64)
        self.named_name = np.zeros(0, np.int32)
        self.named_alive = np.zeros(0, bool)
        self.named_per_record = np.zeros(0, np.int64)  # named rows per rowid (rows sorted by it)
        # records, by rowid
        self.live = np.zeros(0, bool)
        self.key = np.zeros(0, object)
        self.bucket = np.zeros(0, np.int64)
        self.top = 0  # highest rowid loaded
        self.top_identity: _Identity | None = None
        self.version: int | None = None
        self.dead_rows = 0

    def ready(self) -> bool:
        """Whether searches are answered from memory (else the caller uses SQL)."""
        if self._state == "ready":
            return True
        if self._state == "empty":
            self._state = "loading"
            (rows,) = self._db.execute("SELECT COUNT(*) FROM label_terms").fetchone()
            if rows <= INLINE_ROWS:
                self._load()
                return self._state == "ready"
            threading.Thread(target=self._load, name="pixdex-memory-search", daemon=True).start()
        return False

    def nbytes(self) -> int:
        """Bytes the copy holds: its arrays, and the keys and names they point to (benchmarks;
        the process's RSS also moves with what the load freed and handed back)."""
        import sys

        arrays = sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))
        strings = sum(sys.getsizeof(k) for k in self.key if k is not None)
        strings += sum(sys.getsizeof(n) for n in self.name_list)
        return arrays + strings

    def wait(self, timeout: float = 600) -> bool:
        """Block until the copy is loaded (benchmarks, tests); whether it is."""
        import time

        self.ready()
        deadline = time.monotonic() + timeout
        while self._state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._state == "ready"

    def _load(self) -> None:
        try:
            with self._lock:
                self._reset()
                self._db.execute("BEGIN")
                try:
                    self._catch_up()
                finally:
                    self._db.execute("COMMIT")
            self._state = "ready"
            memory.release()  # the load's transient buffers back to the OS
            # The copy lives as long as the server: out of the cyclic collector's way, or every
            # full collection walks all of it in the middle of a search and the slowest
            # searches get much slower (docs/benchmarks.md, "Reading")
            memory.freeze_long_lived()
        except Exception:  # noqa: BLE001 - searches go on in SQL
            log.exception("in-memory search of %s unavailable; searching in SQL", self.path)
            self._state = "failed"

    def _catch_up(self) -> None:
        """(Holding the lock, in a read transaction.) Apply what changed since the last time."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version == self.version:
            return
        try:
            self._apply_changes()
        except BaseException:
            # half-applied changes would answer wrongly from now on: forget the copy, so the
            # next search loads it whole again (this one is answered in SQL)
            self._reset()
            raise
        self.version = version

    def _apply_changes(self) -> None:
        """Drop the records that are gone, load the ones added (``_catch_up``)."""
        row = self._db.execute("SELECT COUNT(*), MAX(rid) FROM records").fetchone()
        count, top = row[0], row[1] or 0
        known = int(self.live.sum())
        reused = bool(self.top) and self._identity(self.top) != self.top_identity
        if count != known or top != self.top or reused:
            if known:
                present = np.zeros(len(self.live), bool)
                rows = self._db.execute("SELECT rid FROM records WHERE rid <= ?", (self.top,))
                present[[r for (r,) in rows]] = True
                if reused:
                    present[self.top] = False
                self._drop(self.live & ~present)
            self._add(self.top if reused else self.top + 1)
            self._reindex()
        if self.dead_rows > COMPACT_SHARE * max(1, len(self.rid)):
            self._reset()
            self._apply_changes()

    def _reindex(self) -> None:
        """After a change: the rows-by-term index (rebuilt when a tenth of the rows came after
        it) and the contiguous copy of the named rows, in rowid order (facets rely on it)."""
        if len(self.rid) - self.indexed > max(1000, self.indexed // 10):
            self.by_term = np.argsort(self.term, kind="stable").astype(np.int32)
            starts = np.arange(len(self.terms.ids) + 1)
            self.term_start = np.searchsorted(self.term[self.by_term], starts)
            self.indexed = len(self.rid)
        named = np.flatnonzero(self.name >= 0)
        rid = self.rid[named]
        if len(rid) > 1 and not (rid[1:] >= rid[:-1]).all():  # SQLite gives rowid order; a guard
            named = named[np.argsort(rid, kind="stable")]
            rid = self.rid[named]
        self.named_rid = rid
        self.named_conf = self.conf[named]
        self.named_name = self.name[named]
        self.named_alive = self.alive[named]
        self.named_per_record = np.bincount(rid, minlength=len(self.live))

    def _identity(self, rid: int) -> _Identity | None:
        row = self._db.execute(
            "SELECT id, timestamp, length(doc) FROM records WHERE rid = ?", (rid,)
        ).fetchone()
        return _Identity(*row) if row else None

    def _drop(self, gone: np.ndarray) -> None:
        """Forget the records marked in ``gone`` (a mask over rowids) and their rows."""
        if not gone.any():
            return
        dead = self.alive & gone[self.rid]
        self.dead_rows += int(dead.sum())
        self.alive &= ~dead
        self.live &= ~gone

    def _add(self, first: int) -> None:
        """Load records with rowid ≥ first and their label rows."""
        records = self._db.execute(
            "SELECT rid, bucket, key FROM records WHERE rid >= ? ORDER BY rid", (first,)
        ).fetchall()
        if not records:
            return
        top = records[-1][0]
        grow = top + 1 - len(self.live)
        if grow > 0:
            extra = max(grow, len(self.live) // 2)
            self.live = np.concatenate([self.live, np.zeros(extra, bool)])
            self.key = np.concatenate([self.key, np.empty(extra, object)])
            self.bucket = np.concatenate([self.bucket, np.full(extra, -1, np.int64)])
        rids, buckets, keys = zip(*records, strict=True)
        where = np.asarray(rids)
        self.live[where] = True
        self.key[where] = keys
        self.bucket[where] = [self.buckets.setdefault(b, len(self.buckets)) for b in buckets]
        self.top = max(self.top, top)
        self.top_identity = self._identity(self.top)
        del records, rids, buckets, keys
        parts: list[tuple[np.ndarray, ...]] = []
        sql = "SELECT rid, term, confidence, name FROM label_terms"
        # from the start: the table in its own order, no index lookups for 3.7 M rows
        cursor = (
            self._db.execute(sql)
            if first <= 1
            else self._db.execute(sql + " WHERE rid >= ?", (first,))
        )
        # in chunks, converted column by column: 3.7 M rows at 100,000 photos would hold
        # hundreds of MB of Python objects at once, and a Python loop over rows is slow
        while chunk := cursor.fetchmany(100_000):
            rids, terms, confs, names = zip(*chunk, strict=True)
            del chunk
            for term in set(terms) - self.terms.ids.keys():
                self.terms.id(term)
            for name in set(names) - self.names.keys() - {None}:
                self.names[name] = len(self.name_list)
                self.name_list.append(name)
            ids, named = self.terms.ids, self.names
            parts.append(
                (
                    np.array(rids, np.int32),
                    np.array([ids[t] for t in terms], np.int32),
                    np.array(confs, np.float64),
                    np.array([-1 if n is None else named[n] for n in names], np.int32),
                )
            )
        if not parts:
            return
        rid, term, conf, name = (np.concatenate(column) for column in zip(*parts, strict=True))
        del parts
        _one_name_per_photo(rid, conf, name)
        self.rid = np.concatenate([self.rid, rid])
        self.term = np.concatenate([self.term, term])
        self.conf = np.concatenate([self.conf, conf])
        self.name = np.concatenate([self.name, name])
        self.alive = np.concatenate([self.alive, np.ones(len(rid), bool)])

    # --- searching ----------------------------------------------------------------------------
    def handles(self, query: SearchQuery) -> bool:
        return bool(query.labels or query.text) and not (query.prefix or query.since or query.until)

    def search(self, query: SearchQuery) -> SearchResult:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._catch_up()
                self.searches += 1
                return self._search(query)
            finally:
                self._db.execute("COMMIT")

    def _best(self, rows: np.ndarray) -> np.ndarray:
        """Per rowid, the highest confidence among ``rows`` (-1 where none)."""
        best = np.full(len(self.live), -1.0)
        np.maximum.at(best, self.rid[rows], self.conf[rows])
        return best

    def _rows(self, terms: np.ndarray | list[int], floor: float) -> np.ndarray:
        """Rows of live photos with one of these term ids, at ≥ floor."""
        terms = np.asarray(terms, np.int64)
        parts = [
            self.by_term[self.term_start[t] : self.term_start[t + 1]]
            for t in terms.tolist()
            if t + 1 < len(self.term_start)
        ]
        if len(self.rid) > self.indexed:  # appended since the index was built
            tail = np.arange(self.indexed, len(self.rid))
            parts.append(tail[np.isin(self.term[self.indexed :], terms)])
        rows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return rows[self.alive[rows] & (self.conf[rows] >= floor)]

    def _search(self, query: SearchQuery) -> SearchResult:
        floor = query.min_confidence
        match = self.live.copy()
        if query.bucket is not None:
            match &= self.bucket == self.buckets.get(query.bucket, -2)
        label_best: list[np.ndarray] = []
        for label in query.labels:
            tid = self.terms.ids.get(label.strip().lower())
            best = self._best(self._rows([] if tid is None else [tid], floor))
            match &= best >= 0
            label_best.append(best)
        tokens = query_tokens(query.text or "")
        token_best: list[np.ndarray] = []
        labelled = np.ones(len(self.live), bool)
        for token in tokens:
            best = self._best(self._rows(self.terms.matching(token), floor))
            by_label = best >= 0
            elsewhere = np.zeros(len(self.live), bool)
            for table in ("path_fts", "text_fts"):
                sql = f"SELECT rowid FROM {table} WHERE {table} MATCH ?"
                hits = [r for (r,) in self._db.execute(sql, (fts_phrase(token),))]
                elsewhere[[h for h in hits if h < len(self.live)]] = True
            best = np.where(by_label, best, np.where(elsewhere, 0.0, -1.0))
            match &= best >= 0
            labelled &= by_label
            token_best.append(best)
        matched = np.flatnonzero(match)
        total = len(matched)
        facets = self._facets(match, floor, query.facets) if query.facets else []
        if tokens:
            eq_terms = self.terms.phrases.get(query_phrase(query.text or ""), [])
            eq = self._best(self._rows(eq_terms, floor))[matched]
            labels_min = np.min([b[matched] for b in label_best], axis=0) if label_best else None
            contains = np.min([b[matched] for b in token_best], axis=0)
            if labels_min is not None:
                contains = np.minimum(contains, labels_min)
            equal = eq if labels_min is None else np.minimum(eq, labels_min)
            has_eq = eq >= 0
            score = np.where(has_eq, equal, contains)
            tier = np.where(has_eq, 2, np.where(labelled[matched], 1, 0))
        else:
            score = (
                np.min([b[matched] for b in label_best], axis=0) if label_best else np.zeros(total)
            )
            tier = np.zeros(total, np.int64)
        page = self._page(matched, tier, score, query.offset, query.limit)
        hits = self._hits(page)
        return SearchResult(total=total, hits=hits, facets=facets)

    def _page(
        self, matched: np.ndarray, tier: np.ndarray, score: np.ndarray, offset: int, limit: int
    ) -> list[tuple[int, float]]:
        """(rowid, score) of the page: tier, then score (both descending), then key."""
        want = offset + limit
        if want <= 0 or not len(matched):
            return []
        order = np.arange(len(matched))
        if len(order) > want:
            # only the hits that can make the page are sorted: the tiers above the one the page
            # ends in, and in that one the scores down to the last wanted one, everything tied
            # with it included (it competes for its place by key); found in linear time, as
            # sorting every hit of a broad search is a large share of its time
            # (docs/benchmarks.md, "Reading")
            above = 0
            for cut_tier in (2, 1, 0):
                here = tier == cut_tier
                count = int(here.sum())
                if above + count >= want:
                    break
                above += count
            scores = score[here]
            rank = len(scores) - (want - above)
            cut_score = np.partition(scores, rank)[rank]
            order = np.flatnonzero((tier > cut_tier) | (here & (score >= cut_score)))
        ranked = sorted(order.tolist(), key=lambda i: (-tier[i], -score[i], self.key[matched[i]]))[
            offset:want
        ]
        return [(int(matched[i]), float(score[i])) for i in ranked]

    def _hits(self, page: list[tuple[int, float]]) -> list[Hit]:
        if not page:
            return []
        marks = ",".join("?" * len(page))
        docs = dict(
            self._db.execute(
                f"SELECT rid, doc FROM records WHERE rid IN ({marks})", [r for r, _ in page]
            ).fetchall()
        )
        return [Hit(Record.model_validate_json(docs[rid]), score) for rid, score in page]

    def _facets(self, match: np.ndarray, floor: float, limit: int) -> list[tuple[str, int]]:
        # the named rows are in rowid order, so each record's match flag repeated over its rows
        # is the rows' mask, cheaper than a gather by rowid (match[named_rid]); in place where
        # numpy allows (docs/benchmarks.md, "Reading")
        rows = np.repeat(match, self.named_per_record)
        rows &= self.named_alive
        rows &= self.named_conf >= floor
        counts = np.bincount(self.named_name[rows], minlength=len(self.name_list))
        present = np.flatnonzero(counts)
        if len(present) > limit:  # only names that can still make the top ``limit`` are sorted
            cut = np.partition(counts[present], len(present) - limit)[len(present) - limit]
            present = present[counts[present] >= cut]
        ranked = sorted(present.tolist(), key=lambda i: (-counts[i], self.name_list[i]))[:limit]
        return [(self.name_list[i], int(counts[i])) for i in ranked]

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self.terms.fts.close()


def _one_name_per_photo(rid: np.ndarray, conf: np.ndarray, name: np.ndarray) -> None:
    """A label name counts once per photo in facets (SQL: COUNT(DISTINCT rid)): when a photo
    has a name twice, only its most confident row keeps it (in place)."""
    rows = np.flatnonzero(name >= 0)
    order = rows[np.lexsort((-conf[rows], name[rows], rid[rows]))]
    repeat = np.zeros(len(order), bool)
    repeat[1:] = (rid[order][1:] == rid[order][:-1]) & (name[order][1:] == name[order][:-1])
    name[order[repeat]] = -1
