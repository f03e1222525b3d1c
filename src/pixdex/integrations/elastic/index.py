"""``ElasticIndex``: the Index contract on an Elasticsearch or OpenSearch cluster.

Layout (docs/elasticsearch.md): ``name`` is an alias; documents live in
``name-pixdex-<UTC timestamp>``, created from the index template ``pixdex-<name>`` (explicit
mapping, ``mapping.py``); failures live in the sibling index ``name-failures``. ``reindex`` builds
a new concrete index and swaps the alias atomically, so searches never stop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pixdex.errors import IndexUnavailable
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
    similarity_score,
)
from pixdex.integrations.elastic import mapping, query
from pixdex.integrations.elastic.documents import search_doc, to_record
from pixdex.integrations.elastic.reindex import reindex
from pixdex.integrations.elastic.transport import Connection, Down, bulk_line, connect, reason
from pixdex.records import Embedding, Failure, Record, analysis_version, record_id
from pixdex.similar import vector_of
from pixdex.similarity import decode_thumbnails, int8_matrix

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)


class ElasticIndex:
    """An index on an Elasticsearch or OpenSearch cluster (see the module docstring)."""

    def __init__(self, conn: Connection, name: str, *, create: bool = True) -> None:
        self.conn = conn
        self.location = conn.location
        self.name = name
        self.failures_index = f"{name}-failures"
        self.template = f"pixdex-{name}"
        #: floors at which every index behind the alias lists label names (query.label_agg)
        self.facet_floors: frozenset[int] = frozenset()
        self._ensure(create)

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: Settings | None = None,
        *,
        create: bool = True,
    ) -> ElasticIndex:
        """Open (creating when missing) the index at ``es+http(s)://…/name`` or
        ``opensearch+http(s)://…/name``, with the ``[elastic]`` settings.

        The migrations it lacks are applied (``mapping.MIGRATIONS``); one made by a pre-release
        or a newer pixdex is refused with one line. ``create=False`` (read-only commands)
        refuses to create a missing index."""
        if settings is None:
            from pixdex.config import load_settings

            settings = load_settings()
        conn, name = connect(url, settings)
        return cls(conn, name, create=create)

    # --- opening --------------------------------------------------------------------------------
    def _ensure(self, create: bool) -> None:
        conn = self.conn
        try:
            status, body = conn.http.call(
                "GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"}
            )
        except Down as exc:
            raise IndexUnavailable(
                f"cannot reach {conn.flavor_name} at {self.location}: {exc}"
            ) from exc
        if status >= 300:
            hint = {
                401: " (credentials refused: check the user and password, in the URL or"
                " es_username/es_password, or the API key, es_api_key)",
                403: " (these credentials may not read the cluster's node versions)",
            }.get(status, "")
            raise IndexUnavailable(
                f"{conn.flavor_name} at {self.location} answered {status}{hint}: {reason(body)}"
            )
        versions = [n.get("version", "") for n in (body or {}).get("nodes", {}).values()]
        self.server_version = min(versions) if versions else "?"
        if conn.http.flavor == "es" and versions:
            conn.http.compat = max(7, min(int(v.split(".")[0]) for v in versions))
        status, body = conn.call("GET", f"/_alias/{self.name}")
        if not (status == 200 and body):
            exists, _ = conn.call("HEAD", f"/{self.name}")
            if exists == 200:
                # Several workers started at once on a new index race to create it: the name
                # may have become another pixdex's alias between the two calls above.
                status, body = conn.call("GET", f"/_alias/{self.name}")
                if not (status == 200 and body):
                    raise IndexUnavailable(self._conflict_message())
            elif not create:
                raise IndexUnavailable(f"no pixdex index {self.name!r} at {self.location}")
            else:
                body = self._create()
        self._check(sorted(body))
        self._ensure_failures()

    def _create(self) -> dict[str, Any]:
        """Make the index (template, then a concrete index behind the alias) and return the
        alias's indexes; another pixdex creating it at the same time is fine."""
        conn = self.conn
        self.put_template()
        concrete = self.new_index_name()
        status, body = conn.call(
            "PUT", f"/{concrete}", body={"aliases": {self.name: {"is_write_index": True}}}
        )
        if status >= 300 and "already_exists" not in reason(body) and "alias" not in reason(body):
            raise IndexUnavailable(
                f"cannot create index {concrete} on {self.location}: {reason(body)}"
            )
        status, body = conn.call("GET", f"/_alias/{self.name}")
        if status != 200:
            raise IndexUnavailable(
                f"cannot create alias {self.name} on {self.location}: {reason(body)}"
            )
        return body

    def _conflict_message(self) -> str:
        status, body = self.conn.call("GET", f"/{self.name}/_mapping")
        labels = "?"
        if status == 200 and body:
            found = next(iter(body.values())).get("mappings", {})
            labels = found.get("properties", {}).get("Labels", {}).get("type", "object")
        return (
            f"{self.location}: index {self.name!r} already exists and was not created by pixdex"
            f" (Labels mapped as {labels!r}, not pixdex's nested mapping); pixdex will not change"
            f" it. Use another index name, and copy its documents with"
            f" `pixdex reindex --from {self.name}`."
        )

    def _check(self, concrete: list[str]) -> None:
        """The mappings behind the alias: pixdex's (nested labels, its ``_meta``), of this
        release's layout (migrations still missing are applied), and at which facet floors
        every one lists names."""
        status, body = self.conn.call("GET", f"/{','.join(concrete)}/_mapping")
        if status != 200:
            raise IndexUnavailable(
                f"cannot read the mapping of {self.name} on {self.location}: {reason(body)}"
            )
        floors: set[int] | None = None  # the floors every index lists names at
        for index, value in body.items():
            found = value.get("mappings", {})
            meta = (found.get("_meta") or {}).get("pixdex") or {}
            labels = found.get("properties", {}).get("Labels", {}).get("type", "object")
            if not meta or labels != "nested":
                raise IndexUnavailable(
                    f"{self.location}: index {index} behind {self.name!r} has a mapping pixdex did"
                    f" not make (Labels mapped as {labels!r}); pixdex will not change it. Use"
                    " another index name, or copy it with `pixdex reindex`."
                )
            applied = meta.get("migrations")
            if not isinstance(applied, list):
                raise IndexUnavailable(
                    f"{self.location}: index {index} was made by a pre-release pixdex, whose"
                    " mapping this one does not read: copy it into a new index with `pixdex"
                    f" reindex --index <new index URL> --from {self.name}`, or delete it and"
                    " index again"
                )
            self._migrate(index, meta)
            listed = meta.get("facet_floors")
            # only floors this pixdex writes lists at: anything else in an edited _meta (not a
            # list, a floor with no such field) would aggregate a missing field (no facets)
            known = {f for f in mapping.FACET_FLOORS if isinstance(listed, list) and f in listed}
            floors = known if floors is None else floors & known
        self.concrete = concrete
        self.facet_floors = frozenset(floors or ())

    def _migrate(self, index: str, meta: dict[str, Any]) -> None:
        """Apply the migrations ``index`` lacks, then record them in its ``_meta`` (which a
        mapping update replaces whole: the rest of it is sent again)."""
        applied = list(meta["migrations"])
        pending = mapping.MIGRATIONS.pending(applied, f"{self.location}: index {index}")
        if not pending:
            return
        for step in pending:
            step.apply(self, index)
        names = [*applied, *(step.name for step in pending)]
        self.conn.ok(
            "PUT",
            f"/{index}/_mapping",
            f"recording the migrations of {index}",
            body={"_meta": {"pixdex": {**meta, "migrations": names}}},
        )
        log.warning("%s: %s brought up to date (%s)", self.location, index, ", ".join(names))

    def _ensure_failures(self) -> None:
        status, _ = self.conn.call("HEAD", f"/{self.failures_index}")
        if status == 200:
            return
        status, body = self.conn.call(
            "PUT",
            f"/{self.failures_index}",
            body={
                "settings": mapping.index_settings(self.conn.options),
                "mappings": mapping.failure_mapping(),
            },
        )
        if status >= 300 and "already_exists" not in reason(body):
            raise IndexUnavailable(
                f"cannot create {self.failures_index} on {self.location}: {reason(body)}"
            )

    def put_template(self) -> None:
        """Create or replace the index template new concrete indexes are made from."""
        self.conn.ok(
            "PUT",
            f"/_index_template/{self.template}",
            "creating the index template",
            body=mapping.template(self.name, self.conn.options, self.conn.http.flavor),
        )

    def new_index_name(self) -> str:
        return f"{self.name}-pixdex-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"

    # --- writes ---------------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> list[Failure]:
        return self.write(self.name, records)

    def write(
        self,
        target: str,
        records: Sequence[Record],
        clear_failures: bool = True,
        refresh: str | None = None,
    ) -> list[Failure]:
        """Index ``records`` into ``target`` (the alias, or a new index during reindex); what the
        server refused comes back as write errors, one per record.

        Each document is replaced whole by the server (never half-written); the failures of
        the objects written are cleared after, in a second request, so an object whose write
        failed keeps its place in the failure list."""
        items: list[tuple[Any, bytes]] = []
        errors: list[Failure] = []
        for record in records:
            try:
                items.append((record, bulk_line("index", target, record.id, search_doc(record))))
            except (TypeError, ValueError) as exc:
                errors.append(Failure.of(record, f"cannot serialize: {exc}"))
        done, failed = self.conn.bulk(items, refresh)
        for record, why in failed:
            errors.append(Failure.of(record, why))
        written: list[Record] = []
        for record, outcome in done:
            if outcome.get("status", 500) >= 300:
                errors.append(Failure.of(record, reason({"error": outcome.get("error")})))
            else:
                written.append(record)
        if clear_failures and written:
            cleared = [(r, bulk_line("delete", self.failures_index, r.id)) for r in written]
            _, not_cleared = self.conn.bulk(cleared, refresh)
            for record, why in not_cleared:  # written, but its old failure stays listed
                log.warning("could not clear the failure of %s: %s", record.key, why)
        return errors

    def delete(self, bucket: str, keys: Iterable[str]) -> int:
        ids = [record_id(bucket, key) for key in keys]
        if not ids:
            return 0
        items = [(("record", i), bulk_line("delete", self.name, i)) for i in ids] + [
            (("failure", i), bulk_line("delete", self.failures_index, i)) for i in ids
        ]
        done, failed = self.conn.bulk(items)
        if failed:
            raise IndexUnavailable(f"delete failed on {self.location}: {failed[0][1]}")
        return sum(
            1
            for (kind, _), outcome in done
            if kind == "record" and outcome.get("result") == "deleted"
        )

    def record_failures(self, failures: Sequence[Failure]) -> None:
        items = [
            (f, bulk_line("index", self.failures_index, record_id(f.bucket, f.key), f.to_json()))
            for f in failures
        ]
        done, failed = self.conn.bulk(items)
        bad = [why for _, why in failed] + [
            reason({"error": o.get("error")}) for _, o in done if o.get("status", 500) >= 300
        ]
        if bad:
            raise IndexUnavailable(f"recording {len(bad)} failure(s) on {self.location}: {bad[0]}")

    # --- reads ----------------------------------------------------------------------------------
    def get_by_id(self, record_id: str) -> Record | None:
        body = self.conn.search(
            {
                "query": {"ids": {"values": [record_id]}},
                "size": 1,
                "_source": {"excludes": ["pixdex_*"]},
            },
            self.name,
        )
        hits = body["hits"]["hits"]
        return to_record(hits[0]["_source"]) if hits else None

    def get(self, bucket: str, key: str) -> Record | None:
        record = self.get_by_id(record_id(bucket, key))
        if record is None or record.bucket != bucket or record.key != key:
            return None
        return record

    def known(self, bucket: str, prefix: str = "") -> dict[str, Indexed]:
        filters: list[dict[str, Any]] = [{"term": {"bucket": bucket}}]
        if prefix:
            filters.append({"prefix": {"key": prefix}})
        out: dict[str, Indexed] = {}
        for hit in self.conn.scan(
            self.name,
            {"bool": {"filter": filters}},
            {"includes": ["key", "fingerprint", "content_sha256", "analyzers"]},
        ):
            src = hit["_source"]
            out[src["key"]] = Indexed(
                src.get("fingerprint"),
                src.get("content_sha256"),
                analysis_version(src.get("analyzers") or {}),
            )
        return out

    def failures(self, bucket: str | None = None, limit: int = 1000) -> list[Failure]:
        where: dict[str, Any] = (
            {"term": {"bucket": bucket}} if bucket is not None else {"match_all": {}}
        )
        body = self.conn.search(
            {
                "query": where,
                "size": min(limit, 10_000),
                "sort": [{"bucket": "asc"}, {"key": "asc"}],
            },
            self.failures_index,
        )
        return [Failure.model_validate(h["_source"]) for h in body["hits"]["hits"]]

    def search(self, search: SearchQuery) -> SearchResult:
        plan = query.sorted_plan(search)
        if plan is not None:
            return self._search_sorted(search, plan)
        body, score = query.search_body(search, self.facet_floors)
        aggs = body.pop("aggs", None)
        if aggs is None:
            resp = self.conn.search(body, self.name)
        else:
            # The page and the facets as two searches the server runs side by side: one
            # request doing both scores every match and counts its labels in one pass, which
            # is slower on a large index
            facets = {"size": 0, "track_total_hits": False, "query": body["query"], "aggs": aggs}
            resp, counted = self.conn.msearch([body, facets], self.name)
            resp["aggregations"] = counted.get("aggregations", {})
        hits = _hits(resp["hits"]["hits"], score)
        aggs = resp.get("aggregations", {})
        facets = query.label_buckets(aggs.get("facets")) if search.facets else []
        return SearchResult(total=resp["hits"]["total"]["value"], hits=hits, facets=facets)

    def _search_sorted(self, search: SearchQuery, plan: query.SortedPlan) -> SearchResult:
        """The page from the tiers' sorted legs, in tier order; the total, the facets and the
        first tier's size from one unscored search of the match set, sent with the first leg
        (the server runs them side by side). A second leg is searched only when the page
        reaches past the first tier."""

        def leg(i: int, start: int, size: int) -> dict[str, Any]:
            return {
                "from": start,
                "size": size,
                "track_total_hits": False,
                "_source": query.HIT_SOURCE,
                "query": {"bool": {"filter": [plan.match, plan.legs[i].filter]}},
                "sort": plan.legs[i].sort,
            }

        aggs: dict[str, Any] = {"first_tier": {"filter": plan.legs[0].filter}}
        if search.facets:
            aggs["facets"] = query.label_agg(
                search.facets, search.min_confidence, self.facet_floors
            )
        count = {"size": 0, "track_total_hits": True, "query": plan.match, "aggs": aggs}
        first, counted = self.conn.msearch([leg(0, search.offset, search.limit), count], self.name)
        found = first["hits"]["hits"]
        counts = counted.get("aggregations", {})
        tier = int(counts["first_tier"]["doc_count"])
        total = int(counted["hits"]["total"]["value"])
        more = len(found) < search.limit and search.offset + len(found) < total
        if len(plan.legs) == 2 and more:
            # the second tier's page begins where the page passes the first tier
            start = max(0, search.offset - tier)
            resp = self.conn.search(leg(1, start, search.limit - len(found)), self.name)
            found = found + resp["hits"]["hits"]
        facets = query.label_buckets(counts.get("facets")) if search.facets else []
        return SearchResult(total=total, hits=_hits(found, plan.score), facets=facets)

    def similar(self, query: SimilarQuery) -> SearchResult:
        """kNN on the server (``dense_vector`` / ``knn_vector``, cosine) among the embeddings of
        the query's version; each hit's Similarity is the exact cosine of the stored int8
        embeddings, as SQLite computes it (the server's score is an approximation of it)."""
        k = query.limit + (query.exclude is not None)
        vector = [float(x) for x in query.vector]
        version = {"term": {mapping.VECTOR_VERSION_FIELD: query.version}}
        if self.conn.http.flavor == "es":
            body: dict[str, Any] = {
                "knn": {
                    "field": mapping.VECTOR_FIELD,
                    "query_vector": vector,
                    "k": k,
                    "num_candidates": max(100, 4 * k),
                    "filter": version,
                },
                "size": k,
            }
        else:
            body = {
                "size": k,
                "query": {
                    "knn": {mapping.VECTOR_FIELD: {"vector": vector, "k": k, "filter": version}}
                },
            }
        body["_source"] = {"excludes": ["pixdex_*"]}
        found = self.conn.search(body, self.name)["hits"]["hits"]
        hits = []
        for hit in found:
            record = to_record(hit["_source"])
            if record.id == query.exclude or record.embedding is None:
                continue
            cosine = float(vector_of(record.embedding) @ query.vector)
            hits.append(Hit(record, similarity_score(cosine)))
        hits.sort(key=lambda h: -h.score)
        return SearchResult(total=len(hits[: query.limit]), hits=hits[: query.limit])

    def embeddings(self, version: str) -> EmbeddingSet:
        photos: list[dict[str, Any]] = []
        vectors: list[bytes] = []
        thumbs: list[bytes] = []
        for hit in self.conn.scan(
            self.name,
            {"term": {mapping.VECTOR_VERSION_FIELD: version}},
            {"includes": [*PHOTO_FIELDS, "embedding"]},
        ):
            source = hit["_source"]
            embedding = Embedding.model_validate(source["embedding"])
            vectors.append(embedding.vector_bytes())
            thumbs.append(embedding.thumbnail_bytes())
            photos.append({name: source.get(name) for name in PHOTO_FIELDS})
        return EmbeddingSet(version, int8_matrix(vectors), decode_thumbnails(thumbs), photos)

    def embedding_versions(self) -> list[tuple[str, int]]:
        body = {
            "size": 0,
            "aggs": {"v": {"terms": {"field": mapping.VECTOR_VERSION_FIELD, "size": 100}}},
        }
        buckets = self.conn.search(body, self.name)["aggregations"]["v"]["buckets"]
        return sorted(((b["key"], b["doc_count"]) for b in buckets), key=lambda v: (-v[1], v[0]))

    def stats(self) -> IndexStats:
        resp = self.conn.search(
            {
                "size": 0,
                "track_total_hits": True,
                "aggs": {
                    "top": query.label_agg(20),
                    "distinct": {
                        "nested": {"path": "Labels"},
                        "aggs": {
                            "n": {
                                "cardinality": {
                                    "field": "Labels.Name.keyword",
                                    "precision_threshold": 40000,
                                }
                            }
                        },
                    },
                    "models": {
                        "terms": {"field": "LabelModelVersion", "missing": "", "size": 1000}
                    },
                },
            },
            self.name,
        )
        aggs = resp["aggregations"]
        failures = self.conn.search({"size": 0, "track_total_hits": True}, self.failures_index)
        models = sorted(
            ((b["key"], b["doc_count"]) for b in aggs["models"]["buckets"]),
            key=lambda kv: (-kv[1], kv[0]),
        )
        return IndexStats(
            location=self.location,
            records=resp["hits"]["total"]["value"],
            failures=failures["hits"]["total"]["value"],
            labels=int(aggs["distinct"]["n"]["value"]),
            top_labels=query.label_buckets(aggs["top"]),
            model_versions=models,
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def reindex(
        self,
        transform: Transform | None = None,
        *,
        source: str | None = None,
        keep_old: bool = False,
    ) -> ReindexResult:
        """Copy every record into a new concrete index (current template and mapping), optionally
        through ``transform`` (return None to drop a record), then swap the alias atomically.

        ``source`` copies from another index or alias on the same cluster instead (e.g. an index
        the original pattern made). Searches keep being answered by the old index until the swap;
        writes to it are blocked meanwhile (refused writes are reported as not indexed and a
        re-run completes them), so no update made during the copy is lost. The old index is
        deleted afterwards unless ``keep_old``.
        """
        return reindex(self, transform, source, keep_old)

    def check(self, repair: bool = False) -> CheckReport:
        """``pixdex check``: the alias, write blocks and copies a stopped reindex leaves, and
        every document's search fields (``check``); with ``repair``, mend them."""
        from pixdex.integrations.elastic.check import check

        return check(self, repair)

    def drop(self) -> None:
        """Delete everything this index created: its concrete indexes, failures, template."""
        names: set[str] = set()
        status, body = self.conn.call("GET", f"/_alias/{self.name}")
        if status == 200 and body:
            names |= set(body)
        status, body = self.conn.call(
            "GET",
            f"/{self.name}-pixdex-*/_settings",
            params={"filter_path": "*.settings.index.uuid"},
        )
        if status == 200 and body:
            names |= set(body)
        names.add(self.failures_index)
        for index in sorted(names):
            status, body = self.conn.call("DELETE", f"/{index}")
            if status >= 300 and status != 404:
                raise IndexUnavailable(f"cannot delete {index} on {self.location}: {reason(body)}")
        self.conn.call("DELETE", f"/_index_template/{self.template}")

    def close(self) -> None:
        self.conn.close()


def _hits(found: list[dict[str, Any]], score: query.Scorer) -> list[Hit]:
    """Search hits as records, each with its exact score (``query.Scorer``)."""
    hits = []
    for hit in found:
        record = to_record(hit["_source"])
        hits.append(Hit(record, float(score(record))))
    return hits
