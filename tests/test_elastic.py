"""Elasticsearch/OpenSearch specifics, on real servers (``tests/_servers.py``): the original
pattern's queries, the mapping, reindex behind the alias, bulk retries and faults (through a small
fault-injecting HTTP proxy in front of the real server), conflicts, and SigV4 signing."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _servers import free_port

from pixdex.config import load_settings
from pixdex.errors import IndexUnavailable
from pixdex.indexes.base import SearchQuery
from pixdex.integrations.elastic import ElasticIndex
from pixdex.records import Label, Named, Record

FLAVORS = {"elasticsearch": "es", "opensearch": "opensearch"}


def rest(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A plain REST call, as a user's dashboard or curl would make it."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}{path}", data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def record(i: int, *labels: tuple[str, float], bucket: str = "photos", **extra: Any) -> Record:
    return Record(
        bucket=bucket,
        key=f"2017/street/{i:012d}.jpg",
        Labels=[
            Label(Name=n, Confidence=c, Parents=[Named(Name="Vehicle")] if n == "Truck" else [])
            for n, c in labels
        ]
        or [Label(Name="Truck", Confidence=90.0, Parents=[Named(Name="Vehicle")])],
        fingerprint=f"etag-{i}",
        analyzers={"labels": "1"},
        **extra,
    )


@pytest.fixture(params=list(FLAVORS))
def server_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(scheme, http://127.0.0.1:PORT) for each flavor."""
    return FLAVORS[request.param], request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def opened(server_url: tuple[str, str]) -> Iterator[list[ElasticIndex]]:
    """Indexes a test opens; dropped afterwards."""
    created: list[ElasticIndex] = []
    yield created
    for index in created:
        index.drop()
        index.close()


def open_index(
    created: list[ElasticIndex], scheme: str, url: str, name: str | None = None, **params: Any
) -> ElasticIndex:
    name = name or f"pixdex-t-{uuid.uuid4().hex[:10]}"
    settings = load_settings(elastic={"refresh": "true", **params})
    index = ElasticIndex.from_url(f"{scheme}+{url}/{name}", settings)
    created.append(index)
    return index


# --- the original pattern's queries and the mapping ----------------------------------------------


def hit_keys(body: dict[str, Any]) -> list[str]:
    return [h["_source"]["key"].removeprefix("2017/street/") for h in body["hits"]["hits"]]


