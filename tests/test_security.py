"""Each hole of issue 9, tried as an attacker would, against real servers: ``pixdex serve`` as a
process on a loopback port (requests sent byte for byte with http.client where a normal client
would tidy them up), MinIO for the webhook and S3Object, and the in-process app where only the
HTTP layer matters. Each test names the hole it guards; docs/security.md maps them."""

from __future__ import annotations

import base64
import http.client
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _http import LocalClient
from _minio import FaultProxy, serve_app
from _serve import ServeProcess, free_port
from PIL import Image
from test_api import coco_records

from pixdex.api.app import create_app
from pixdex.api.guard import check_bind
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.integrations.s3 import webhook as webhooks
from pixdex.integrations.s3.events import ChangeApplier
from pixdex.records import Record

API_TOKEN = "api-token-for-tests-0123456789"
HOOK_TOKEN = "webhook-token-for-tests-987654"
ES_PASSWORD = "es-password-never-shown-4242"
AWS_SECRET = "aws-secret-never-shown-31337"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("security") / "index.db"
    index = SqliteIndex(path)
    index.upsert(coco_records()[:20])
    index.close()
    return path


@pytest.fixture(scope="module")
def server(db: Path, tmp_path_factory: pytest.TempPathFactory):
    """pixdex serve with nothing configured: the defaults a new user gets."""
    tmp = tmp_path_factory.mktemp("serve-default")
    env = {"PIXDEX_CACHE_DIR": str(tmp / "cache")}
    with ServeProcess(["--index", str(db)], tmp / "serve.log", env) as proc:
        yield proc


