"""Elasticsearch (8.x/9.x) and OpenSearch (2.x/3.x) indexes, with the SQLite index's semantics.

URLs: ``es+http(s)://[user:pass@]host:port/name`` and ``opensearch+http(s)://…/name``, with
optional query parameters (``refresh=true|wait_for``, ``shards``, ``replicas``, ``batch_docs``,
``batch_mb``, ``retries``, ``backoff``, ``timeout``, ``verify_certs=false``, ``ca_certs=PATH``,
``api_key``, ``aws_region``, ``aws_service``, ``sigv4=false``); auth defaults come from Settings.

Layout (see docs/elasticsearch.md):
- ``name`` is an alias; documents live in ``name-pixdex-<UTC timestamp>``, created from the
  index template ``pixdex-<name>`` (explicit mapping). ``reindex`` builds a new concrete index and
  swaps the alias atomically, so searches never stop.
- failures live in the sibling index ``name-failures``.
- documents are the records as the original pattern stored them (``Labels``, ``timestamp``,
  ``bucket``, ``key``, ``imported-by``…) plus three search helpers, stripped again on read:
  ``Labels[].pixdex_terms`` (lower-cased name/parents/aliases, for label queries),
  ``Labels[].pixdex_words`` and ``pixdex_path_words`` (words after SQLite FTS5's own
  ``porter unicode61 remove_diacritics 2`` tokenizer, for free text). Tokenizing in Python with
  SQLite's tokenizer gives the same words as the SQLite backend and needs no server plugin (the
  minimal distributions have no stemmers).

Ranking matches the SQLite index: a hit's rank is min over query parts of the best matching
label's confidence (0 for a path-only text match). Elasticsearch cannot take a *min* of query
scores, so each label is scored with a linear decay ``d(c) = 1 - c/200`` (decreasing in c): a
part's score is the nested *min* of d (= d of the best label), the hit's score is the ``dis_max``
(*max*) over parts (= d of the worst part), and hits are sorted by score ascending, then key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from pixdex.indexes.base import (
    Hit,
    Indexed,
    IndexStats,
    IndexUnavailable,
    SearchQuery,
    SearchResult,
    WriteError,
    date_range,
)
from pixdex.records import Failure, Record, analysis_version, record_id

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)

SCHEMA = 1
_TOKEN = re.compile(r"\w+", re.UNICODE)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HELPERS = ("pixdex_terms", "pixdex_words")
_RETRY_STATUS = {429, 502, 503, 504, 500}
_SCROLL = "2m"


# --- tokenizing like the SQLite index -------------------------------------------------------------
class _Words:
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


def _search_doc(record: Record) -> dict[str, Any]:
    """The stored document: the record's JSON plus the search helper fields."""
    doc = record.to_json()
    labels = doc.get("Labels", [])
    texts = [record.key]
    for label in record.Labels:
        texts.extend(label.terms())
    words = _Words.many(texts)
    doc["pixdex_path_words"] = sorted(set(words[0]))
    location = _location(record.exif)
    if location is not None:
        doc["pixdex_location"] = location
    i = 1
    for label, out in zip(record.Labels, labels, strict=True):
        terms = label.terms()
        out["pixdex_terms"] = sorted({t.lower() for t in terms})
        out["pixdex_words"] = sorted({w for ws in words[i : i + len(terms)] for w in ws})
        i += len(terms)
    return doc


