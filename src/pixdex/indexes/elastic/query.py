"""SearchQuery → an Elasticsearch/OpenSearch search body with the SQLite index's semantics.

Ranking matches the SQLite index: a hit's rank is min over query parts of the best matching
label's confidence (0 for a path-only text match). Elasticsearch cannot take a *min* of query
scores, so each label is scored with a linear decay ``d(c) = 1 - c/200`` (decreasing in c): a
part's score is the nested *min* of d (= d of the best label), the hit's score is the ``dis_max``
(*max*) over parts (= d of the worst part), and hits are sorted by score ascending, then key.
The server's scores are float32; the confidence a hit reports is computed exactly, here, from the
record (``Scorer``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pixdex.indexes.base import SearchQuery, date_range
from pixdex.indexes.words import Words
from pixdex.records import Record

_TOKEN = re.compile(r"\w+", re.UNICODE)

#: the exact confidence of one query part for a returned record (None: the part does not match)
Scorer = Callable[[Record], float | None]


def search_body(query: SearchQuery) -> tuple[dict[str, Any], list[Scorer]]:
    """(request body, exact scorers) for ``query``."""
    filters, scoring, scorers = _parts(query)
    body: dict[str, Any] = {
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": True,
        "_source": {"excludes": ["pixdex_*", "Labels.pixdex_*"]},
    }
    if scoring:
        body["query"] = {
            "bool": {
                "filter": filters,
                "must": [{"dis_max": {"queries": scoring, "tie_breaker": 0}}],
            }
        }
        body["sort"] = [{"_score": "asc"}, {"key": "asc"}, {"bucket": "asc"}]
    else:
        body["query"] = {"bool": {"filter": filters}}
        body["sort"] = [{"key": "asc"}, {"bucket": "asc"}]
    if query.facets:
        body["aggs"] = {"facets": label_agg(query.facets, query.min_confidence)}
    return body, scorers


def hit_score(record: Record, scorers: list[Scorer]) -> float:
    """A hit's score as the SQLite index reports it: min over parts (0 when there are none)."""
    scores = [s(record) for s in scorers]
    return min((s or 0.0) for s in scores) if scores else 0.0


def _parts(
    query: SearchQuery,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Scorer]]:
    """(filters, scoring queries, exact scorers): one scoring query and scorer per label and
    per text token, as the SQLite index has one CTE per label and per token."""
    floor = {"range": {"Labels.Confidence": {"gte": query.min_confidence}}}
    decay = {
        "linear": {"Labels.Confidence": {"origin": 0, "scale": 100, "decay": 0.5}}
    }  # d(c) = 1 - c/200

    def nested(conditions: list[dict[str, Any]], scored: bool) -> dict[str, Any]:
        inner: dict[str, Any] = {"bool": {"filter": [*conditions, floor]}}
        if scored:
            inner = {
                "function_score": {
                    "query": inner,
                    "functions": [decay],
                    "boost_mode": "replace",
                }
            }
        return {
            "nested": {
                "path": "Labels",
                "query": inner,
                "score_mode": "min" if scored else "none",
            }
        }

    filters: list[dict[str, Any]] = []
    scoring: list[dict[str, Any]] = []
    scorers: list[Scorer] = []
    min_conf = query.min_confidence
    for label in query.labels:
        term = label.strip().lower()
        cond = [{"term": {"Labels.pixdex_terms": term}}]
        filters.append(nested(cond, False))
        scoring.append(nested(cond, True))
        scorers.append(
            lambda r, t=term: max(
                (
                    lb.Confidence
                    for lb in r.Labels
                    if lb.Confidence >= min_conf and t in {x.lower() for x in lb.terms()}
                ),
                default=None,
            )
        )
    tokens = _TOKEN.findall(query.text or "")
    for words in Words.many(tokens):
        if not words:
            filters.append({"bool": {"must_not": {"match_all": {}}}})
            continue
        label_cond = [{"term": {"Labels.pixdex_words": w}} for w in words]
        path_match = {"bool": {"filter": [{"term": {"pixdex_path_words": w}} for w in words]}}
        filters.append(
            {
                "bool": {
                    "should": [nested(label_cond, False), path_match],
                    "minimum_should_match": 1,
                }
            }
        )
        scoring.append(
            {
                "bool": {
                    "should": [
                        nested(label_cond, True),
                        {
                            "constant_score": {
                                "filter": {
                                    "bool": {
                                        "filter": [path_match],
                                        "must_not": [nested(label_cond, False)],
                                    }
                                },
                                "boost": 1.0,
                            }
                        },
                    ]
                }
            }
        )
        scorers.append(lambda r, ws=tuple(words): _text_score(r, ws, min_conf))
    if query.bucket is not None:
        filters.append({"term": {"bucket": query.bucket}})
    if query.prefix:
        filters.append({"prefix": {"key": query.prefix}})
    since, until = date_range(query.since, query.until)
    if since or until:
        bounds = {k: v for k, v in (("gte", since), ("lte", until)) if v}
        filters.append({"range": {"timestamp.raw": bounds}})
    return filters, scoring, scorers


def _text_score(record: Record, words: tuple[str, ...], min_conf: float) -> float | None:
    """Best confidence of a label whose words include all of ``words``; 0 for a path match."""
    best: float | None = None
    for label in record.Labels:
        if label.Confidence < min_conf or (best is not None and label.Confidence <= best):
            continue
        label_words = {w for ws in Words.many(label.terms()) for w in ws}
        if all(w in label_words for w in words):
            best = label.Confidence
    if best is None and all(w in set(Words.many([record.key])[0]) for w in words):
        return 0.0
    return best


def label_agg(size: int, min_confidence: float = 0.0) -> dict[str, Any]:
    """Label names counted per record (reverse_nested), most frequent first, then by name."""
    return {
        "nested": {"path": "Labels"},
        "aggs": {
            "confident": {
                "filter": {"range": {"Labels.Confidence": {"gte": min_confidence}}},
                "aggs": {
                    "names": {
                        "terms": {
                            "field": "Labels.Name",
                            "size": size,
                            "shard_size": max(size * 10, 1000),
                            "order": [{"records": "desc"}, {"_key": "asc"}],
                        },
                        "aggs": {"records": {"reverse_nested": {}}},
                    }
                },
            }
        },
    }


def label_buckets(agg: dict[str, Any] | None) -> list[tuple[str, int]]:
    """(name, records) from a ``label_agg`` answer."""
    if not agg:
        return []
    buckets = agg["confident"]["names"]["buckets"]
    return [(b["key"], int(b["records"]["doc_count"])) for b in buckets]
