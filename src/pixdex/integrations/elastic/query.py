"""SearchQuery → an Elasticsearch/OpenSearch search body with the SQLite index's semantics.

Ranking matches the SQLite index (see ``pixdex.indexes.base``): free-text hits come in tiers (a
label equal to the query, labels containing its words, a word only in the path), and within a
tier by the min over query parts of the best matching label's confidence (a word in the text read
in the photo ranks like one in the path). Elasticsearch cannot
take a *min* of query scores, so each label is scored with a linear decay ``d(c) = 1 - c/200``
(decreasing in c, within [0.5, 1]): a part's score is the nested *min* of d (= d of the best
label), the hit's score is the ``dis_max`` (*max*) over parts (= d of the worst part), and hits
are sorted by score ascending, then key. The tiers are offsets on top: +1 for a hit with no label
equal to the query (a ``should`` clause), and a word only in the path or the photo's text scores
1.25 (> any d). In the
"equal" tier every query word's best label is at least as confident as the equal label (which
contains every word), so the max over parts is the equal label's d, as the SQLite index ranks it.
The server's scores are float32; the confidence a hit reports is computed exactly, here, from the
record (``Scorer``).

The queries people type most — one label, or one word — need no score at all: their ranking is a
sort on the best matching label's confidence (a nested sort reads doc values, where a scored
nested query runs a function per label, so the sort costs the server much less; docs/benchmarks.md,
"Reading"). ``sorted_plan`` gives those queries as one or two sorted *legs*, one per tier,
searched in tier order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pixdex.indexes.base import SearchQuery, date_range
from pixdex.indexes.words import query_phrase, query_tokens, query_words, term_keys
from pixdex.integrations.elastic.mapping import FACET_FIELD, facet_field
from pixdex.records import Label, Record

#: a hit's exact score (the SQLite index's), computed from the returned record
Scorer = Callable[[Record], float]
_DECAY = {"linear": {"Labels.Confidence": {"origin": 0, "scale": 100, "decay": 0.5}}}
_PATH_ONLY = 1.25  # a word found only in the path or the text: worse than any label (d ≤ 1)
_NOT_EQUAL = 1.0  # no label equals the query: below every hit that has one (d ≥ 0.5)
#: what a hit returns: the record without pixdex's search helper fields
HIT_SOURCE = {"excludes": ["pixdex_*", "Labels.pixdex_*"]}


def search_body(
    query: SearchQuery, facet_floors: Collection[int] = ()
) -> tuple[dict[str, Any], Scorer]:
    """(request body, exact scorer) for ``query``; ``facet_floors``: the index's (``label_agg``)."""
    parts = _Parts(query)
    body: dict[str, Any] = {
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": True,
        "_source": HIT_SOURCE,
    }
    if parts.scoring:
        body["query"] = {
            "bool": {
                "filter": parts.filters,
                "must": [{"dis_max": {"queries": parts.scoring, "tie_breaker": 0}}],
                "should": parts.tiers,
            }
        }
        body["sort"] = [{"_score": "asc"}, {"key": "asc"}, {"bucket": "asc"}]
    else:
        body["query"] = {"bool": {"filter": parts.filters}}
        body["sort"] = [{"key": "asc"}, {"bucket": "asc"}]
    if query.facets:
        body["aggs"] = {"facets": label_agg(query.facets, query.min_confidence, facet_floors)}
    return body, parts.score


@dataclass(frozen=True, slots=True)
class Leg:
    """The hits of one ranking tier: a filter on top of the query's and the sort that ranks
    them exactly as the tier's score would (best label first, then key, bucket)."""

    filter: dict[str, Any]
    sort: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SortedPlan:
    """A query ranked by sorting: the match set, its tiers in order, the exact scorer."""

    match: dict[str, Any]
    legs: list[Leg]
    score: Scorer


