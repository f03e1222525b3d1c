"""Real S3 and SQS servers for the tests, loaded as a pytest plugin from conftest.py.

- MinIO, built from source by ``scripts/minio`` (once; cached in ``$PIXDEX_DEV_CACHE``), started
  on 127.0.0.1 with a temporary data dir and a webhook notification target
  (``arn:minio:sqs::PIXDEX:webhook``) pointing at a port reserved for the webhook tests.
- ElasticMQ, a real SQS-compatible server fetched from Maven Central by ``scripts/elasticmq``.

Both are session-scoped: started on first use, stopped at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _tools import missing, require

REPO = Path(__file__).resolve().parents[1]
WEBHOOK_ID = "PIXDEX"
WEBHOOK_ARN = f"arn:minio:sqs::{WEBHOOK_ID}:webhook"
WEBHOOK_TOKEN = "test-webhook-token"
ACCESS_KEY = "pixdex-test"
SECRET_KEY = "pixdex-test-secret"
REGION = "us-east-1"
BUILD_TIMEOUT = 1800  # a cold MinIO build on 2 cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - localhost
                if response.status < 500:
                    return
        except OSError as exc:
            if getattr(exc, "code", 0) and exc.code < 500:  # type: ignore[attr-defined]
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _script(name: str, *args: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed:\n{exc.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class MinioServer:
    endpoint: str
    access_key: str
    secret_key: str
    webhook_port: int
    webhook_token: str
    data_dir: Path

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/minio"

    def client(self, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def env(self) -> dict[str, str]:
        """Environment for code under test and for the AWS CLI: the standard AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PIXDEX_S3__ENDPOINT_URL": self.endpoint,
        }