def test_original_pattern_queries_match(server_url, opened) -> None:
    """What the original pattern's users typed into Kibana or curl against its dynamically mapped
    index (``Labels.Name`` text with a ``.keyword`` sub-field), with no nested clause."""
    scheme, url = server_url
    index = open_index(opened, scheme, url)
    records = [
        record(1, ("Truck", 91.0)),
        record(2, ("Car", 80.0)),
        record(3, ("Traffic Light", 85.0), ("Car", 60.0)),
        record(4, ("Dog", 90.0)),
        record(5, ("Hot Dog", 95.0)),
        record(6, ("Street Light", 97.0)),
    ]
    assert index.upsert(records) == []

    def search(body: dict[str, Any] | None = None, q: str | None = None) -> list[str]:
        path = f"/{index.name}/_search" + (f"?q={urllib.parse.quote(q)}" if q else "")
        status, answer = rest(url, "POST" if body else "GET", path, body)
        assert status == 200, answer
        return hit_keys(answer)

    # Lucene query strings (the URI search and Kibana's search bar): words, any case
    assert sorted(search(q="Labels.Name:dog")) == ["000000000004.jpg", "000000000005.jpg"]
    assert search(q="Labels.Name:Truck") == ["000000000001.jpg"]
    assert search(q="Labels.Name:truck") == ["000000000001.jpg"]
    assert search(q='Labels.Name:"traffic light"') == ["000000000003.jpg"]
    assert search({"query": {"query_string": {"query": "Labels.Name:TRUCK"}}}) == [
        "000000000001.jpg"
    ]
    # full-text queries on the name: match (any word, best first) and match_phrase
    matched = search({"query": {"match": {"Labels.Name": "traffic light"}}})
    assert matched[0] == "000000000003.jpg" and set(matched) == {
        "000000000003.jpg",
        "000000000006.jpg",
    }
    assert search({"query": {"match_phrase": {"Labels.Name": "traffic light"}}}) == [
        "000000000003.jpg"
    ]
    assert search({"query": {"match_phrase": {"Labels.Name": "light traffic"}}}) == []
    # the exact name: a term on the keyword sub-field (case and whole name matter)
    assert search({"query": {"term": {"Labels.Name.keyword": "Traffic Light"}}}) == [
        "000000000003.jpg"
    ]
    assert search({"query": {"term": {"Labels.Name.keyword": "traffic light"}}}) == []
    assert search({"query": {"term": {"Labels.Name.keyword": "Dog"}}}) == ["000000000004.jpg"]
    # label X with confidence ≥ N: one nested query on the same fields
    for floor, expected in ((95, []), (90, ["000000000001.jpg"])):
        nested = {
            "nested": {
                "path": "Labels",
                "query": {
                    "bool": {
                        "filter": [
                            {"term": {"Labels.Name.keyword": "Truck"}},
                            {"range": {"Labels.Confidence": {"gte": floor}}},
                        ]
                    }
                },
            }
        }
        assert search({"query": nested}) == expected
    # label counts: a terms aggregation on the keyword sub-field
    status, body = rest(
        url,
        "POST",
        f"/{index.name}/_search",
        {
            "size": 0,
            "aggs": {
                "labels": {
                    "nested": {"path": "Labels"},
                    "aggs": {"names": {"terms": {"field": "Labels.Name.keyword"}}},
                }
            },
        },
    )
    assert status == 200, body
    names = {b["key"]: b["doc_count"] for b in body["aggregations"]["labels"]["names"]["buckets"]}
    assert names["Car"] == 2 and names["Traffic Light"] == 1
    # pixdex's schema-1 sub-field still answers saved queries
    assert search(q="Labels.Name.text:truck") == ["000000000001.jpg"]
    # and pixdex's own label search stays exact (case-insensitive, no word matches)
    assert [h.record.key for h in index.search(SearchQuery(labels=["car"])).hits] == [
        "2017/street/000000000002.jpg",
        "2017/street/000000000003.jpg",
    ]
    assert index.search(SearchQuery(labels=["light"])).total == 0


def test_mapping_is_explicit(server_url, opened) -> None:
    scheme, url = server_url
    index = open_index(opened, scheme, url)
    status, aliases = rest(url, "GET", f"/_alias/{index.name}")
    assert status == 200 and len(aliases) == 1
    concrete = next(iter(aliases))
    assert concrete.startswith(f"{index.name}-pixdex-")
    assert aliases[concrete]["aliases"][index.name].get("is_write_index") is True
    _, body = rest(url, "GET", f"/{concrete}/_mapping")
    from pixdex.integrations.elastic.mapping import MIGRATIONS

    assert body[concrete]["mappings"]["_meta"]["pixdex"]["migrations"] == MIGRATIONS.names
    props = body[concrete]["mappings"]["properties"]
    labels = props["Labels"]
    assert labels["type"] == "nested" and labels["include_in_root"] is True
    assert labels["properties"]["Name"]["type"] == "text"
    assert labels["properties"]["Name"]["fields"]["keyword"]["type"] == "keyword"
    assert labels["properties"]["Confidence"]["type"] == "float"
    for named in ("Parents", "Aliases", "Categories"):
        name = labels["properties"][named]["properties"]["Name"]
        assert name["type"] == "text" and name["fields"]["keyword"]["type"] == "keyword"
    assert props["timestamp"]["type"] == "date"
    assert props["exif"]["properties"]["GPS"]["type"] == "geo_point"
    for field in ("bucket", "key", "imported-by"):
        assert props[field]["type"] == "keyword"
    status, _ = rest(url, "GET", f"/_index_template/pixdex-{index.name}")
    assert status == 200
    # GPS is a geo_point: a distance query finds the photo taken in Paris
    paris = record(7, exif={"Make": "Canon", "GPS": {"lat": 48.85, "lon": 2.35}})
    odd = record(8, exif={"GPS": "not a point"})  # ignored, not a refused document
    assert index.upsert([paris, odd]) == []
    status, body = rest(
        url,
        "POST",
        f"/{index.name}/_search",
        {"query": {"geo_distance": {"distance": "10km", "exif.GPS": {"lat": 48.86, "lon": 2.34}}}},
    )
    assert status == 200 and [h["_id"] for h in body["hits"]["hits"]] == [paris.id]
    assert index.get("photos", odd.key).exif == {"GPS": "not a point"}
    # what the EXIF analyzer writes (with altitude) is found through pixdex_location, and the
    # record comes back exactly as written
    gps = {"lat": 45.83, "lon": 6.86, "alt": 4805.6}
    summit = record(9, exif={"GPS": gps})
    assert index.upsert([summit]) == []
    status, body = rest(
        url,
        "POST",
        f"/{index.name}/_search",
        {
            "query": {
                "geo_distance": {"distance": "5km", "pixdex_location": {"lat": 45.8, "lon": 6.9}}
            }
        },
    )
    assert status == 200 and [h["_id"] for h in body["hits"]["hits"]] == [summit.id], body
    assert index.get("photos", summit.key).exif == {"GPS": gps}
    # dates are dates: a date histogram over timestamp works
    status, body = rest(
        url,
        "POST",
        f"/{index.name}/_search",
        {
            "size": 0,
            "aggs": {"t": {"date_histogram": {"field": "timestamp", "calendar_interval": "year"}}},
        },
    )
    assert status == 200 and body["aggregations"]["t"]["buckets"][0]["doc_count"] == 3


