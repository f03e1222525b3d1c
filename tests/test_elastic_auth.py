"""Basic auth, API keys and TLS against the real servers (``tests/_servers.py``).

The test servers run with security off (the integ-test-zip distributions have no security
plugin), so a small gatekeeper sits in front of each: a threaded proxy on 127.0.0.1 that forwards
a request only when it carries the expected ``Authorization`` header (answering 401 with a
``WWW-Authenticate`` header otherwise, as the secured servers do), and optionally terminates TLS
with a certificate from a CA made in the test (``openssl`` CLI). What reaches the real server is
therefore exactly what a secured cluster would have let through.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _servers import free_port

from pixdex.config import Settings, load_settings
from pixdex.errors import IndexUnavailable
from pixdex.indexes.base import SearchQuery
from pixdex.integrations.elastic import ElasticIndex
from pixdex.records import Label, Record

FLAVORS = {"elasticsearch": "es", "opensearch": "opensearch"}
USER = "pixdex-writer"
PASSWORD = "s3cret-Pa55word-7431"  # noqa: S105 - test credential, asserted absent from messages
API_KEY = base64.b64encode(b"key-id-1:api-key-secret-9902").decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Gatekeeper:
    """Proxy to a real server that lets through only requests with ``authorization`` (if set),
    over TLS when given ``tls=(cert, key)``. Counts what it forwarded and refused."""

    def __init__(
        self,
        upstream: str,
        flavor: str,
        *,
        authorization: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.flavor = flavor
        self.authorization = authorization
        self.forwarded = 0
        self.refused: list[str | None] = []  # the Authorization headers refused
        self.handshake_errors: list[str] = []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _refuse(self, got: str | None) -> None:
                gate.refused.append(got)
                if gate.flavor == "es":
                    # what Elasticsearch's security answers (x-elastic-product on every response)
                    if got is None:
                        reason = (
                            f"missing authentication credentials for REST request [{self.path}]"
                        )
                    elif got.startswith("Basic "):
                        user = base64.b64decode(got[6:]).decode().partition(":")[0]
                        reason = f"unable to authenticate user [{user}] for REST request"
                        reason += f" [{self.path}]"
                    else:
                        reason = "unable to authenticate with provided credentials and anonymous"
                        reason += " access is not allowed for this request"
                    challenge = 'Basic realm="security" charset="UTF-8", ApiKey'
                    error = {"type": "security_exception", "reason": reason}
                    error["header"] = {"WWW-Authenticate": [challenge]}
                    body = {"error": {"root_cause": [error], **error}, "status": 401}
                    self._send(
                        401,
                        {
                            "content-type": "application/json",
                            "x-elastic-product": "Elasticsearch",
                            "WWW-Authenticate": challenge,
                        },
                        json.dumps(body).encode(),
                    )
                else:  # what the OpenSearch security plugin answers
                    self._send(
                        401,
                        {
                            "content-type": "text/plain; charset=UTF-8",
                            "WWW-Authenticate": 'Basic realm="OpenSearch Security"',
                        },
                        b"Unauthorized",
                    )

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                got = self.headers.get("authorization")
                if gate.authorization is not None and got != gate.authorization:
                    self._refuse(got)
                    return
                conn = http.client.HTTPConnection(gate.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                conn.close()
                gate.forwarded += 1
                skip = ("transfer-encoding", "connection", "content-length")
                self._send(
                    response.status,
                    {k: v for k, v in response.getheaders() if k.lower() not in skip},
                    payload,
                )

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

        context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                if context is None:
                    super().finish_request(request, client_address)
                    return
                # the handshake runs in the request's thread, not the accepting one
                try:
                    wrapped = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    gate.handshake_errors.append(str(exc))
                    return
                try:
                    super().finish_request(wrapped, client_address)
                finally:
                    wrapped.close()

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up mid-request are part of these tests

        self.server = Server(("127.0.0.1", free_port()), Handler)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials only from what each test passes: no config file, no PIXDEX_ELASTIC__*."""
    monkeypatch.setenv("PIXDEX_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("PIXDEX_ELASTIC__"):
            monkeypatch.delenv(name)


@pytest.fixture(params=list(FLAVORS))
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(scheme, http://127.0.0.1:PORT of the real server) for each flavor."""
    return FLAVORS[request.param], request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def gates(server: tuple[str, str]) -> Iterator[Any]:
    """Makes gatekeepers in front of the flavor's server; all closed afterwards."""
    made: list[Gatekeeper] = []

    def make(**kwargs: Any) -> Gatekeeper:
        gate = Gatekeeper(server[1], server[0], **kwargs)
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.close()


@pytest.fixture
def opened() -> Iterator[list[ElasticIndex]]:
    """Indexes a test opened (through a gate that let them in); dropped afterwards."""
    created: list[ElasticIndex] = []
    yield created
    for index in created:
        index.drop()
        index.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it (openssl CLI), plus a
    second, unrelated CA (a bundle that does not vouch for the server)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl CLI is needed to make the test certificates")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)  # noqa: S603

    (d / "ca.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    for ca in ("ca", "other-ca"):
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{ca}.key")
        run("req", "-new", "-key", f"{ca}.key", "-subj", f"/CN=pixdex test {ca}", "-out", "c.csr")
        run(
            "x509", "-req", "-in", "c.csr", "-signkey", f"{ca}.key", "-days", "2",
            "-extfile", "ca.ext", "-out", f"{ca}.pem",
        )  # fmt: skip
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
    )  # fmt: skip
    return {
        "ca": d / "ca.pem",
        "other_ca": d / "other-ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
    }


# --- helpers ---------------------------------------------------------------------------------


def name() -> str:
    return f"pixdex-auth-{uuid.uuid4().hex[:10]}"


def records(n: int) -> list[Record]:
    return [
        Record(
            bucket="photos",
            key=f"auth/{i:04d}.jpg",
            Labels=[Label(Name="Dog" if i % 2 else "Truck", Confidence=80.0 + i)],
            fingerprint=f"etag-{i}",
            analyzers={"labels": "1"},
        )
        for i in range(n)
    ]


def full_cycle(index: ElasticIndex) -> None:
    """Upsert, search, stats, delete: every kind of request pixdex makes."""
    assert index.upsert(records(6)) == []
    result = index.search(SearchQuery(labels=["dog"]))
    assert [h.record.key for h in result.hits] == [
        "auth/0005.jpg",
        "auth/0003.jpg",
        "auth/0001.jpg",
    ]
    assert index.get("photos", "auth/0002.jpg") is not None
    stats = index.stats()
    assert (stats.records, stats.labels) == (6, 2)
    assert index.delete("photos", ["auth/0000.jpg", "auth/0001.jpg"]) == 2
    assert index.stats().records == 4


def es(**elastic: Any) -> Settings:
    """Settings with these ``[elastic]`` values (writes searchable at once, for the checks)."""
    return load_settings(elastic={"refresh": "true", **elastic})


def open_through(
    created: list[ElasticIndex], url: str, settings: Settings | None = None
) -> ElasticIndex:
    index = ElasticIndex.from_url(url, settings or es())
    created.append(index)
    return index


def refused(url: str, settings: Settings | None = None) -> IndexUnavailable:
    """The IndexUnavailable opening ``url`` raises (fails the test when it opens)."""
    with pytest.raises(IndexUnavailable) as info:
        ElasticIndex.from_url(url, settings or es())
    return info.value


# --- basic auth ------------------------------------------------------------------------------


def test_basic_auth_in_the_url(server, gates, opened) -> None:
    scheme, _ = server
    gate = gates(authorization=basic(USER, PASSWORD))
    host = gate.url.removeprefix("http://")
    index = open_through(opened, f"{scheme}+http://{USER}:{PASSWORD}@{host}/{name()}")
    full_cycle(index)
    assert gate.refused == [] and gate.forwarded > 10
    assert PASSWORD not in index.location and USER not in index.location


def test_basic_auth_from_settings(server, gates, opened) -> None:
    """Password outside the URL (es_username/es_password); percent-escapes in URL passwords are
    decoded (a password with '@' or ':' must be written escaped in a URL)."""
    scheme, _ = server
    gate = gates(authorization=basic(USER, PASSWORD))
    settings = es(username=USER, password=PASSWORD)
    index = open_through(opened, f"{scheme}+{gate.url}/{name()}", settings)
    full_cycle(index)
    assert gate.refused == []

    odd = "p@ss:w/rd%"
    gate2 = gates(authorization=basic(USER, odd))
    host = gate2.url.removeprefix("http://")
    escaped = "p%40ss%3Aw%2Frd%25"
    index2 = open_through(opened, f"{scheme}+http://{USER}:{escaped}@{host}/{name()}")
    assert index2.upsert(records(1)) == [] and index2.stats().records == 1
    assert gate2.refused == []


@pytest.mark.parametrize("case", ["missing", "wrong password", "wrong user", "settings"])
def test_wrong_or_missing_basic_credentials_are_a_clear_error(server, gates, case) -> None:
    scheme, _ = server
    gate = gates(authorization=basic(USER, PASSWORD))
    host = gate.url.removeprefix("http://")
    index_name = name()
    wrong = "Wr0ng-" + PASSWORD  # contains PASSWORD too: neither may be printed
    settings = None
    if case == "missing":
        url = f"{scheme}+http://{host}/{index_name}"
    elif case == "wrong password":
        url = f"{scheme}+http://{USER}:{wrong}@{host}/{index_name}"
    elif case == "wrong user":
        url = f"{scheme}+http://someone-else:{PASSWORD}@{host}/{index_name}"
    else:
        url = f"{scheme}+http://{host}/{index_name}"
        settings = es(username=USER, password=wrong)
    started = time.monotonic()
    exc = refused(url, settings)
    message = str(exc)
    assert time.monotonic() - started < 5  # a refusal is not retried as if the server were busy
    assert f"{scheme}+http://127.0.0.1:{gate.server.server_address[1]}/{index_name}" in message
    assert "401" in message
    assert PASSWORD not in message and wrong not in message
    assert PASSWORD not in repr(exc.__cause__ or "")
    assert gate.forwarded == 0 and len(gate.refused) >= 1
    if case == "missing":
        assert gate.refused[0] is None
    # the server's own reason is passed on
    assert ("security_exception" if scheme == "es" else "Unauthorized") in message


def test_credentials_revoked_mid_run(server, gates, opened) -> None:
    """The password is rotated while an index is open: writes come back as not indexed (quickly,
    not retried as if the cluster were busy), reads raise, both naming the URL, never the password;
    with the new password a re-run completes."""
    scheme, _ = server
    gate = gates(authorization=basic(USER, PASSWORD))
    settings = es(username=USER, password=PASSWORD, retries=3, backoff=0.5)
    index_name = name()
    url = f"{scheme}+{gate.url}/{index_name}"
    index = ElasticIndex.from_url(url, settings)  # dropped below, directly on the server
    try:
        gate.authorization = basic(USER, "rotated")
        started = time.monotonic()
        errors = index.upsert(records(4))
        assert time.monotonic() - started < 2  # 401 is no reason for backoff
        assert len(errors) == 4
        assert all("401" in e.reason and PASSWORD not in e.reason for e in errors)
        refusals = len(gate.refused)
        assert refusals == 1  # one bulk request; the rest of the run is not sent
        with pytest.raises(IndexUnavailable) as info:
            index.search(SearchQuery(labels=["dog"]))
        assert index.location in str(info.value) and PASSWORD not in str(info.value)
        assert gate.forwarded > 0  # what came before the rotation went through
        forwarded = gate.forwarded
        rotated = es(username=USER, password="rotated")
        again = open_through(opened, url, rotated)
        assert again.upsert(records(4)) == [] and again.stats().records == 4
        assert gate.forwarded > forwarded
    finally:
        index.close()
        ElasticIndex.from_url(f"{scheme}+{server[1]}/{index_name}").drop()


# --- API keys --------------------------------------------------------------------------------


def test_api_key(server, gates, opened) -> None:
    scheme, _ = server
    gate = gates(authorization=f"ApiKey {API_KEY}")
    index = open_through(opened, f"{scheme}+{gate.url}/{name()}", es(api_key=API_KEY))
    full_cycle(index)
    assert gate.refused == [] and gate.forwarded > 10
    assert API_KEY not in index.location


@pytest.mark.parametrize("case", ["missing", "wrong key", "basic instead"])
def test_wrong_api_key_is_a_clear_error(server, gates, case) -> None:
    scheme, _ = server
    gate = gates(authorization=f"ApiKey {API_KEY}")
    wrong = base64.b64encode(b"key-id-1:not-the-key").decode()
    settings = {
        "missing": es(),
        "wrong key": es(api_key=wrong),
        "basic instead": es(username=USER, password=PASSWORD),
    }[case]
    index_name = name()
    exc = refused(f"{scheme}+{gate.url}/{index_name}", settings)
    message = str(exc)
    assert f"{scheme}+{gate.url}/{index_name}" in message and "401" in message
    assert ("security_exception" if scheme == "es" else "Unauthorized") in message
    assert wrong not in message and PASSWORD not in message
    assert gate.forwarded == 0
    if case == "wrong key":
        assert gate.refused[0] == f"ApiKey {wrong}"


# --- TLS -------------------------------------------------------------------------------------


def test_tls_with_a_private_ca(server, gates, opened, pki) -> None:
    scheme, _ = server
    gate = gates(tls=(pki["cert"], pki["key"]))
    assert gate.url.startswith("https://")
    settings = es(ca_certs=str(pki["ca"]))
    index = open_through(opened, f"{scheme}+{gate.url}/{name()}", settings)
    full_cycle(index)
    assert gate.handshake_errors == []


@pytest.mark.parametrize("case", ["system CAs", "another CA"])
def test_tls_unverified_certificate_is_a_clear_error(server, gates, pki, case) -> None:
    scheme, _ = server
    gate = gates(tls=(pki["cert"], pki["key"]))
    index_name = name()
    settings = es(ca_certs=str(pki["other_ca"])) if case == "another CA" else es()
    started = time.monotonic()
    exc = refused(f"{scheme}+{gate.url}/{index_name}", settings)
    message = str(exc)
    assert time.monotonic() - started < 5  # not retried: a bad certificate stays bad
    assert f"{scheme}+{gate.url}/{index_name}" in message
    assert "certificate verify failed" in message.lower(), message
    assert gate.forwarded == 0
    # the server saw the client give up during the handshake
    deadline = time.monotonic() + 5
    while not gate.handshake_errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.handshake_errors


def test_tls_verification_off_when_asked(server, gates, opened, pki) -> None:
    scheme, _ = server
    gate = gates(tls=(pki["cert"], pki["key"]))
    index = open_through(opened, f"{scheme}+{gate.url}/{name()}", es(verify_certs=False))
    full_cycle(index)


def test_tls_and_basic_auth_together(server, gates, opened, pki) -> None:
    """The usual secured cluster: HTTPS with a private CA and a password."""
    scheme, _ = server
    gate = gates(tls=(pki["cert"], pki["key"]), authorization=basic(USER, PASSWORD))
    host = gate.url.removeprefix("https://")
    url = f"{scheme}+https://{USER}:{PASSWORD}@{host}/{name()}"
    full_cycle(open_through(opened, url, es(ca_certs=str(pki["ca"]))))
    assert gate.refused == []
    wrong = f"{scheme}+https://{USER}:nope-{PASSWORD}@{host}/{name()}"
    exc = refused(wrong, es(ca_certs=str(pki["ca"])))
    assert "401" in str(exc) and PASSWORD not in str(exc)