@pytest.fixture(scope="module")
def token_server(db: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve-token")
    args = ["--index", str(db), "--api-token", API_TOKEN, "--webhook-token", HOOK_TOKEN]
    args += ["--webhook-source", "s3://photos/incoming/"]
    env = {"PIXDEX_CACHE_DIR": str(tmp / "cache"), "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    with ServeProcess(args, tmp / "serve.log", env) as proc:
        yield proc


def raw(url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""):
    """One request sent as written: path and Host untouched (httpx would normalise them)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    if (body or method in ("POST", "PUT")) and "Content-Length" not in headers:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def png(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "red" if mode == "RGB" else 1).save(out, fmt)
    return out.getvalue()


def detect_body(data: bytes, **extra: object) -> dict:
    return {"Image": {"Bytes": base64.b64encode(data).decode()}, **extra}


# --- DNS rebinding: the Host allowlist ---


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io", "a.b."],
)
def test_foreign_host_names_are_refused(server, host: str):
    status, _, body = raw(server.url, "GET", "/api/stats", {"Host": host})
    assert status == 400
    assert "allowed_hosts" in json.loads(body)["message"]
    # a POST from a rebound page to the Rekognition door: refused, in Rekognition's shape
    status, headers, body = raw(
        server.url, "POST", "/rekognition", {"Host": host, "Content-Type": "application/json"}
    )
    assert status == 400 and json.loads(body)["__type"] == "InvalidParameterException"


def test_loopback_names_and_ip_literals_are_answered(server):
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert raw(server.url, "GET", "/api/stats", {"Host": host})[0] == 200, host
    # an IP literal cannot be rebound (rebinding needs a name); *.localhost is loopback (RFC 6761)
    for host in ("10.1.2.3:8000", "photos.localhost"):
        assert raw(server.url, "GET", "/api/stats", {"Host": host})[0] == 200, host


def test_allowed_hosts_adds_names(db: Path, tmp_path: Path):
    settings = Settings(
        index=str(db), cache_dir=tmp_path, serve={"allowed_hosts": "photos.example.org"}
    )
    client = LocalClient(create_app(settings))
    assert client.get("/api/stats", headers={"Host": "photos.example.org"}).status_code == 200
    assert client.get("/api/stats", headers={"Host": "other.example.org"}).status_code == 400


# --- binding beyond loopback needs a token ---


def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path: Path):
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "pixdex", "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PIXDEX_INDEX": str(tmp_path / "x.db")},
    )
    assert done.returncode == 2
    assert "API token" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", API_TOKEN)  # with a token it may


def test_a_weak_token_is_refused_without_echoing_it():
    done = subprocess.run(
        [sys.executable, "-m", "pixdex", "serve", "--api-token", "hunter2-short"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "at least 16 characters" in done.stderr and "hunter2" not in done.stderr


# --- the API token: header, query (→ cookie), constant-time compare ---


def test_api_token_is_required_in_each_documented_form(token_server):
    url = token_server.url
    missing = httpx.get(f"{url}/api/search", params={"label": "dog"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["message"]
    wrong = httpx.get(f"{url}/api/stats", headers={"Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401 and "wrong API token" in wrong.json()["message"]
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    found = httpx.get(f"{url}/api/search", params={"label": "dog"}, headers=bearer)
    assert found.status_code == 200 and found.json()["total"] > 0
    assert httpx.get(f"{url}/", headers=bearer).status_code == 200
    assert httpx.get(f"{url}/").status_code == 401  # the gallery too
    # a browser opens ?token= once; the cookie then carries it (HttpOnly, SameSite=Strict)
    with httpx.Client(base_url=url) as browser:
        page = browser.get("/", params={"token": API_TOKEN})
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/stats").status_code == 200
        hit = browser.get("/api/search", params={"label": "dog"}).json()["hits"][0]
        assert browser.get(f"/api/images/{hit['id']}/thumb", params={"size": 64}).status_code == 200
    assert httpx.get(f"{url}/api/stats", params={"token": "wrong" * 5}).status_code == 401
    # probes need no secret, and learn nothing but "ok" and a count
    health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200 and set(health.json()) == {"status", "records"}
    assert API_TOKEN not in token_server.output()


def test_token_compare_is_constant_time():
    """hmac.compare_digest, not ==: checked in the code, since timing is too noisy to test."""
    import inspect

    from pixdex.api import guard

    source = inspect.getsource(guard.token_matches)
    assert "hmac.compare_digest" in source and "==" not in source


# --- no state change from another site ---


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, 403),
        ({"Origin": "null", "Content-Type": "application/json"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, 403),  # other port
        ({"Content-Type": "text/plain"}, 415),  # a cross-site fetch without preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),  # an HTML form
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ],
)
def test_cross_site_and_form_posts_are_refused(server, headers: dict[str, str], status: int):
    body = json.dumps(detect_body(png(100, 100))).encode()
    for path in ("/rekognition/detect-labels", "/webhooks/minio"):
        got, _, data = raw(server.url, "POST", path, {"Host": "127.0.0.1", **headers}, body)
        assert got == status, (path, data)
    assert "cross-site" in data.decode() or "send JSON" in data.decode()


def test_same_origin_posts_pass_the_guard(server):
    origin = f"127.0.0.1:{server.port}"
    headers = {
        "Host": origin,
        "Origin": f"http://{origin}",
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
    }
    status, _, data = raw(server.url, "POST", "/rekognition/detect-labels", headers, b"{}")
    assert status == 400 and json.loads(data)["__type"] == "InvalidParameterException"
    assert "Image" in json.loads(data)["Message"]  # answered by the route, not the guard


# --- the webhook: closed by default, own token, allowlist ---


def event(bucket: str, key: str) -> dict:
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
            }
        ],
    }


def test_webhook_is_off_until_token_and_sources_are_set(server):
    response = httpx.post(f"{server.url}/webhooks/minio", json=event("photos", "a.jpg"))
    assert response.status_code == 403
    assert "s3.webhook_token and s3.webhook_sources" in response.json()["message"]


def test_webhook_needs_its_own_token_and_refuses_foreign_objects(token_server):
    hook = f"{token_server.url}/webhooks/minio"
    assert httpx.post(hook, json=event("photos", "incoming/a.jpg")).status_code == 401
    api = {"Authorization": f"Bearer {API_TOKEN}"}  # the API token does not open the webhook
    assert httpx.post(hook, json=event("photos", "incoming/a.jpg"), headers=api).status_code == 401
    own = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    for bucket, key in (("secrets", "incoming/a.jpg"), ("photos", "private/a.jpg")):
        response = httpx.post(hook, json=event(bucket, key), headers=own)
        assert response.status_code == 403, (bucket, key)
        assert "outside s3.webhook_sources" in response.json()["message"]
    # nothing but JSON: a form-encoded forgery is refused before the token is even looked at
    assert httpx.post(hook, data={"Records": "x"}, headers=own).status_code == 415


def test_forged_event_for_a_foreign_bucket_indexes_nothing(minio, s3_env, bucket, tiny_pipeline):
    """The hole: an event naming any object the server could read got it indexed and then
    served by /api/images/{id}/file. Now the event is refused and the object never read."""
    client = minio.client()
    secret = f"{bucket}-private"
    client.create_bucket(Bucket=secret)
    client.put_object(Bucket=secret, Key="payroll.png", Body=png(120, 90))
    app = create_app(
        Settings(
            index=tiny_pipeline.index.location,
            s3={
                "endpoint_url": minio.endpoint,
                "webhook_token": minio.webhook_token,
                "webhook_sources": [f"s3://{bucket}/photos/"],
            },
        ),
        tiny_pipeline.index,
    )
    webhooks.configure(app, app.state.settings, applier=ChangeApplier(tiny_pipeline))
    try:
        with serve_app(app, free_port()) as url:
            auth = {"Authorization": f"Bearer {minio.webhook_token}"}
            forged = httpx.post(
                f"{url}/webhooks/minio", json=event(secret, "payroll.png"), headers=auth
            )
            assert forged.status_code == 403
            time.sleep(0.5)
            assert tiny_pipeline.index.known(secret) == {}
            assert httpx.get(f"{url}/api/search", params={"bucket": secret}).json()["total"] == 0
    finally:
        webhooks.shutdown(app, timeout=5)
        for key in ("payroll.png",):
            client.delete_object(Bucket=secret, Key=key)
        client.delete_bucket(Bucket=secret)


# --- Rekognition: S3Object off by default, HEAD before GET, Rekognition's own limits ---


def test_s3object_is_off_unless_allowlisted_and_sized_before_reading(
    minio, s3_env, bucket, tmp_path: Path, coco_images: list[Path]
):
    client = minio.client()
    client.put_object(Bucket=bucket, Key="allowed/huge.jpg", Body=b"\xff\xd8" + b"0" * (16 << 20))
    client.put_object(Bucket=bucket, Key="other/dog.jpg", Body=coco_images[0].read_bytes())
    with FaultProxy(minio.endpoint, lambda method, path: None) as proxy:
        settings = dict(
            index=str(tmp_path / "i.db"), cache_dir=tmp_path, s3={"endpoint_url": proxy.endpoint}
        )

        def ask(app_settings: Settings, key: str, bucket_name: str = bucket) -> httpx.Response:
            request = {"Image": {"S3Object": {"Bucket": bucket_name, "Name": key}}}
            return LocalClient(create_app(app_settings)).post(
                "/rekognition",
                json=request,
                headers={"X-Amz-Target": "RekognitionService.DetectLabels"},
            )

        off = ask(Settings(**settings), "allowed/huge.jpg")
        assert off.status_code == 403 and off.json()["__type"] == "AccessDeniedException"
        assert "rekognition.s3_sources" in off.json()["Message"]
        assert proxy.seen == []  # not even a HEAD

        on = Settings(**settings, rekognition={"s3_sources": [f"s3://{bucket}/allowed/"]})
        for key, other in (("other/dog.jpg", bucket), ("allowed/huge.jpg", "someone-else")):
            refused = ask(on, key, other)
            assert refused.status_code == 403 and "not in this server" in refused.json()["Message"]
        assert proxy.seen == []

        huge = ask(on, "allowed/huge.jpg")
        assert huge.status_code == 400 and huge.json()["__type"] == "ImageTooLargeException"
        methods = [m for m, path, _ in proxy.seen if "huge.jpg" in path]
        assert methods == ["HEAD"]  # 16 MB never downloaded

        missing = ask(on, "allowed/nope.jpg")
        assert missing.status_code == 400 and missing.json()["__type"] == "InvalidS3ObjectException"


def test_s3object_without_credentials_is_a_4xx_not_a_500(tmp_path: Path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = Settings(
        index=str(tmp_path / "i.db"),
        cache_dir=tmp_path,
        s3={"endpoint_url": f"http://127.0.0.1:{free_port()}"},
        rekognition={"s3_sources": ["s3://photos"]},
    )
    request = {"Image": {"S3Object": {"Bucket": "photos", "Name": "a.jpg"}}}
    response = LocalClient(create_app(settings)).post("/rekognition/detect-labels", json=request)
    assert response.status_code == 400
    assert response.json()["__type"] == "InvalidS3ObjectException"
    assert "no S3 credentials" in response.json()["Message"]


def deep(levels: int) -> bytes:
    return b'{"Image": ' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize(
    ("body", "kind", "mentions"),
    [
        (
            json.dumps(detect_body(png(100, 100, "WEBP"))).encode(),
            "InvalidImageFormatException",
            "WEBP",
        ),
        (
            json.dumps(detect_body(png(100, 100, "GIF"))).encode(),
            "InvalidImageFormatException",
            "GIF",
        ),
        (
            json.dumps(detect_body(png(100, 100, "BMP"))).encode(),
            "InvalidImageFormatException",
            "BMP",
        ),
        (
            json.dumps(detect_body(png(10_001, 80, mode="1"))).encode(),
            "ImageTooLargeException",
            "10,000",
        ),
        (
            json.dumps(detect_body(png(79, 200))).encode(),
            "InvalidParameterException",
            "at least 80",
        ),
        (json.dumps(detect_body(b"")).encode(), "InvalidParameterException", "empty"),
        (
            json.dumps(
                {"Image": {"Bytes": "AAAA", "S3Object": {"Bucket": "b", "Name": "k"}}}
            ).encode(),
            "InvalidParameterException",
            "not both",
        ),
        (
            b'{"Image": {"Bytes": "AAAA"}, "MaxLabels": Infinity}',
            "InvalidParameterException",
            "Infinity",
        ),
        (b'{"Image": {"Bytes": "AAAA"}, "MaxLabels": NaN}', "InvalidParameterException", "NaN"),
        (b'{"Image": {"Bytes": "AAAA"}, "MaxLabels": 1e999}', "InvalidParameterException", "range"),
        (b'{"Image": {"Bytes": "AAAA"}, "MaxLabels": 2.5}', "InvalidParameterException", "whole"),
        (
            b'{"Image": {"Bytes": "AAAA"}, "MinConfidence": "high"}',
            "InvalidParameterException",
            "number",
        ),
        (deep(100_000), "InvalidParameterException", "nested deeper"),
        (b"\xff\xfe{}", "InvalidParameterException", "UTF-8"),
    ],
)
def test_rekognition_refuses_what_rekognition_refuses(
    db: Path, tmp_path: Path, body, kind, mentions
):
    client = LocalClient(create_app(Settings(index=str(db), cache_dir=tmp_path)))
    doors = [
        ("/rekognition/detect-labels", {}),
        ("/rekognition", {"X-Amz-Target": "RekognitionService.DetectLabels"}),
    ]
    if b"MaxLabels" not in body and b"MinConfidence" not in body:  # image rules: every action
        doors += [
            ("/rekognition/detect-text", {}),
            ("/rekognition", {"X-Amz-Target": "RekognitionService.DetectText"}),
        ]
    for path, headers in doors:
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["__type"] == kind
        assert mentions in response.json()["Message"]


# --- search terms bounded: 400 with a reason, never 503 ---


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"q": " ".join(f"w{i}" for i in range(64))}, "at most 24 words"),
        ({"q": "🐶🐱"}, "no searchable word"),
        ({"q": "?!…"}, "no searchable word"),
        ({"label": [f"l{i}" for i in range(17)]}, "at most 16 labels"),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "is after until"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"min_confidence": "NaN"}, "min_confidence"),
    ],
)
def test_search_input_out_of_bounds_is_400(server, params, mentions):
    response = httpx.get(f"{server.url}/api/search", params=params)
    assert response.status_code == 400, response.text
    assert mentions in response.json()["message"]


# --- traversal and encoded variants ---

TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/..%5c..%5c..%5cetc%5cpasswd",
    "/static/..\\..\\..\\etc\\passwd",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/static/app.js%00.png",
    "/static//etc/passwd",
    "//etc/passwd",
    "/api/images/..%2f..%2f..%2fetc%2fpasswd/file",
    "/api/images/%2e%2e/file",
    "/api/images/../../etc/passwd/thumb",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_and_encoded_variants_reach_nothing(server, path: str):
    status, _, body = raw(server.url, "GET", path, {"Host": "127.0.0.1"})
    assert 400 <= status < 500, (path, status)
    assert b"root:" not in body


def test_a_record_whose_key_escapes_its_folder_is_not_served(tmp_path: Path, coco_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(coco_images[0].read_bytes())
    index = SqliteIndex(tmp_path / "i.db")
    for key in ("../secret.jpg", "%2e%2e/secret.jpg", "..%2fsecret.jpg", "sub/../../secret.jpg"):
        index.upsert([Record(bucket=str(folder), key=key, uri=(folder / key).as_uri())])
    client = LocalClient(create_app(Settings(index=index.location, cache_dir=tmp_path), index))
    for hit in client.get("/api/search", params={"bucket": str(folder)}).json()["hits"]:
        response = client.get(f"/api/images/{hit['id']}/file")
        assert response.status_code in (403, 404), hit["key"]
        assert response.content[:2] != b"\xff\xd8"


# --- bodies bounded while they stream ---


def test_bodies_are_capped_while_streaming_and_memory_stays_flat(server):
    before = server.rss()
    declared = raw(
        server.url,
        "POST",
        "/webhooks/minio",
        {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": "1073741824"},
    )
    assert declared[0] == 413

    def chunks(total: int):
        block = b"[" + b" " * (1 << 20)
        for _ in range(total >> 20):
            yield block

    for path in ("/webhooks/minio", "/api/search", "/rekognition/detect-labels"):
        try:
            response = httpx.post(
                f"{server.url}{path}",
                content=chunks(256 << 20),  # 256 MB, chunked: no length to refuse up front
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            status = response.status_code
        except (httpx.RemoteProtocolError, httpx.WriteError):
            status = 413  # the server answered and closed while the client was still sending
        assert status in (400, 403, 405, 413), (path, status)  # refused, never buffered
    grown = server.rss() - before
    assert grown < 64 << 20, f"server RSS grew {grown >> 20} MB"


# --- secrets never in error bodies or logs ---


def test_credentials_never_reach_error_bodies_or_logs(tmp_path: Path):
    port = free_port()  # nothing listens: the index is unavailable
    index = f"es+http://elastic:{ES_PASSWORD}@127.0.0.1:{port}/photos"
    env = {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "PIXDEX_CACHE_DIR": str(tmp_path / "cache")}
    env |= {"PIXDEX_ELASTIC__RETRIES": "1", "PIXDEX_ELASTIC__BACKOFF": "0.01"}
    args = ["--index", index, "--api-token", API_TOKEN, "--webhook-token", HOOK_TOKEN]
    bodies: list[str] = []
    with ServeProcess(args, tmp_path / "serve.log", env) as proc:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        for path in ("/api/search?q=dog", "/api/stats", "/healthz", "/api/images/x/file"):
            response = httpx.get(f"{proc.url}{path}", headers=auth)
            assert response.status_code == 503, path
            bodies.append(response.text)
        for token in (API_TOKEN[:-1], HOOK_TOKEN, AWS_SECRET):
            bodies.append(httpx.get(f"{proc.url}/api/stats", params={"token": token}).text)
        bodies.append(
            httpx.post(
                f"{proc.url}/webhooks/minio",
                json={},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ).text
        )
        log = proc.output()
    assert "cannot reach" in bodies[0]  # the reason stays, the password goes
    cli = subprocess.run(
        [sys.executable, "-m", "pixdex", "--verbose", "search", "dog", "--index", index],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert cli.returncode == 3 and "cannot reach" in cli.stderr
    for secret in (ES_PASSWORD, API_TOKEN, HOOK_TOKEN, AWS_SECRET):
        for text in (*bodies, log, cli.stderr, cli.stdout):
            assert secret not in text


# --- metrics cannot be made to grow without bound ---


def test_metrics_method_label_is_bounded(server):
    for method in ("FOOBAR", "BREW", "X" * 50):
        raw(server.url, method, "/api/search", {"Host": "127.0.0.1"})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'method="other"' in metrics
    assert "FOOBAR" not in metrics and "BREW" not in metrics