def test_facet_floors_come_from_the_index_meta_and_an_odd_one_lists_none(server_url, opened):
    """A new index lists the floors its documents keep names at, and facets use them; an index
    whose ``_meta`` was edited into something else opens all the same and counts the nested
    labels, with the same facets."""
    from pixdex.integrations.elastic import mapping as current

    scheme, url = server_url
    index = open_index(opened, scheme, url)
    assert index.facet_floors == frozenset(current.FACET_FLOORS)
    assert index.upsert([record(1, ("Dog", 90.0)), record(2, ("Dog", 60.0), ("Cat", 56.0))]) == []
    want = [("Dog", 2), ("Cat", 1)]
    assert index.search(SearchQuery(min_confidence=55)).facets == want
    (concrete,) = rest(url, "GET", f"/_alias/{index.name}")[1]
    odd = {"_meta": {"pixdex": {"migrations": current.MIGRATIONS.names, "facet_floors": 55}}}
    assert rest(url, "PUT", f"/{concrete}/_mapping", odd)[0] == 200
    reopened = open_index(opened, scheme, url, name=index.name)
    assert reopened.facet_floors == frozenset()
    assert reopened.search(SearchQuery(min_confidence=55)).facets == want
    # a floor no field is kept for counts the nested labels too, the listed ones still count
    odd["_meta"]["pixdex"]["facet_floors"] = [42, 55]
    assert rest(url, "PUT", f"/{concrete}/_mapping", odd)[0] == 200
    reopened = open_index(opened, scheme, url, name=index.name)
    assert reopened.facet_floors == frozenset({55})
    assert reopened.search(SearchQuery(min_confidence=55)).facets == want
    assert reopened.search(SearchQuery(min_confidence=42)).facets == want


# --- reindex -------------------------------------------------------------------------------------


