"""The Index contract: where records are kept and how they are searched.

Every backend (SQLite, Elasticsearch, OpenSearch) implements the same semantics, checked by one
shared contract test suite (``tests/contract/test_index_contract.py``):

- a *label* query (``labels``) matches a record when one of its labels, or a label's parent or
  alias, equals the term case-insensitively, with that label's confidence ≥ ``min_confidence``;
  several labels must all match;
- a *text* query (``text``) matches a record when each of its words is a word of the key/path,
  of a label's name, parents or aliases (label confidence ≥ ``min_confidence``), or of the text
  read in the photo (``TextDetections`` LINEs, docs/text.md). Words compare stemmed and in
  either number, irregular plurals too: "dogs" = "Dog", "children" = "Child", "men" = "Man",
  "knives" = "Knife" (``pixdex.indexes.words``). Everyday words reach labels through their
  aliases ("people" → a Person label with the alias "People"); there is no synonym table of
  its own;
- text hits come in three tiers, best first:
  1. *equal*: a label's name, a parent or an alias equals the whole query, word for word in
     order ("dogs" = "Dog", "traffic lights" = "Traffic Light", "hot dog" = "Hot Dog"), scored
     by the confidence of the best such label;
  2. *contains*: every query word is in some label ("dog" in "Hot Dog"), scored by the lowest,
     over the query's words, of the best confidence of a label containing it;
  3. *path or text*: a word found only in the key/path or in the text read in the photo,
     score 0;
  so a Dog ranks above a Hot Dog whatever their confidences. With label queries too, a hit's
  score is the lower of theirs and the text's. Within a tier: score, then key. Without text,
  hits are ranked by the label queries' score (0 without any), then key;
- ``facets`` counts label names (labels themselves, not parents/aliases) with confidence
  ≥ ``min_confidence`` over the whole result set.

``min_confidence`` is 0 here; the CLI, the HTTP API and the gallery default to the
``min_confidence`` setting (55, what DetectLabels emits) while indexes store labels down to
``store_min_confidence`` (20), so a lower floor finds the weaker labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pixdex.records import Failure, Record


@dataclass(slots=True)
class SearchQuery:
    text: str | None = None
    labels: Sequence[str] = ()
    min_confidence: float = 0.0
    bucket: str | None = None
    prefix: str | None = None
    since: str | None = None  # ISO 8601, compared with ``timestamp``
    until: str | None = None
    limit: int = 20
    offset: int = 0
    facets: int = 20  # how many label facets to return; 0 for none


def date_range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """Inclusive bounds comparable with ``timestamp`` strings; a bare date as ``until`` means
    the whole of that day (users type ``--until 2024-01-31`` and expect the 31st included)."""
    if until and len(until) == 10:
        until += "T23:59:59.999999"
    return since or None, until or None


@dataclass(slots=True)
class SimilarQuery:
    """The photos most like an embedding ("more like this", ``similarity``): ``vector`` is a
    unit float32 embedding, compared only with stored embeddings of ``version``; ``exclude`` is
    a record id to leave out (the photo asked about)."""

    vector: np.ndarray
    version: str
    limit: int = 20
    exclude: str | None = None


#: what ``EmbeddingSet.photos`` says of each photo (what a duplicates report shows and what
#: decides which copy to keep)
PHOTO_FIELDS = ("id", "bucket", "key", "timestamp", "uri", "width", "height", "size")
PHOTO_FIELDS += ("last_modified",)


@dataclass(slots=True)
class EmbeddingSet:
    """Every stored embedding of one version, for finding duplicates: row i of ``vectors``
    (int8) and of ``thumbnails`` belongs to ``photos[i]`` (``PHOTO_FIELDS``)."""

    version: str
    vectors: np.ndarray
    thumbnails: np.ndarray
    photos: list[dict[str, Any]]


def similarity_score(cosine: float) -> float:
    """A ``Similarity`` 0–100 from a cosine (negative: 0)."""
    return round(max(0.0, min(1.0, float(cosine))) * 100.0, 1)


@dataclass(slots=True)
class Hit:
    record: Record
    score: float  # confidence of the best matching label; 0 for path-only/unfiltered matches


@dataclass(slots=True)
class SearchResult:
    total: int
    hits: list[Hit]
    facets: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class IndexStats:
    location: str
    records: int
    failures: int
    labels: int  # distinct label names
    top_labels: list[tuple[str, int]]
    model_versions: list[tuple[str, int]]

    def to_json(self) -> dict[str, Any]:
        """The shape ``pixdex stats --json`` and ``GET /api/stats`` share."""
        return {
            "location": self.location,
            "records": self.records,
            "failures": self.failures,
            "labels": self.labels,
            "top_labels": [{"name": n, "count": c} for n, c in self.top_labels],
            "model_versions": [{"version": v, "count": c} for v, c in self.model_versions],
        }


#: what ``Index.reindex`` passes every record through
Transform = Callable[[Record], "Record | None"]


@dataclass(slots=True)
class ReindexResult:
    """What ``Index.reindex`` did: records written (copied into the new index, or updated in
    place), records the transform dropped, and for a server index the indexes behind the alias
    before and the one after."""

    written: int
    skipped: int = 0
    old: list[str] = field(default_factory=list)
    new: str | None = None


@dataclass(slots=True)
class CheckReport:
    """What ``pixdex check`` found in an index: one line per problem a user can act on, and
    (with ``repair``) how many records were mended from their stored documents and how many
    could not be and were marked for re-analysis (the next ``pixdex index`` analyzes them)."""

    location: str
    records: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: int = 0
    reanalyze: int = 0

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "records": self.records,
            "clean": self.clean,
            "problems": self.problems,
            "repaired": self.repaired,
            "reanalyze": self.reanalyze,
        }


@dataclass(slots=True)
class Indexed:
    """What an index knows about one stored object: enough to decide whether to re-analyze."""

    fingerprint: str | None
    content_sha256: str | None
    analysis_version: str


@runtime_checkable
class Index(Protocol):
    location: str

    def upsert(self, records: Sequence[Record]) -> list[Failure]:
        """Insert or replace by ``Record.id``; also clears a stored failure for the same object.
        Each record is written whole or not at all; those not written come back as failures.
        Durable on return (committed / acknowledged)."""
        ...

    def delete(self, bucket: str, keys: Iterable[str]) -> int:
        """Remove records (and failures) for these keys; returns how many records went."""
        ...

    def get(self, bucket: str, key: str) -> Record | None: ...

    def get_by_id(self, record_id: str) -> Record | None: ...

    def known(self, bucket: str, prefix: str = "") -> dict[str, Indexed]:
        """key → what is indexed, for every record under ``bucket``/``prefix``."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def record_failures(self, failures: Sequence[Failure]) -> None:
        """Remember objects that could not be indexed (replacing earlier failures of the same)."""
        ...

    def failures(self, bucket: str | None = None, limit: int = 1000) -> list[Failure]: ...

    def stats(self) -> IndexStats: ...

    def similar(self, query: SimilarQuery) -> SearchResult:
        """The ``limit`` records whose embeddings are most like ``query.vector``, best first,
        each hit's score its ``Similarity`` (0–100)."""
        ...

    def embeddings(self, version: str) -> EmbeddingSet:
        """Every stored embedding of ``version`` (``pixdex duplicates``)."""
        ...

    def embedding_versions(self) -> list[tuple[str, int]]:
        """(version, how many records have an embedding of it), most first."""
        ...

    def check(self, repair: bool = False) -> CheckReport:
        """``pixdex check``: whether everything a search reads agrees with the stored records;
        with ``repair``, mend what can be derived from them and mark the rest for re-analysis."""
        ...

    def reindex(
        self,
        transform: Transform | None = None,
        *,
        source: str | None = None,
        keep_old: bool = False,
    ) -> ReindexResult:
        """``pixdex reindex``: every record through ``transform`` (None drops it; the same
        object back leaves it as it is). A server index builds a new index behind its alias
        (from ``source`` instead, when given; the old one kept with ``keep_old``) and swaps it
        in atomically; SQLite updates its file in place."""
        ...

    def close(self) -> None: ...