def sorted_plan(query: SearchQuery) -> SortedPlan | None:
    """The query as sorted legs when its ranking is a sort — one label and no text (by that
    label's confidence), or one word of text and no label (the "equal" tier by the equal
    label's confidence, then the rest by the best label containing the word, path/text-only
    matches last) — else None (score it: ``search_body``). A min over several parts, as a query
    with more words or labels ranks by, is not a sort."""
    parts = _Parts(query)
    match = {"bool": {"filter": parts.filters}}
    keys: list[dict[str, Any]] = [{"key": "asc"}, {"bucket": "asc"}]
    if len(parts.labels) == 1 and not parts.words:
        term = [{"term": {"Labels.pixdex_terms": parts.labels[0]}}]
        return SortedPlan(match, [Leg({"match_all": {}}, [parts.best(term), *keys])], parts.score)
    if len(parts.words) == 1 and parts.words[0] and not parts.labels:
        equal = [{"term": {"Labels.pixdex_phrases": parts.phrase}}]
        word = [{"term": {"Labels.pixdex_words": w}} for w in parts.words[0]]
        has_equal = parts.nested(equal, False)
        legs = [
            Leg(has_equal, [parts.best(equal), *keys]),
            Leg({"bool": {"must_not": [has_equal]}}, [parts.best(word), *keys]),
        ]
        return SortedPlan(match, legs, parts.score)
    return None


class _Parts:
    """Filters, scoring queries and tier clauses for one query: one scoring query per label and
    per text token (as the SQLite index has one CTE per label and per token), plus the query's
    phrase for the "equal" tier."""

    def __init__(self, query: SearchQuery) -> None:
        self.floor = query.min_confidence
        self.filters: list[dict[str, Any]] = []
        self.scoring: list[dict[str, Any]] = []
        self.tiers: list[dict[str, Any]] = []
        self.labels = [label.strip().lower() for label in query.labels]
        for term in self.labels:
            cond = [{"term": {"Labels.pixdex_terms": term}}]
            self.filters.append(self.nested(cond, False))
            self.scoring.append(self.nested(cond, True))
        tokens = query_tokens(query.text or "")
        self.words = [tuple(ws) for ws in query_words(tokens)]
        self.phrase = query_phrase(query.text or "") if tokens else ""
        for words in self.words:
            self._word(words)
        if self.phrase:
            equal = [{"term": {"Labels.pixdex_phrases": self.phrase}}]
            self.scoring.append(self.nested(equal, True))
            self.tiers.append(
                {
                    "constant_score": {
                        "filter": {"bool": {"must_not": [self.nested(equal, False)]}},
                        "boost": _NOT_EQUAL,
                    }
                }
            )
        if query.bucket is not None:
            self.filters.append({"term": {"bucket": query.bucket}})
        if query.prefix:
            self.filters.append({"prefix": {"key": query.prefix}})
        since, until = date_range(query.since, query.until)
        if since or until:
            bounds = {k: v for k, v in (("gte", since), ("lte", until)) if v}
            self.filters.append({"range": {"timestamp.raw": bounds}})

    def nested(self, conditions: list[dict[str, Any]], scored: bool) -> dict[str, Any]:
        """Some label (≥ the floor) meets ``conditions``; scored: d of the best such label."""
        floor = {"range": {"Labels.Confidence": {"gte": self.floor}}}
        inner: dict[str, Any] = {"bool": {"filter": [*conditions, floor]}}
        if scored:
            inner = {
                "function_score": {"query": inner, "functions": [_DECAY], "boost_mode": "replace"}
            }
        return {
            "nested": {"path": "Labels", "query": inner, "score_mode": "min" if scored else "none"}
        }

    def best(self, conditions: list[dict[str, Any]]) -> dict[str, Any]:
        """Sort clause: the highest confidence of a label (≥ the floor) meeting ``conditions``,
        best first; records without one last."""
        floor = {"range": {"Labels.Confidence": {"gte": self.floor}}}
        return {
            "Labels.Confidence": {
                "order": "desc",
                "mode": "max",
                "missing": "_last",
                "nested": {"path": "Labels", "filter": {"bool": {"filter": [*conditions, floor]}}},
            }
        }

    def _word(self, words: Sequence[str]) -> None:
        """One query token: in one label's words, or else in the path or the photo's text."""
        if not words:
            self.filters.append({"bool": {"must_not": {"match_all": {}}}})
            return
        label_cond = [{"term": {"Labels.pixdex_words": w}} for w in words]
        path_match = {
            "bool": {
                "should": [
                    {"bool": {"filter": [{"term": {field: w}} for w in words]}}
                    for field in ("pixdex_path_words", "pixdex_text_words")
                ],
                "minimum_should_match": 1,
            }
        }
        in_label = self.nested(label_cond, False)
        self.filters.append({"bool": {"should": [in_label, path_match], "minimum_should_match": 1}})
        path_only = {"bool": {"filter": [path_match], "must_not": [in_label]}}
        self.scoring.append(
            {
                "bool": {
                    "should": [
                        self.nested(label_cond, True),
                        {"constant_score": {"filter": path_only, "boost": _PATH_ONLY}},
                    ]
                }
            }
        )

    # --- exact scores ---------------------------------------------------------------------------
    def score(self, record: Record) -> float:
        """The SQLite index's score for a hit: min over parts of the best matching label's
        confidence, the equal label's standing for the text when there is one; 0 for a match on
        the path or the photo's text."""
        labels = [lb for lb in record.Labels if lb.Confidence >= self.floor]
        parts = [self._label_score(labels, term) for term in self.labels]
        if self.words:
            equal = [lb.Confidence for lb in labels if _equals(lb, self.phrase)]
            if equal:
                parts.append(max(equal))
            else:
                parts += [self._word_score(record, labels, ws) for ws in self.words]
        return min(parts) if parts else 0.0

    @staticmethod
    def _label_score(labels: list[Label], term: str) -> float:
        return max(
            (lb.Confidence for lb in labels if term in {t.lower() for t in lb.terms()}),
            default=0.0,
        )

    @staticmethod
    def _word_score(record: Record, labels: list[Label], words: Sequence[str]) -> float:
        """Best confidence of a label whose words include all of ``words``; 0 for a match on the
        path or the photo's text (the query matched it, and no label has the words)."""
        best = [lb.Confidence for lb in labels if set(words) <= _label_words(lb)]
        return max(best, default=0.0)