def test_reindex_swaps_the_alias_without_downtime(server_url, opened) -> None:
    scheme, url = server_url
    index = open_index(opened, scheme, url, batch_docs=50)
    records = [record(i, ("Truck", 50.0 + i % 50)) for i in range(400)]
    assert index.upsert(records) == []
    old = list(index.concrete)

    seen: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def search_all_the_time() -> None:
        reader = ElasticIndex.from_url(f"{scheme}+{url}/{index.name}")
        while not stop.is_set():
            try:
                seen.append(reader.search(SearchQuery(labels=["truck"], limit=1)).total)
            except Exception as exc:  # noqa: BLE001 - counted below
                errors.append(repr(exc))
        reader.close()

    reader = threading.Thread(target=search_all_the_time)
    reader.start()
    refused: list[Any] = []

    def upgrade(r: Record) -> Record | None:
        if r.key.endswith("0007.jpg"):
            # a write during the copy is refused (reported), never silently lost
            refused.extend(index.upsert([record(9999)]))
        if r.key.endswith("0013.jpg"):
            return None  # dropped by the callback
        return r.model_copy(update={"LabelModelVersion": "model:2"})

    try:
        result = index.reindex(upgrade)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert len(seen) > 3 and set(seen) <= {400, 399}
    assert result.old == old and result.new != old[0]
    assert result.written == 399 and result.skipped == 1
    assert [e.id for e in refused] == [record(9999).id]
    _, aliases = rest(url, "GET", f"/_alias/{index.name}")
    assert list(aliases) == [result.new]
    assert rest(url, "HEAD", f"/{old[0]}")[0] == 404
    assert dict(index.stats().model_versions) == {"model:2": 399}
    # writes work again, and a re-run of the refused one completes
    assert index.upsert([record(9999)]) == []
    assert index.get("photos", record(9999).key) is not None


# --- bulk retries and faults, through a fault-injecting proxy -------------------------------------


class FaultProxy:
    """HTTP proxy to a real server that can answer bulk requests with 429/503 or play dead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.reject: list[int] = []  # statuses for the next bulk requests
        self.down = False
        self.bulk_ok = 0  # bulk requests forwarded
        self.bulk_limit: int | None = None  # go down after this many forwarded bulk requests
        self.rejected = 0
        #: positions of items in the next bulk request the server refuses (they are not sent;
        #: their answers say 400) — a per-item failure, as a mapping conflict causes
        self.fail_items: set[int] = set()
        #: forward the next bulk request, then drop the connection without an answer (a
        #: timeout after the server applied it)
        self.lose_answer = False
        # called with (method, path) before a request is forwarded: lets a test act in between
        self.before_forward: Callable[[str, str], None] | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                bulk = self.path.startswith("/_bulk")
                if bulk and proxy.bulk_limit is not None and proxy.bulk_ok >= proxy.bulk_limit:
                    proxy.down = True
                if proxy.down:
                    self.close_connection = True
                    return  # no answer: the client sees the connection drop
                if bulk and proxy.reject:
                    status = proxy.reject.pop(0)
                    proxy.rejected += 1
                    payload = json.dumps(
                        {
                            "error": {"type": "es_rejected_execution_exception", "reason": "busy"},
                            "status": status,
                        }
                    ).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("x-elastic-product", "Elasticsearch")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if proxy.before_forward is not None:
                    proxy.before_forward(self.command, self.path)
                refused: set[int] = set()
                if bulk and proxy.fail_items and body:
                    refused, proxy.fail_items = proxy.fail_items, set()
                    body = _without_items(body, refused)
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                # http.client sets the length of the body forwarded (it may have been cut)
                skip = ("host", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if bulk:
                    proxy.bulk_ok += 1
                    if proxy.lose_answer:
                        proxy.lose_answer = False
                        self.close_connection = True
                        conn.close()
                        return
                    if refused:
                        payload = _with_refusals(payload, refused)
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bulk_items(body: bytes) -> list[list[bytes]]:
    """A bulk body's items, each its action line and (index actions) its document line."""
    lines = [line for line in body.split(b"\n") if line]
    items: list[list[bytes]] = []
    while lines:
        action = lines.pop(0)
        item = [action]
        if b'"delete"' not in action.split(b":", 1)[0]:
            item.append(lines.pop(0))
        items.append(item)
    return items


def _without_items(body: bytes, refused: set[int]) -> bytes:
    items = [item for i, item in enumerate(_bulk_items(body)) if i not in refused]
    return b"".join(line + b"\n" for item in items for line in item)