def _location(exif: dict[str, Any] | None) -> dict[str, float] | None:
    """exif.GPS as a geo_point ({"lat", "lon"} only): the EXIF altitude the analyzer adds would
    make the object a malformed geo_point, silently not indexed."""
    gps = (exif or {}).get("GPS")
    if not isinstance(gps, dict):
        return None
    try:
        lat, lon = float(gps["lat"]), float(gps["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return {"lat": lat, "lon": lon}
    return None


def _record(source: dict[str, Any]) -> Record:
    source = dict(source)
    source.pop("pixdex_path_words", None)
    source.pop("pixdex_location", None)
    labels = []
    for label in source.get("Labels") or []:
        if isinstance(label, dict):
            label = {k: v for k, v in label.items() if k not in _HELPERS}
        labels.append(label)
    if "Labels" in source:
        source["Labels"] = labels
    return Record.model_validate(source)


# --- mapping ----------------------------------------------------------------------------------
def _mapping() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    named = {"properties": {"Name": keyword}}
    return {
        "_meta": {"pixdex": {"schema": SCHEMA}},
        "dynamic": True,
        "properties": {
            "Labels": {
                "type": "nested",
                "include_in_root": True,  # `Labels.Name:Truck` without a nested clause
                "properties": {
                    "Name": {
                        "type": "keyword",
                        "fields": {"text": {"type": "text"}, "keyword": keyword},
                    },
                    "Confidence": {"type": "float"},
                    "Parents": named,
                    "Aliases": named,
                    "Categories": named,
                    "Instances": {"type": "object", "enabled": False},
                    "pixdex_terms": keyword,
                    "pixdex_words": keyword,
                },
            },
            "timestamp": {
                "type": "date",
                "format": "strict_date_optional_time||epoch_millis",
                "ignore_malformed": True,
                # filters compare the original strings, like the SQLite index (microseconds)
                "fields": {"raw": keyword},
            },
            "bucket": keyword,
            "key": {"type": "keyword", "fields": {"text": {"type": "text"}}},
            "imported-by": keyword,
            "id": keyword,
            "uri": keyword,
            "size": {"type": "long"},
            "fingerprint": keyword,
            "content_sha256": keyword,
            "etag": keyword,
            "version_id": keyword,
            "last_modified": keyword,
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "format": keyword,
            "LabelModelVersion": keyword,
            # free-form dicts: kept in _source, not mapped (no per-document mapping conflicts)
            "analyzers": {"type": "object", "dynamic": False},
            "ImageProperties": {"type": "object", "dynamic": False},
            "exif": {
                "type": "object",
                "dynamic": False,
                "properties": {"GPS": {"type": "geo_point", "ignore_malformed": True}},
            },
            "pixdex_path_words": keyword,
            # exif.GPS lat/lon as a geo_point (distance and bounding-box queries, map dashboards)
            "pixdex_location": {"type": "geo_point"},
        },
    }


def _failure_mapping() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    return {
        "_meta": {"pixdex": {"schema": SCHEMA, "kind": "failures"}},
        "dynamic": False,
        "properties": {
            "bucket": keyword,
            "key": keyword,
            "uri": keyword,
            "reason": {
                "type": "text",
                "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
            },
            "fingerprint": keyword,
            "timestamp": keyword,
        },
    }


# --- transport --------------------------------------------------------------------------------
class _Down(Exception):
    """No answer from the server (connection refused/reset, timeout)."""


@dataclass(slots=True)
class _Options:
    refresh: str = "false"
    shards: int = 1
    replicas: int | None = None
    batch_docs: int = 500
    batch_bytes: int = 5 * 1024 * 1024
    retries: int = 5
    backoff: float = 0.5
    backoff_cap: float = 30.0
    timeout: float = 30.0


class _Http:
    """One REST call shape over either official client, so the rest of the code is shared."""

    def __init__(self, client: Any, flavor: str) -> None:
        self.client = client
        self.flavor = flavor
        self.compat = 8  # Elasticsearch REST compatibility version, set from the server's major

    def _headers(self, ndjson: bool) -> dict[str, str]:
        if self.flavor == "es":
            kind = "x-ndjson" if ndjson else "json"
            compat = f"compatible-with={self.compat}"
            return {
                "accept": f"application/vnd.elasticsearch+json; {compat}",
                "content-type": f"application/vnd.elasticsearch+{kind}; {compat}",
            }
        return {"content-type": "application/x-ndjson" if ndjson else "application/json"}

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ndjson: bool = False,
    ) -> tuple[int, Any]:
        """(status, parsed body) for any HTTP status; ``_Down`` when the server did not answer."""
        headers = self._headers(ndjson)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if self.flavor == "es":
            import elastic_transport
            from elasticsearch import ApiError

            try:
                resp = self.client.perform_request(
                    method, path, params=params or None, headers=headers, body=body
                )
                return resp.meta.status, resp.body
            except ApiError as exc:
                return exc.meta.status, exc.body
            except elastic_transport.TransportError as exc:
                raise _Down(_transport_reason(exc)) from exc
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError as OsTransportError

        try:
            body_out = self.client.transport.perform_request(
                method, path, params=params, body=body, headers=headers
            )
            if method == "HEAD":
                return (200 if body_out else 404), None
            return 200, body_out
        except OsConnectionError as exc:
            raise _Down(_tls_hint(str(exc.info or exc.error))) from exc
        except OsTransportError as exc:
            if not isinstance(exc.status_code, int):
                raise _Down(str(exc)) from exc
            # info is the parsed JSON body; a plain-text answer (the security plugin's
            # "Unauthorized") is only in error
            return exc.status_code, exc.info if exc.info is not None else exc.error


def _transport_reason(exc: Exception) -> str:
    """elastic-transport's error with its cause: the transport drops ``errors`` when it does not
    retry, leaving just "TLS error" or "Connection error"; the cause is still in ``message``."""
    text = str(exc)
    message = str(getattr(exc, "message", "") or "")
    if message and message not in text:
        text = f"{text}: {message}"
    return _tls_hint(text)


def _tls_hint(text: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        text += " (give the CA bundle with es_ca_certs / ?ca_certs=PATH)"
    return text


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            root = (error.get("root_cause") or [error])[0]
            return f"{root.get('type', 'error')}: {root.get('reason', error)}"
        return str(error)
    return str(body)[:500]


def _public_url_safe(url: str) -> str:
    """As _public_url, for URLs whose port may not parse: credentials cut textually."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


def _public_url(url: str) -> str:
    """The URL without a password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _chunks(
    lines: list[tuple[Any, bytes]], docs: int, size: int
) -> Iterator[list[tuple[Any, bytes]]]:
    chunk: list[tuple[Any, bytes]] = []
    total = 0
    for item in lines:
        if chunk and (len(chunk) >= docs or total + len(item[1]) > size):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += len(item[1])
    if chunk:
        yield chunk


# --- the index ----------------------------------------------------------------------------------
@dataclass(slots=True)
class ReindexResult:
    old: list[str]
    new: str
    copied: int
    skipped: int
    errors: list[WriteError]


class ElasticIndex:
    """An index on an Elasticsearch or OpenSearch cluster (see the module docstring)."""

    def __init__(
        self, http: _Http, name: str, location: str, options: _Options, *, create: bool = True
    ) -> None:
        self.location = location
        self.name = name
        self.failures_index = f"{name}-failures"
        self.template = f"pixdex-{name}"
        self._http = http
        self._opt = options
        self._flavor_name = "Elasticsearch" if http.flavor == "es" else "OpenSearch"
        self._ensure(create)

    # --- opening --------------------------------------------------------------------------------
    @classmethod
    def from_url(
        cls, url: str, settings: Settings | None = None, *, create: bool = True
    ) -> ElasticIndex:
        if settings is None:
            from pixdex.config import Settings

            settings = Settings()
        flavor_scheme, _, rest = url.partition("+")
        if flavor_scheme not in ("es", "opensearch") or not rest.startswith(
            ("http://", "https://")
        ):
            raise IndexUnavailable(
                f"unknown index URL {url!r}: use es+http(s)://host:port/name "
                "or opensearch+http(s)://host:port/name"
            )
        flavor = "es" if flavor_scheme == "es" else "opensearch"
        parts = urlsplit(rest)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        name = unquote(parts.path.strip("/"))
        if not name or "/" in name or not _NAME.match(name):
            raise IndexUnavailable(
                f"index URL {_public_url_safe(rest)!r} needs an index name after the host:"
                " lower-case letters, digits, '.', '_' or '-' (e.g. es+http://127.0.0.1:9200/photos)"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 9200)
            options = _Options(
                refresh=query.get("refresh", "false"),
                shards=int(query.get("shards", 1)),
                replicas=int(query["replicas"]) if "replicas" in query else None,
                batch_docs=int(query.get("batch_docs", 500)),
                batch_bytes=int(float(query.get("batch_mb", 5)) * 1024 * 1024),
                retries=int(query.get("retries", 5)),
                backoff=float(query.get("backoff", 0.5)),
                timeout=float(query.get("timeout", 30)),
            )
        except ValueError as exc:  # a port or an option that is not a number
            raise IndexUnavailable(f"bad index URL {_public_url_safe(rest)!r}: {exc}") from None
        if options.refresh not in ("true", "false", "wait_for"):
            raise IndexUnavailable(
                f"refresh must be true, false or wait_for, not {options.refresh!r}"
            )
        host_url = f"{parts.scheme}://{parts.hostname}:{port}"
        username = unquote(parts.username) if parts.username else settings.es_username
        password = unquote(parts.password) if parts.password else settings.es_password
        api_key = query.get("api_key", settings.es_api_key)
        ca_certs = query.get("ca_certs", settings.es_ca_certs)
        verify = query.get("verify_certs", str(settings.es_verify_certs)).lower() not in (
            "false",
            "0",
            "no",
        )
        location = f"{flavor_scheme}+{_public_url(rest)}"
        if flavor == "es":
            client = _es_client(host_url, username, password, api_key, ca_certs, verify, options)
        else:
            region = query.get("aws_region", settings.aws_region)
            sign = query.get("sigv4", "true").lower() not in ("false", "0", "no")
            service = query.get("aws_service", settings.aws_service)
            client = _os_client(
                host_url,
                username,
                password,
                api_key,
                ca_certs,
                verify,
                options,
                (region, service) if region and sign else None,
            )
        return cls(_Http(client, flavor), name, location, options, create=create)

    def _call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """One call, retried on 429/5xx/no answer; IndexUnavailable naming the URL when down."""
        attempt = 0
        while True:
            try:
                status, body = self._http.call(method, path, **kw)
            except _Down as exc:
                if attempt >= self._opt.retries:
                    raise IndexUnavailable(
                        f"{self._flavor_name} at {self.location} is unreachable: {exc}"
                    ) from exc
            else:
                if status not in _RETRY_STATUS or attempt >= self._opt.retries:
                    return status, body
            time.sleep(min(self._opt.backoff * 2**attempt, self._opt.backoff_cap))
            attempt += 1

    def _ok(self, method: str, path: str, what: str, **kw: Any) -> Any:
        status, body = self._call(method, path, **kw)
        if status >= 300:
            raise IndexUnavailable(f"{what} failed on {self.location}: {_reason(body)}")
        return body

    def _ensure(self, create: bool) -> None:
        try:
            status, body = self._http.call(
                "GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"}
            )
        except _Down as exc:
            raise IndexUnavailable(
                f"cannot reach {self._flavor_name} at {self.location}: {exc}"
            ) from exc
        if status >= 300:
            hint = {
                401: " (credentials refused: check the user and password, in the URL or"
                " es_username/es_password, or the API key, es_api_key)",
                403: " (these credentials may not read the cluster's node versions)",
            }.get(status, "")
            raise IndexUnavailable(
                f"{self._flavor_name} at {self.location} answered {status}{hint}: {_reason(body)}"
            )
        versions = [n.get("version", "") for n in (body or {}).get("nodes", {}).values()]
        self.server_version = min(versions) if versions else "?"
        if self._http.flavor == "es" and versions:
            self._http.compat = max(7, min(int(v.split(".")[0]) for v in versions))
        status, body = self._call("GET", f"/_alias/{self.name}")
        if status == 200 and body:
            self._check(sorted(body))
        else:
            exists, _ = self._call("HEAD", f"/{self.name}")
            if exists == 200:
                raise IndexUnavailable(self._conflict_message())
            if not create:
                raise IndexUnavailable(f"no pixdex index {self.name!r} at {self.location}")
            self._put_template()
            concrete = self._new_index_name()
            status, body = self._call(
                "PUT", f"/{concrete}", body={"aliases": {self.name: {"is_write_index": True}}}
            )
            if (
                status >= 300
                and "already_exists" not in _reason(body)
                and "alias" not in _reason(body)
            ):
                raise IndexUnavailable(
                    f"cannot create index {concrete} on {self.location}: {_reason(body)}"
                )
            status, body = self._call("GET", f"/_alias/{self.name}")
            if status != 200:
                raise IndexUnavailable(
                    f"cannot create alias {self.name} on {self.location}: {_reason(body)}"
                )
            self._check(sorted(body))
        self._ensure_failures()

    def _conflict_message(self) -> str:
        status, body = self._call("GET", f"/{self.name}/_mapping")
        labels = "?"
        if status == 200 and body:
            mapping = next(iter(body.values())).get("mappings", {})
            labels = mapping.get("properties", {}).get("Labels", {}).get("type", "object")
        return (
            f"{self.location}: index {self.name!r} already exists and was not created by pixdex"
            f" (Labels mapped as {labels!r}, not pixdex's nested mapping); pixdex will not change"
            f" it. Use another index name, and copy its documents with"
            f" `pixdex reindex --from {self.name}`."
        )

    def _check(self, concrete: list[str]) -> None:
        status, body = self._call("GET", f"/{','.join(concrete)}/_mapping")
        if status != 200:
            raise IndexUnavailable(
                f"cannot read the mapping of {self.name} on {self.location}: {_reason(body)}"
            )
        for index, value in body.items():
            mapping = value.get("mappings", {})
            meta = (mapping.get("_meta") or {}).get("pixdex") or {}
            labels = mapping.get("properties", {}).get("Labels", {}).get("type", "object")
            if not meta or labels != "nested":
                raise IndexUnavailable(
                    f"{self.location}: index {index} behind {self.name!r} has a mapping pixdex did"
                    f" not make (Labels mapped as {labels!r}); pixdex will not change it. Use"
                    " another index name, or copy it with `pixdex reindex`."
                )
            if meta.get("schema") != SCHEMA:
                raise IndexUnavailable(
                    f"{self.location}: index {index} has pixdex schema {meta.get('schema')},"
                    f" this pixdex needs {SCHEMA}: run `pixdex reindex`"
                )
        self.concrete = concrete

    def _ensure_failures(self) -> None:
        status, _ = self._call("HEAD", f"/{self.failures_index}")
        if status == 200:
            return
        status, body = self._call(
            "PUT",
            f"/{self.failures_index}",
            body={"settings": self._settings(), "mappings": _failure_mapping()},
        )
        if status >= 300 and "already_exists" not in _reason(body):
            raise IndexUnavailable(
                f"cannot create {self.failures_index} on {self.location}: {_reason(body)}"
            )

    def _settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "number_of_shards": self._opt.shards,
            "max_result_window": 100_000,
        }
        if self._opt.replicas is not None:
            settings["number_of_replicas"] = self._opt.replicas
        else:
            settings["auto_expand_replicas"] = "0-1"
        return settings

    def _put_template(self) -> None:
        self._ok(
            "PUT",
            f"/_index_template/{self.template}",
            "creating the index template",
            body={
                "index_patterns": [f"{self.name}-pixdex-*"],
                "priority": 500,
                "_meta": {"pixdex": {"schema": SCHEMA}},
                "template": {"settings": {"index": self._settings()}, "mappings": _mapping()},
            },
        )

    def _new_index_name(self) -> str:
        return f"{self.name}-pixdex-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"

    # --- writes ---------------------------------------------------------------------------------
    def _bulk(
        self, items: list[tuple[Any, bytes]], refresh: str | None = None
    ) -> tuple[list[tuple[Any, dict[str, Any]]], list[tuple[Any, str]]]:
        """Send (tag, action lines) in batches; returns (tag, item result) for answered actions
        and (tag, reason) for actions given up on (after retries with backoff on 429/5xx)."""
        done: list[tuple[Any, dict[str, Any]]] = []
        failed: list[tuple[Any, str]] = []
        down: str | None = None
        for chunk in _chunks(items, self._opt.batch_docs, self._opt.batch_bytes):
            if down is not None:
                failed += [(tag, down) for tag, _ in chunk]
                continue
            pending = chunk
            attempt = 0
            while pending:
                body = b"".join(line for _, line in pending)
                reason: str | None = None
                try:
                    status, resp = self._http.call(
                        "POST",
                        "/_bulk",
                        params={"refresh": refresh or self._opt.refresh},
                        body=body,
                        ndjson=True,
                    )
                except _Down as exc:
                    status, resp, reason = 0, None, f"{self._flavor_name} unreachable: {exc}"
                retry: list[tuple[Any, bytes]] = []
                if status == 200 and isinstance(resp, dict):
                    for (tag, line), result in zip(pending, resp.get("items", []), strict=False):
                        outcome = next(iter(result.values()))
                        if outcome.get("status") in _RETRY_STATUS:
                            retry.append((tag, line))
                            reason = _reason({"error": outcome.get("error", outcome)})
                        else:
                            done.append((tag, outcome))
                else:
                    retry = pending
                    reason = reason or f"bulk request answered {status}: {_reason(resp)}"
                if not retry:
                    break
                # A refusal of the whole request (401/403 credentials, 400, 413…) will not go
                # away with a backoff: give up on it now instead of waiting out the retries.
                final = status != 0 and status != 200 and status not in _RETRY_STATUS
                if final or attempt >= self._opt.retries:
                    failed += [
                        (tag, f"{reason} (after {attempt + 1} attempts)") for tag, _ in retry
                    ]
                    # no answer, or credentials refused: the next batches would fare the same
                    if status in (0, 401, 403):
                        down = f"not sent: {reason}"
                    break
                time.sleep(min(self._opt.backoff * 2**attempt, self._opt.backoff_cap))
                attempt += 1
                pending = retry
        return done, failed

    @staticmethod
    def _line(action: str, index: str, doc_id: str, doc: dict[str, Any] | None = None) -> bytes:
        head = json.dumps({action: {"_index": index, "_id": doc_id}}, separators=(",", ":"))
        if doc is None:
            return (head + "\n").encode()
        return (
            head + "\n" + json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"
        ).encode()

    def upsert(self, records: Sequence[Record]) -> list[WriteError]:
        return self._write(self.name, records)

    def _write(
        self,
        target: str,
        records: Sequence[Record],
        clear_failures: bool = True,
        refresh: str | None = None,
    ) -> list[WriteError]:
        items: list[tuple[Any, bytes]] = []
        errors: list[WriteError] = []
        for record in records:
            try:
                line = self._line("index", target, record.id, _search_doc(record))
                if clear_failures:
                    line += self._line("delete", self.failures_index, record.id)
            except (TypeError, ValueError) as exc:
                errors.append(WriteError(record.id, record.key, f"cannot serialize: {exc}"))
                continue
            items.append((record, line))
        done, failed = self._bulk(items, refresh)
        # One tagged item holds two actions (index + clear failure); results come per action.
        answered: dict[str, list[dict[str, Any]]] = {}
        for record, outcome in done:
            answered.setdefault(record.id, []).append(outcome)
        for record, reason in failed:
            errors.append(WriteError(record.id, record.key, reason))
        for record in records:
            for outcome in answered.get(record.id, []):
                if (
                    outcome.get("_index", "").endswith("-failures")
                    and target != self.failures_index
                ):
                    continue  # clearing a failure: 404 when there was none
                if outcome.get("status", 500) >= 300:
                    errors.append(
                        WriteError(record.id, record.key, _reason({"error": outcome.get("error")}))
                    )
        return errors

    def delete(self, bucket: str, keys: Iterable[str]) -> int:
        ids = [record_id(bucket, key) for key in keys]
        if not ids:
            return 0
        items = [(("record", i), self._line("delete", self.name, i)) for i in ids] + [
            (("failure", i), self._line("delete", self.failures_index, i)) for i in ids
        ]
        done, failed = self._bulk(items)
        if failed:
            raise IndexUnavailable(f"delete failed on {self.location}: {failed[0][1]}")
        return sum(
            1
            for (kind, _), outcome in done
            if kind == "record" and outcome.get("result") == "deleted"
        )

    def record_failures(self, failures: Sequence[Failure]) -> None:
        items = [
            (f, self._line("index", self.failures_index, record_id(f.bucket, f.key), f.to_json()))
            for f in failures
        ]
        done, failed = self._bulk(items)
        bad = [reason for _, reason in failed] + [
            _reason({"error": o.get("error")}) for _, o in done if o.get("status", 500) >= 300
        ]
        if bad:
            raise IndexUnavailable(f"recording {len(bad)} failure(s) on {self.location}: {bad[0]}")

    # --- reads ----------------------------------------------------------------------------------
    def get_by_id(self, record_id: str) -> Record | None:
        body = self._search(
            {
                "query": {"ids": {"values": [record_id]}},
                "size": 1,
                "_source": {"excludes": ["pixdex_*"]},
            }
        )
        hits = body["hits"]["hits"]
        return _record(hits[0]["_source"]) if hits else None

    def get(self, bucket: str, key: str) -> Record | None:
        record = self.get_by_id(record_id(bucket, key))
        if record is None or record.bucket != bucket or record.key != key:
            return None
        return record

    def _search(
        self, body: dict[str, Any], index: str | None = None, **params: Any
    ) -> dict[str, Any]:
        status, resp = self._call(
            "POST", f"/{index or self.name}/_search", params=params or None, body=body
        )
        if status >= 300:
            raise IndexUnavailable(f"search failed on {self.location}: {_reason(resp)}")
        return resp

    def _scan(
        self, index: str, query: dict[str, Any], source: Any = True, size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every matching hit, via the scroll API (in ES 8/9 and OpenSearch alike)."""
        resp = self._search(
            {"query": query, "size": size, "sort": ["_doc"], "_source": source},
            index,
            scroll=_SCROLL,
        )
        scroll_id = resp.get("_scroll_id")
        try:
            while resp["hits"]["hits"]:
                yield from resp["hits"]["hits"]
                resp = self._ok(
                    "POST",
                    "/_search/scroll",
                    "scroll",
                    body={"scroll": _SCROLL, "scroll_id": scroll_id},
                )
                scroll_id = resp.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                with contextlib.suppress(IndexUnavailable, _Down):
                    self._http.call("DELETE", "/_search/scroll", body={"scroll_id": [scroll_id]})

    def known(self, bucket: str, prefix: str = "") -> dict[str, Indexed]:
        filters: list[dict[str, Any]] = [{"term": {"bucket": bucket}}]
        if prefix:
            filters.append({"prefix": {"key": prefix}})
        out: dict[str, Indexed] = {}
        for hit in self._scan(
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
        query: dict[str, Any] = (
            {"term": {"bucket": bucket}} if bucket is not None else {"match_all": {}}
        )
        body = self._search(
            {
                "query": query,
                "size": min(limit, 10_000),
                "sort": [{"bucket": "asc"}, {"key": "asc"}],
            },
            self.failures_index,
        )
        return [Failure.model_validate(h["_source"]) for h in body["hits"]["hits"]]

    def _parts(
        self, query: SearchQuery
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Callable[[Record], float | None]]]:
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
        scorers: list[Callable[[Record], float | None]] = []
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
        for words in _Words.many(tokens):
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

    def search(self, query: SearchQuery) -> SearchResult:
        filters, scoring, scorers = self._parts(query)
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
            body["aggs"] = {"facets": self._label_agg(query.facets, query.min_confidence)}
        resp = self._search(body)
        hits = []
        for hit in resp["hits"]["hits"]:
            record = _record(hit["_source"])
            scores = [s(record) for s in scorers]
            score = min((s or 0.0) for s in scores) if scores else 0.0
            hits.append(Hit(record, float(score)))
        facets = _label_buckets(resp.get("aggregations", {}).get("facets")) if query.facets else []
        return SearchResult(total=resp["hits"]["total"]["value"], hits=hits, facets=facets)

    @staticmethod
    def _label_agg(size: int, min_confidence: float = 0.0) -> dict[str, Any]:
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

    def stats(self) -> IndexStats:
        resp = self._search(
            {
                "size": 0,
                "track_total_hits": True,
                "aggs": {
                    "top": self._label_agg(20),
                    "distinct": {
                        "nested": {"path": "Labels"},
                        "aggs": {
                            "n": {
                                "cardinality": {
                                    "field": "Labels.Name",
                                    "precision_threshold": 40000,
                                }
                            }
                        },
                    },
                    "models": {
                        "terms": {"field": "LabelModelVersion", "missing": "", "size": 1000}
                    },
                },
            }
        )
        aggs = resp["aggregations"]
        failures = self._search({"size": 0, "track_total_hits": True}, self.failures_index)
        models = sorted(
            ((b["key"], b["doc_count"]) for b in aggs["models"]["buckets"]),
            key=lambda kv: (-kv[1], kv[0]),
        )
        return IndexStats(
            location=self.location,
            records=resp["hits"]["total"]["value"],
            failures=failures["hits"]["total"]["value"],
            labels=int(aggs["distinct"]["n"]["value"]),
            top_labels=_label_buckets(aggs["top"]),
            model_versions=models,
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def reindex(
        self,
        transform: Callable[[Record], Record | None] | None = None,
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
        status, body = self._call("GET", f"/_alias/{self.name}")
        old = sorted(body) if status == 200 and body else []
        src = source or self.name
        self._put_template()
        new = self._new_index_name()
        self._ok(
            "PUT",
            f"/{new}",
            "creating the new index",
            body={"settings": {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}},
        )
        blocked = [] if source else old
        try:
            for index in blocked:
                self._ok(
                    "PUT",
                    f"/{index}/_settings",
                    "blocking writes",
                    body={"index.blocks.write": True},
                )
            copied = skipped = 0
            errors: list[WriteError] = []
            batch: list[Record] = []
            for hit in self._scan(src, {"match_all": {}}, True, size=500):
                try:
                    record = _record(hit["_source"])
                except ValueError as exc:
                    errors.append(
                        WriteError(
                            hit["_id"], str(hit["_source"].get("key", "")), f"not a record: {exc}"
                        )
                    )
                    continue
                if transform is not None:
                    record = transform(record)
                if record is None:
                    skipped += 1
                    continue
                batch.append(record)
                if len(batch) >= self._opt.batch_docs:
                    errors += self._write(new, batch, clear_failures=False, refresh="false")
                    copied += len(batch)
                    batch = []
            if batch:
                errors += self._write(new, batch, clear_failures=False, refresh="false")
                copied += len(batch)
            if errors:
                raise IndexUnavailable(
                    f"reindex into {new} refused {len(errors)} record(s), first:"
                    f" {errors[0].reason}; the alias was not moved"
                )
            settings: dict[str, Any] = {"refresh_interval": None}
            settings.update(
                {"number_of_replicas": self._opt.replicas}
                if self._opt.replicas is not None
                else {"auto_expand_replicas": "0-1"}
            )
            self._ok("PUT", f"/{new}/_settings", "restoring settings", body={"index": settings})
            self._ok("POST", f"/{new}/_refresh", "refreshing the new index")
            actions: list[dict[str, Any]] = [
                {"remove": {"index": i, "alias": self.name}} for i in old
            ]
            actions.append({"add": {"index": new, "alias": self.name, "is_write_index": True}})
            self._ok("POST", "/_aliases", "swapping the alias", body={"actions": actions})
        except BaseException:
            for index in blocked:
                with contextlib.suppress(Exception):
                    self._call("PUT", f"/{index}/_settings", body={"index.blocks.write": None})
            with contextlib.suppress(Exception):
                self._call("DELETE", f"/{new}")
            raise
        if old and not keep_old:
            self._ok("DELETE", f"/{','.join(old)}", "deleting the old index")
        elif old:
            for index in blocked:
                self._call("PUT", f"/{index}/_settings", body={"index.blocks.write": None})
        self.concrete = [new]
        return ReindexResult(old=old, new=new, copied=copied, skipped=skipped, errors=[])

    def drop(self) -> None:
        """Delete everything this index created: its concrete indexes, failures, template."""
        names: set[str] = set()
        status, body = self._call("GET", f"/_alias/{self.name}")
        if status == 200 and body:
            names |= set(body)
        status, body = self._call(
            "GET",
            f"/{self.name}-pixdex-*/_settings",
            params={"filter_path": "*.settings.index.uuid"},
        )
        if status == 200 and body:
            names |= set(body)
        names.add(self.failures_index)
        for index in sorted(names):
            status, body = self._call("DELETE", f"/{index}")
            if status >= 300 and status != 404:
                raise IndexUnavailable(f"cannot delete {index} on {self.location}: {_reason(body)}")
        self._call("DELETE", f"/_index_template/{self.template}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.client.close()


def _text_score(record: Record, words: tuple[str, ...], min_conf: float) -> float | None:
    """Best confidence of a label whose words include all of ``words``; 0 for a path match."""
    best: float | None = None
    for label in record.Labels:
        if label.Confidence < min_conf or (best is not None and label.Confidence <= best):
            continue
        label_words = {w for ws in _Words.many(label.terms()) for w in ws}
        if all(w in label_words for w in words):
            best = label.Confidence
    if best is None and all(w in set(_Words.many([record.key])[0]) for w in words):
        return 0.0
    return best


def _label_buckets(agg: dict[str, Any] | None) -> list[tuple[str, int]]:
    if not agg:
        return []
    buckets = agg["confident"]["names"]["buckets"]
    return [(b["key"], int(b["records"]["doc_count"])) for b in buckets]


# --- clients --------------------------------------------------------------------------------------
def _es_client(
    host: str,
    username: str | None,
    password: str | None,
    api_key: str | None,
    ca_certs: str | None,
    verify: bool,
    options: _Options,
) -> Any:
    from elasticsearch import Elasticsearch

    kwargs: dict[str, Any] = {
        "request_timeout": options.timeout,
        "max_retries": 0,  # retries (with backoff, per bulk item) are ours
        "retry_on_timeout": False,
    }
    if username:
        kwargs["basic_auth"] = (username, password or "")
    if api_key:
        kwargs["api_key"] = api_key
    if host.startswith("https://"):
        kwargs["verify_certs"] = verify
        if ca_certs:
            kwargs["ca_certs"] = ca_certs
        if not verify:
            kwargs["ssl_show_warn"] = False
    return Elasticsearch(host, **kwargs)


def sigv4_auth(region: str, service: str, credentials: Any = None) -> Any:
    """opensearch-py's SigV4 signer with botocore's credential chain (env, profile, role…)."""
    from opensearchpy import AWSV4SignerAuth

    if credentials is None:
        import botocore.session

        credentials = botocore.session.Session().get_credentials()
    if credentials is None:
        raise IndexUnavailable(
            "SigV4 signing needs AWS credentials (environment, ~/.aws, or an instance/task role);"
            " none were found"
        )
    return AWSV4SignerAuth(credentials, region, service)


def _os_client(
    host: str,
    username: str | None,
    password: str | None,
    api_key: str | None,
    ca_certs: str | None,
    verify: bool,
    options: _Options,
    sigv4: tuple[str, str] | None,
) -> Any:
    from opensearchpy import OpenSearch, RequestsHttpConnection

    kwargs: dict[str, Any] = {
        "timeout": options.timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "http_compress": False,
    }
    if sigv4 is not None:
        kwargs["http_auth"] = sigv4_auth(*sigv4)
        kwargs["connection_class"] = RequestsHttpConnection
    elif username:
        kwargs["http_auth"] = (username, password or "")
    if api_key:
        kwargs["headers"] = {"authorization": f"ApiKey {api_key}"}
    if host.startswith("https://"):
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = verify
        if ca_certs:
            kwargs["ca_certs"] = ca_certs
        if not verify:
            kwargs["ssl_show_warn"] = False
            kwargs["ssl_assert_hostname"] = False
    return OpenSearch([host], **kwargs)
