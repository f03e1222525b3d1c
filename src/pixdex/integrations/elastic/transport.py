"""The HTTP layer under the Elasticsearch/OpenSearch index: one REST call shape over either
official client, retries with backoff, bulk batching, scrolling, and opening a connection from a
pixdex index URL (auth, TLS, SigV4).

Why not the clients' own helpers: they differ between ``elasticsearch`` and ``opensearch-py``, and
their retries are per request, not per bulk item; one small layer here gives both servers the same
retry, error and message behaviour.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from pixdex.config import env_name
from pixdex.errors import ConfigError, IndexUnavailable, Unavailable
from pixdex.integrations import require

if TYPE_CHECKING:
    from pixdex.config import Settings

RETRY_STATUS = {429, 502, 503, 504, 500}
SCROLL = "2m"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class Down(Unavailable):
    """No answer from the server (connection refused/reset, timeout)."""


@dataclass(slots=True)
class Options:
    """What tunes requests and new indexes (from the ``[elastic]`` settings)."""

    refresh: str = "false"
    shards: int = 1
    replicas: int | None = None
    batch_docs: int = 500
    batch_bytes: int = 5 * 1024 * 1024
    retries: int = 5
    backoff: float = 0.5
    backoff_cap: float = 30.0
    timeout: float = 30.0


class Http:
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
        """(status, parsed body) for any HTTP status; ``Down`` when the server did not answer."""
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
                raise Down(_transport_reason(exc)) from exc
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
            raise Down(_tls_hint(str(exc.info or exc.error))) from exc
        except OsTransportError as exc:
            if not isinstance(exc.status_code, int):
                raise Down(str(exc)) from exc
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


def reason(body: Any) -> str:
    """The server's reason for a refusal, in one line."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            root = (error.get("root_cause") or [error])[0]
            return f"{root.get('type', 'error')}: {root.get('reason', error)}"
        return str(error)
    return str(body)[:500]


def public_url(url: str) -> str:
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