def _with_refusals(payload: bytes, refused: set[int]) -> bytes:
    """The server's answer to the items it got, with a 400 in the place of each refused one."""
    answer = json.loads(payload)
    got = iter(answer["items"])
    total = len(answer["items"]) + len(refused)
    error = {"type": "mapper_parsing_exception", "reason": "injected: refused by the test"}
    answer["items"] = [
        {"index": {"status": 400, "error": error}} if i in refused else next(got)
        for i in range(total)
    ]
    answer["errors"] = True
    return json.dumps(answer).encode()


@pytest.fixture
def proxy(server_url: tuple[str, str]) -> Iterator[FaultProxy]:
    p = FaultProxy(server_url[1])
    yield p
    p.close()


def test_bulk_retries_429_and_503_with_backoff(server_url, opened, proxy) -> None:
    scheme, url = server_url
    index = open_index(opened, scheme, proxy.url, retries=3, backoff=0.05, batch_docs=10)
    proxy.reject = [429, 503, 429]
    started = time.monotonic()
    records = [record(i) for i in range(25)]
    assert index.upsert(records) == []
    assert proxy.rejected == 3
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # backoff doubled each time
    assert index.stats().records == 25
    # more rejections than retries: reported per record, nothing silently dropped
    proxy.reject = [429] * 4
    errors = index.upsert([record(100 + i) for i in range(5)])
    assert len(errors) == 5 and all("429" in e.reason or "busy" in e.reason for e in errors)
    assert index.stats().records == 25


def test_server_down_at_start_names_the_url(server_url) -> None:
    scheme, _ = server_url
    port = free_port()  # nothing listens there
    with pytest.raises(IndexUnavailable, match=rf"127\.0\.0\.1:{port}"):
        ElasticIndex.from_url(f"{scheme}+http://user:secret@127.0.0.1:{port}/photos")
    try:
        ElasticIndex.from_url(f"{scheme}+http://user:secret@127.0.0.1:{port}/photos")
    except IndexUnavailable as exc:
        assert "secret" not in str(exc)


def test_server_going_down_mid_run_reports_the_rest_and_a_rerun_completes(
    server_url, opened, proxy
) -> None:
    scheme, url = server_url
    index = open_index(opened, scheme, proxy.url, retries=2, backoff=0.02, batch_docs=10)
    records = [record(i) for i in range(50)]
    proxy.bulk_limit = 2  # two batches go through, then the server "dies"
    started = time.monotonic()
    errors = index.upsert(records)
    assert time.monotonic() - started < 10  # retries, then gives up (no waiting per batch)
    assert len(errors) == 30
    assert {e.id for e in errors} == {r.id for r in records[20:]}
    assert all("unreachable" in e.reason for e in errors)
    direct = open_index(opened, scheme, url, name=index.name)
    assert direct.stats().records == 20
    # the server is back: a re-run of what was reported completes it
    proxy.down, proxy.bulk_limit = False, None
    failed = {e.id for e in errors}
    assert index.upsert([r for r in records if r.id in failed]) == []
    assert direct.stats().records == 50


# --- conflicts and migration ---------------------------------------------------------------------


def test_a_worker_that_loses_the_race_to_create_the_index_uses_the_winners(
    server_url, opened, proxy
) -> None:
    """`pixdex worker` processes started together on a new index name race to create it. One
    that finds no alias, and then finds the name taken because another pixdex created it in
    between, must use that index (it used to exit with "not created by pixdex")."""
    scheme, url = server_url
    name = f"pixdex-race-{uuid.uuid4().hex[:8]}"
    winner: list[ElasticIndex] = []

    def create_meanwhile(method: str, path: str) -> None:
        if method == "HEAD" and path.split("?")[0] == f"/{name}" and not winner:
            winner.append(open_index(opened, scheme, url, name))

    proxy.before_forward = create_meanwhile
    loser = ElasticIndex.from_url(
        f"{scheme}+{proxy.url}/{name}", load_settings(elastic={"refresh": "true"})
    )
    try:
        assert winner, "the proxy did not see the lookup it was to race"
        assert loser.concrete == winner[0].concrete and len(loser.concrete) == 1
        assert loser.upsert([record(1, ("Dog", 90.0))]) == []
        assert winner[0].stats().records == 1
    finally:
        loser.close()  # the winner, in `opened`, drops the index