@pytest.fixture(scope="session")
def minio_bin() -> Path:
    if shutil.which("go") is None and os.environ.get("MINIO_BIN") is None:
        cached = list(
            Path(os.environ.get("PIXDEX_DEV_CACHE", Path.home() / ".cache/pixdex-dev")).glob(
                "minio/*/minio"
            )
        )
        if not cached:
            missing("needs Go >= 1.24 (to build MinIO) or MINIO_BIN")
        return cached[0]
    if os.environ.get("MINIO_BIN"):
        return Path(os.environ["MINIO_BIN"])
    return Path(_script("minio", "build", timeout=BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def minio(minio_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    base = tmp_path_factory.mktemp("minio")
    port, webhook_port = free_port(), free_port()
    server = MinioServer(
        endpoint=f"http://127.0.0.1:{port}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        webhook_port=webhook_port,
        webhook_token=WEBHOOK_TOKEN,
        data_dir=base / "data",
    )
    (base / "events").mkdir()
    env = {
        **os.environ,
        "MINIO_ROOT_USER": ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": SECRET_KEY,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        f"MINIO_NOTIFY_WEBHOOK_ENABLE_{WEBHOOK_ID}": "on",
        f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{WEBHOOK_ID}": server.webhook_url,
        f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{WEBHOOK_ID}": WEBHOOK_TOKEN,
        # Persist events while the webhook is down; MinIO replays them when it is back.
        f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{WEBHOOK_ID}": str(base / "events"),
    }
    log = base / "minio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(minio_bin),
                "server",
                "--quiet",
                "--address",
                f"127.0.0.1:{port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                str(server.data_dir),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_http(f"{server.endpoint}/minio/health/ready", proc, 60, log)
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def s3_env(minio: MinioServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS environment pointing at MinIO, for code that builds its own clients."""
    env = minio.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _empty_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        entries = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if entries:
            client.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})


@pytest.fixture
def bucket(minio: MinioServer) -> Iterator[str]:
    """A fresh, empty bucket for one test."""
    client = minio.client()
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(Exception):
        _empty_bucket(client, name)
        client.delete_bucket(Bucket=name)


# --- SQS (ElasticMQ) ---------------------------------------------------------------------------
@dataclass
class SqsServer:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name=REGION,
        )


@pytest.fixture(scope="session")
def elasticmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    require("java", "mvn")  # ElasticMQ
    lib = _script("elasticmq", "path", timeout=600)
    base = tmp_path_factory.mktemp("elasticmq")
    port = free_port()
    conf = base / "elasticmq.conf"
    conf.write_text(
        'include classpath("application.conf")\n'
        f'node-address {{ protocol = http, host = 127.0.0.1, port = {port}, context-path = "" }}\n'
        f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", '
        "sqs-limits = strict }\n"
        "rest-stats { enabled = false }\n"
    )
    log = base / "elasticmq.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "java",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",  # faster start-up; it serves a handful of requests
                f"-Dconfig.file={conf}",
                "-cp",
                f"{lib}/*",
                "org.elasticmq.server.Main",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/?Action=ListQueues", proc, 90, log)
        yield SqsServer(f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)


@dataclass
class Queue:
    url: str
    dlq_url: str
    client: Any


@pytest.fixture
def sqs_queue(elasticmq: SqsServer) -> Iterator[Queue]:
    """A fresh queue with a dead-letter queue (redrive after 3 receives) and a 2 s visibility
    timeout, so redeliveries happen within a test."""
    import json

    client = elasticmq.client()
    name = f"pixdex-{uuid.uuid4().hex[:10]}"
    dlq = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = client.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "2",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    yield Queue(url, dlq, client)
    for queue_url in (url, dlq):
        with contextlib.suppress(Exception):
            client.delete_queue(QueueUrl=queue_url)


# --- serving a FastAPI app on a real port --------------------------------------------------------
@contextlib.contextmanager
def serve_app(app: Any, port: int) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1:port in a thread (a real HTTP server)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- a tiny real analyzer for fast pipeline tests -----------------------------------------------
class ShapeAnalyzer:
    """Labels an image "Landscape"/"Portrait"/"Square" from its real decoded size: cheap, but it
    reads the actual pixels the pipeline decoded, so a wrong or missing image shows."""

    name = "shape"
    version = "1"
    min_side = 0

    def analyze(self, images: Any) -> list[dict[str, Any]]:
        out = []
        for image in images:
            w, h = image.width, image.height
            label = "Landscape" if w > h else "Portrait" if h > w else "Square"
            out.append({"Labels": [{"Name": label, "Confidence": 99.0}]})
        return out


@pytest.fixture
def tiny_pipeline(tmp_path: Path) -> Iterator[Any]:
    """A real Pipeline over a real SQLite index, with the cheap ShapeAnalyzer."""
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import Pipeline

    index = SqliteIndex(tmp_path / "index.db")
    yield Pipeline([ShapeAnalyzer()], index, batch_size=4, workers=2)
    index.close()


# --- real-shaped AWS S3 event notifications -----------------------------------------------------
def aws_record(
    bucket: str,
    key: str,
    event: str = "ObjectCreated:Put",
    *,
    size: int | None = None,
    etag: str | None = None,
    sequencer: str = "0062E99A88DC407460",
    version_id: str | None = None,
) -> dict[str, Any]:
    """One record exactly as AWS S3 writes it (keys form-encoded, '/' left as is)."""
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": sequencer}
    if event.startswith("ObjectCreated"):
        obj.update({"size": size or 0, "eTag": etag or "0" * 32})
    if version_id:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-05-04T10:11:12.123Z",
        "eventName": event,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "198.51.100.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURI"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "pixdex-images",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def sqs_lambda_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS → Lambda batch as the event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:pixdex-events",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


# --- fault injection in front of a real server ---------------------------------------------------
SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>FAULTPROXY</RequestId></Error>"
)


class FaultProxy:
    """A real HTTP proxy in front of MinIO that answers some requests with S3 faults instead of
    forwarding them: ``plan(method, path)`` returns None (forward), "slowdown" (503 SlowDown, as
    S3 throttles), "stall" (no answer for ``stall_seconds``, then a dropped connection) or
    "reset" (connection dropped at once). Requests are recorded in ``seen``."""

    def __init__(self, target: str, plan: Any, stall_seconds: float = 3.0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        self.plan = plan
        self.seen: list[tuple[str, str, str | None]] = []
        target_url = urlsplit(target)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.plan(self.command, self.path)
                proxy.seen.append((self.command, self.path, fault))
                if fault == "slowdown":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN_XML)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN_XML)
                    return
                if fault in ("stall", "reset"):
                    if fault == "stall":
                        time.sleep(stall_seconds)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                upstream = http.client.HTTPConnection(
                    target_url.hostname, target_url.port, timeout=30
                )
                # Forward headers untouched (Host included): the SigV4 signature covers them.
                upstream.request(self.command, self.path, body, dict(self.headers.items()))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                # HEAD has no body: its Content-Length is the object's size, passed on as is
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