def bulk_line(action: str, index: str, doc_id: str, doc: dict[str, Any] | None = None) -> bytes:
    """One bulk action (and its document) as NDJSON."""
    head = json.dumps({action: {"_index": index, "_id": doc_id}}, separators=(",", ":"))
    if doc is None:
        return (head + "\n").encode()
    return (
        head + "\n" + json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode()


class Connection:
    """Calls to one cluster with pixdex's retry policy; errors name the index URL, never the
    password."""

    def __init__(self, http: Http, location: str, options: Options) -> None:
        self.http = http
        self.location = location
        self.options = options
        self.flavor_name = "Elasticsearch" if http.flavor == "es" else "OpenSearch"

    def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """One call, retried on 429/5xx/no answer; IndexUnavailable naming the URL when down."""
        attempt = 0
        while True:
            try:
                status, body = self.http.call(method, path, **kw)
            except Down as exc:
                if attempt >= self.options.retries:
                    raise IndexUnavailable(
                        f"{self.flavor_name} at {self.location} is unreachable: {exc}"
                    ) from exc
            else:
                if status not in RETRY_STATUS or attempt >= self.options.retries:
                    return status, body
            time.sleep(min(self.options.backoff * 2**attempt, self.options.backoff_cap))
            attempt += 1

    def ok(self, method: str, path: str, what: str, **kw: Any) -> Any:
        """The body of a call that must succeed; IndexUnavailable saying ``what`` failed."""
        status, body = self.call(method, path, **kw)
        if status >= 300:
            raise IndexUnavailable(f"{what} failed on {self.location}: {reason(body)}")
        return body

    def search(self, body: dict[str, Any], index: str, **params: Any) -> dict[str, Any]:
        status, resp = self.call("POST", f"/{index}/_search", params=params or None, body=body)
        if status >= 300:
            raise IndexUnavailable(f"search failed on {self.location}: {reason(resp)}")
        return resp

    def msearch(self, bodies: list[dict[str, Any]], index: str) -> list[dict[str, Any]]:
        """Several searches in one request; the server runs them concurrently."""
        lines = b"".join(
            json.dumps(part, separators=(",", ":")).encode() + b"\n"
            for body in bodies
            for part in ({}, body)
        )
        status, resp = self.call("POST", f"/{index}/_msearch", body=lines, ndjson=True)
        if status >= 300:
            raise IndexUnavailable(f"search failed on {self.location}: {reason(resp)}")
        answers = resp.get("responses", []) if isinstance(resp, dict) else []
        for answer in answers:
            if "error" in answer or len(answers) != len(bodies):
                raise IndexUnavailable(f"search failed on {self.location}: {reason(answer)}")
        return answers

    def scan(
        self, index: str, query: dict[str, Any], source: Any = True, size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every matching hit, via the scroll API (in ES 8/9 and OpenSearch alike)."""
        resp = self.search(
            {"query": query, "size": size, "sort": ["_doc"], "_source": source},
            index,
            scroll=SCROLL,
        )
        scroll_id = resp.get("_scroll_id")
        try:
            while resp["hits"]["hits"]:
                yield from resp["hits"]["hits"]
                resp = self.ok(
                    "POST",
                    "/_search/scroll",
                    "scroll",
                    body={"scroll": SCROLL, "scroll_id": scroll_id},
                )
                scroll_id = resp.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                with contextlib.suppress(IndexUnavailable, Down):
                    self.http.call("DELETE", "/_search/scroll", body={"scroll_id": [scroll_id]})

    def bulk(
        self, items: list[tuple[Any, bytes]], refresh: str | None = None
    ) -> tuple[list[tuple[Any, dict[str, Any]]], list[tuple[Any, str]]]:
        """Send (tag, action lines) in batches; returns (tag, item result) for answered actions
        and (tag, reason) for actions given up on (after retries with backoff on 429/5xx)."""
        opt = self.options
        done: list[tuple[Any, dict[str, Any]]] = []
        failed: list[tuple[Any, str]] = []
        down: str | None = None
        for chunk in _chunks(items, opt.batch_docs, opt.batch_bytes):
            if down is not None:
                failed += [(tag, down) for tag, _ in chunk]
                continue
            pending = chunk
            attempt = 0
            while pending:
                body = b"".join(line for _, line in pending)
                why: str | None = None
                try:
                    status, resp = self.http.call(
                        "POST",
                        "/_bulk",
                        params={"refresh": refresh or opt.refresh},
                        body=body,
                        ndjson=True,
                    )
                except Down as exc:
                    status, resp, why = 0, None, f"{self.flavor_name} unreachable: {exc}"
                retry: list[tuple[Any, bytes]] = []
                if status == 200 and isinstance(resp, dict):
                    answers = resp.get("items") or []
                    for i, (tag, line) in enumerate(pending):
                        if i >= len(answers):  # never reported as written without an answer
                            retry.append((tag, line))
                            why = f"the bulk answer lists {len(answers)} of {len(pending)} items"
                            continue
                        outcome = next(iter(answers[i].values()))
                        if outcome.get("status") in RETRY_STATUS:
                            retry.append((tag, line))
                            why = reason({"error": outcome.get("error", outcome)})
                        else:
                            done.append((tag, outcome))
                else:
                    retry = pending
                    why = why or f"bulk request answered {status}: {reason(resp)}"
                if not retry:
                    break
                # A refusal of the whole request (401/403 credentials, 400, 413…) will not go
                # away with a backoff: give up on it now instead of waiting out the retries.
                final = status != 0 and status != 200 and status not in RETRY_STATUS
                if final or attempt >= opt.retries:
                    failed += [(tag, f"{why} (after {attempt + 1} attempts)") for tag, _ in retry]
                    # no answer, or credentials refused: the next batches would fare the same
                    if status in (0, 401, 403):
                        down = f"not sent: {why}"
                    break
                time.sleep(min(opt.backoff * 2**attempt, opt.backoff_cap))
                attempt += 1
                pending = retry
        return done, failed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.client.close()


# --- opening ------------------------------------------------------------------------------------
def _public_url_safe(url: str) -> str:
    """As public_url, for URLs whose port may not parse: credentials cut textually."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


def connect(url: str, settings: Settings) -> tuple[Connection, str]:
    """(connection, index name) for ``es+http(s)://…/name`` or ``opensearch+http(s)://…/name``;
    auth defaults come from ``settings``."""
    flavor_scheme, _, rest = url.partition("+")
    if flavor_scheme not in ("es", "opensearch") or not rest.startswith(("http://", "https://")):
        raise IndexUnavailable(
            f"unknown index URL {url!r}: use es+http(s)://host:port/name "
            "or opensearch+http(s)://host:port/name"
        )
    flavor = "es" if flavor_scheme == "es" else "opensearch"
    parts = urlsplit(rest)
    if parts.query:
        moved = ", ".join(
            f"{k} → {env_name('elastic.' + k)}" for k in sorted(parse_qs(parts.query))
        )
        raise ConfigError(
            f"index URLs carry no options ({moved}): set them in the [elastic] section of the"
            " config file or the environment (pixdex config lists them)"
        )
    name = unquote(parts.path.strip("/"))
    if not name or "/" in name or not _NAME.match(name):
        raise IndexUnavailable(
            f"index URL {_public_url_safe(rest)!r} needs an index name after the host:"
            " lower-case letters, digits, '.', '_' or '-' (e.g. es+http://127.0.0.1:9200/photos)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 9200)
    except ValueError as exc:  # a port that is not a number
        raise IndexUnavailable(f"bad index URL {_public_url_safe(rest)!r}: {exc}") from None
    es = settings.elastic
    options = Options(
        refresh=es.refresh,
        shards=es.shards,
        replicas=es.replicas,
        batch_docs=es.batch_docs,
        batch_bytes=int(es.batch_mb * 1024 * 1024),
        retries=es.retries,
        backoff=es.backoff,
        timeout=es.timeout,
    )
    host_url = f"{parts.scheme}://{parts.hostname}:{port}"
    username = unquote(parts.username) if parts.username else es.username
    password = unquote(parts.password) if parts.password else es.password
    auth = (username, password, es.api_key, es.ca_certs, es.verify_certs)
    location = f"{flavor_scheme}+{public_url(rest)}"
    if flavor == "es":
        client = _es_client(host_url, *auth, options)
    else:
        signing = (es.aws_region, es.aws_service) if es.aws_region else None
        client = _os_client(host_url, *auth, options, signing)
    return Connection(Http(client, flavor), location, options), name


def _es_client(
    host: str,
    username: str | None,
    password: str | None,
    api_key: str | None,
    ca_certs: str | None,
    verify: bool,
    options: Options,
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
        require("s3", "SigV4 signing for Amazon OpenSearch (the AWS credentials)")
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
    options: Options,
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