def test_existing_non_pixdex_index_is_a_clear_error_and_can_be_copied(server_url, opened) -> None:
    scheme, url = server_url
    legacy = f"legacy-{uuid.uuid4().hex[:8]}"
    # What the original pattern wrote: dynamically mapped documents.
    original = {
        "Labels": [
            {"Name": "Truck", "Confidence": 91.5, "Instances": [], "Parents": [{"Name": "Vehicle"}]}
        ],
        "timestamp": "2016-12-25T22:10:41.983000",
        "bucket": "photos",
        "key": "trucks/1.jpg",
        "imported-by": "lambda",
    }
    assert rest(url, "PUT", f"/{legacy}/_doc/1?refresh=true", original)[0] in (200, 201)
    try:
        with pytest.raises(IndexUnavailable, match="not created by pixdex") as info:
            ElasticIndex.from_url(f"{scheme}+{url}/{legacy}")
        assert "reindex" in str(info.value)
        _, mapping = rest(url, "GET", f"/{legacy}/_mapping")
        assert mapping[legacy]["mappings"]["properties"]["Labels"].get("type") is None  # untouched
        # copying it into a pixdex index keeps the original documents searchable
        index = open_index(opened, scheme, url)
        result = index.reindex(source=legacy)
        assert result.written == 1
        hits = index.search(SearchQuery(labels=["vehicle"])).hits
        assert [h.record.key for h in hits] == ["trucks/1.jpg"] and hits[0].score == 91.5
        assert rest(url, "HEAD", f"/{legacy}")[0] == 200  # the source is left alone
    finally:
        rest(url, "DELETE", f"/{legacy}")