def _equals(label: Label, phrase: str) -> bool:
    return any(phrase in term_keys(t)[0] for t in label.terms())


def _label_words(label: Label) -> set[str]:
    return {w for t in label.terms() for w in term_keys(t)[1]}


def label_agg(
    size: int, min_confidence: float = 0.0, facet_floors: Collection[int] = ()
) -> dict[str, Any]:
    """Label names counted per record, most frequent first, then by name.

    At a floor the index's documents list their names at (``facet_floors``, from its
    ``_meta``: ``mapping.FACET_FLOORS``), one terms aggregation over that list. At any other,
    counted as label entries, not as parent documents (``reverse_nested``): a record holds one
    label per name (``records.unite_labels``, which every record pixdex builds or reads goes
    through, as Rekognition answers), so the two counts agree, and skipping the join back to the
    parents makes the facets cheaper for the server."""
    order = [{"_count": "desc"}, {"_key": "asc"}]
    shard_size = max(size * 10, 1000)
    if min_confidence in facet_floors:
        field = f"{FACET_FIELD}.{facet_field(int(min_confidence))}"
        return {"terms": {"field": field, "size": size, "shard_size": shard_size, "order": order}}
    return {
        "nested": {"path": "Labels"},
        "aggs": {
            "confident": {
                "filter": {"range": {"Labels.Confidence": {"gte": min_confidence}}},
                "aggs": {
                    "names": {
                        "terms": {
                            "field": "Labels.Name.keyword",
                            "size": size,
                            "shard_size": shard_size,
                            "order": order,
                        },
                    }
                },
            }
        },
    }


def label_buckets(agg: dict[str, Any] | None) -> list[tuple[str, int]]:
    """(name, records) from a ``label_agg`` answer."""
    if not agg:
        return []
    buckets = agg["buckets"] if "buckets" in agg else agg["confident"]["names"]["buckets"]
    return [(b["key"], int(b["doc_count"])) for b in buckets]