def test_a_later_migration_is_applied_to_an_existing_index_once(
    server_url, opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release that adds a field appends a migration: an index made before gets it in place
    when opened (nothing copied), its ``_meta`` records it, and it is not applied again."""
    from pixdex.indexes.migrations import Migrations
    from pixdex.integrations.elastic import mapping

    scheme, url = server_url
    index = open_index(opened, scheme, url)
    assert index.upsert([record(1, ("Dog", 90.0))]) == []
    later = Migrations("Elasticsearch/OpenSearch")
    for step in mapping.MIGRATIONS:
        later(step.apply)
    calls: list[str] = []

    @later
    def m002_example(opened_index: ElasticIndex, concrete: str) -> None:
        calls.append(concrete)
        body = {"properties": {"pixdex_example": {"type": "keyword"}}}
        opened_index.conn.ok("PUT", f"/{concrete}/_mapping", "adding a field", body=body)

    monkeypatch.setattr(mapping, "MIGRATIONS", later)
    again = open_index(opened, scheme, url, name=index.name)
    (concrete,) = again.concrete
    open_index(opened, scheme, url, name=index.name)
    assert calls == [concrete]
    _, body = rest(url, "GET", f"/{concrete}/_mapping")
    found = body[concrete]["mappings"]
    assert found["properties"]["pixdex_example"] == {"type": "keyword"}
    assert found["_meta"]["pixdex"]["migrations"] == ["m001_initial", "m002_example"]
    assert again.facet_floors == frozenset(mapping.FACET_FLOORS)  # the rest of _meta kept
    assert [h.record.key for h in again.search(SearchQuery(labels=["dog"])).hits] == [record(1).key]


def test_an_index_of_a_pre_release_pixdex_is_refused_and_copied_by_reindex_from(
    server_url, opened
) -> None:
    """Before the first release an index's ``_meta`` held a ``schema`` number, no migrations:
    it is refused with one line that says how to copy it, and that copy works."""
    from typer.testing import CliRunner

    from pixdex.cli import app

    scheme, url = server_url
    name = f"pixdex-t-{uuid.uuid4().hex[:10]}"
    old = f"{name}-pixdex-20240101000000000000"
    mapping = {"_meta": {"pixdex": {"schema": 4}}, "properties": {"Labels": {"type": "nested"}}}
    status, body = rest(
        url, "PUT", f"/{old}", {"mappings": mapping, "aliases": {name: {"is_write_index": True}}}
    )
    assert status == 200, body
    copy = f"{name}-copy"
    try:
        for i, label in enumerate(("Dog", "Truck")):
            doc = record(i, (label, 90.0)).to_json()
            assert rest(url, "PUT", f"/{old}/_doc/{i}?refresh=true", doc)[0] == 201
        with pytest.raises(IndexUnavailable, match="pre-release pixdex") as info:
            ElasticIndex.from_url(f"{scheme}+{url}/{name}")
        assert f"pixdex reindex --index <new index URL> --from {name}" in str(info.value)
        result = CliRunner().invoke(
            app,
            ["reindex", "--index", f"{scheme}+{url}/{copy}", "--from", name],
            catch_exceptions=False,
            env={"PIXDEX_ELASTIC__REFRESH": "true"},
        )
        assert result.exit_code == 0, result.output
        assert "copied 2 record(s)" in result.stderr
        index = open_index(opened, scheme, url, name=copy)  # dropped afterwards
        assert [h.record.key for h in index.search(SearchQuery(text="dog")).hits] == [record(0).key]
        assert index.check().clean
    finally:
        rest(url, "DELETE", f"/{old}")


def test_sigv4_signature_matches_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """The headers opensearch-py sends (captured by a local server, no AWS) carry the signature
    botocore's own SigV4Auth computes for the same request, credentials and time."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    fixed = dt.datetime(2024, 5, 1, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    captured: list[tuple[str, str, dict[str, str], bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            captured.append((self.command, self.path, dict(self.headers.items()), body))
            payload = b'{"nodes": {}}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = _answer  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with pytest.raises(IndexUnavailable):  # the capture server is no real cluster
            ElasticIndex.from_url(
                f"opensearch+http://127.0.0.1:{port}/photos",
                load_settings(elastic={"aws_region": "eu-west-1", "aws_service": "es"}),
            )
    finally:
        server.shutdown()
        server.server_close()
    assert captured
    method, path, headers, body = captured[0]
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240501/eu-west-1/es/aws4_request"
    )
    assert headers["X-Amz-Date"] == "20240501T120000Z"
    assert headers["X-Amz-Security-Token"] == "session-token"
    # botocore signs the same request (everything but the signature headers) independently
    signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
    unsigned = {
        k: v
        for k, v in headers.items()
        if k.lower() in signed and k.lower() not in ("x-amz-date", "x-amz-security-token")
    }
    request = AWSRequest(
        method=method, url=f"http://127.0.0.1:{port}{path}", data=body or None, headers=unsigned
    )
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    botocore.auth.SigV4Auth(creds, "es", "eu-west-1").add_auth(request)
    assert headers["Authorization"] == request.headers["Authorization"]
    # and a different secret gives a different signature: the comparison can fail
    wrong = AWSRequest(
        method=method, url=f"http://127.0.0.1:{port}{path}", data=body or None, headers=unsigned
    )
    botocore.auth.SigV4Auth(
        Credentials("AKIDEXAMPLE", "other", "session-token"), "es", "eu-west-1"
    ).add_auth(wrong)
    assert headers["Authorization"] != wrong.headers["Authorization"]


# --- every write whole or absent, and pixdex check ----------------------------------------------


def _docs(index: ElasticIndex, keys: list[str]) -> dict[str, dict[str, Any] | None]:
    return {k: (r.to_json() if (r := index.get("photos", k)) else None) for k in keys}


def test_a_bulk_item_refused_or_an_answer_lost_leaves_every_record_whole(
    server_url, opened, proxy
) -> None:
    """Each item of a bulk write refused in turn, then a bulk whose answer never comes: every
    record is its old or its new version, exactly the refused ones are reported, and label,
    free-text and facet searches and ``check`` agree with what is stored."""
    from _faults import agreement

    scheme, url = server_url
    index = open_index(opened, scheme, proxy.url, retries=0, backoff=0.01)
    old = [record(i, ("Truck", 90.0)) for i in range(4)]
    new = [record(i, ("Bus", 80.0), ("Person", 70.0)) for i in range(4)]
    keys = [r.key for r in old]
    terms = ["truck", "vehicle", "bus", "person"]
    for refused in range(len(new)):
        assert index.upsert(old) == []
        proxy.fail_items = {refused}
        errors = index.upsert(new)
        assert [e.key for e in errors] == [keys[refused]]
        assert "injected" in errors[0].reason
        stored = _docs(index, keys)
        assert stored == {
            r.key: (o if i == refused else r).to_json()
            for i, (r, o) in enumerate(zip(new, old, strict=True))
        }
        agreement(index, list(stored.values()), terms)
    # the answer lost after the server wrote everything: reported, each record whole (new)
    proxy.lose_answer = True
    errors = index.upsert(old)
    assert {e.key for e in errors} == set(keys)
    agreement(index, list(_docs(index, keys).values()), terms)
    assert index.upsert(old) == []  # the re-run
    agreement(index, [r.to_json() for r in old], terms)


def test_an_object_whose_write_fails_stays_in_the_failure_list(server_url, opened, proxy) -> None:
    from pixdex.records import Failure

    scheme, url = server_url
    index = open_index(opened, scheme, proxy.url, retries=0)
    earlier = record(7)
    index.record_failures([Failure(bucket="photos", key=earlier.key, reason="truncated")])
    proxy.fail_items = {0}
    assert len(index.upsert([earlier])) == 1
    assert [f.key for f in index.failures()] == [earlier.key]
    assert index.upsert([earlier]) == []
    assert index.failures() == []


_SLOW_REINDEX = """
import sys, time
from pixdex.integrations.elastic import ElasticIndex
index = ElasticIndex.from_url(sys.argv[1])
def slow(record):
    print("copying", flush=True)
    time.sleep(0.2)
    return record
index.reindex(transform=slow)
"""


def test_a_reindex_killed_half_way_is_found_and_mended_by_check(server_url, opened) -> None:
    """SIGKILL during ``reindex`` leaves the old index blocked for writes and an unfinished copy
    beside it; ``check`` names both, ``--repair`` lifts the block and deletes the copy."""
    import os
    import signal
    import subprocess
    import sys

    scheme, url = server_url
    index = open_index(opened, scheme, url)
    assert index.upsert([record(i) for i in range(30)]) == []
    assert index.check().clean
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    env["PIXDEX_ELASTIC__BATCH_DOCS"] = "5"
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_REINDEX, f"{scheme}+{url}/{index.name}"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    for _ in range(8):  # well into the copy
        assert child.stdout.readline().startswith("copying")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert index.upsert([record(99)]) != []  # writes refused: the old index is blocked
    report = index.check()
    assert len(report.problems) == 2, report.problems
    assert "are blocked" in report.problems[0] and "unfinished copy" in report.problems[1]
    assert index.check(repair=True).problems == report.problems
    assert index.check().clean
    assert index.upsert([record(99)]) == []
    assert index.stats().records == 31


def test_check_finds_and_mends_documents_that_disagree(server_url, opened) -> None:
    from _faults import agreement

    scheme, url = server_url
    index = open_index(opened, scheme, url)
    records = [record(i, ("Truck", 90.0)) for i in range(3)]
    assert index.upsert(records) == []
    concrete = index.concrete[0]
    # another tool dropped the search fields of one document and wrote a non-record
    doc = records[0].to_json()
    rest(url, "PUT", f"/{concrete}/_doc/{records[0].id}?refresh=true", doc)
    junk = {"bucket": "photos", "key": "x.jpg"}
    junk["Labels"] = [{"Name": "Cat", "Confidence": 50, "Instances": "not boxes"}]
    rest(url, "PUT", f"/{concrete}/_doc/junk?refresh=true", junk)
    report = index.check()
    assert len(report.problems) == 2, report.problems
    assert "search fields disagree" in report.problems[0] or "not a record" in report.problems[0]
    mended = index.check(repair=True)
    assert (mended.repaired, mended.reanalyze) == (1, 1)
    assert index.check().clean
    agreement(index, [r.to_json() for r in records], ["truck", "vehicle"])
    assert [f.key for f in index.failures()] == ["x.jpg"]
