"""Real servers that speak Rekognition's protocol, for the Rekognition analyzer tests (a plugin).

- ``pixdex_serve``: ``pixdex serve`` started as a process on a free loopback port; its
  Rekognition-compatible endpoint answers with pixdex's local label analyzers.
- ``moto_server``: moto's server mode (``moto_server``, from ``moto[server]`` on PyPI) as a process
  on loopback: S3 and Rekognition in one server (its DetectLabels/DetectText answers are canned:
  the same labels and text for every image). Its request log shows every S3 GET.
- ``ScriptedRekognition``: a small HTTP server speaking the AWS JSON 1.1 protocol that records
  every request it receives and answers what a test scripts (throttling for a while, error codes
  per photo, labels) — what neither of the others can be made to do on demand.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # answering, even if with an error status
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{url} did not answer within {timeout}s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Process:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def pixdex_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """``pixdex serve`` on a free port, with its own empty index and the shared model cache."""
    base = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = base / "serve.log"
    env = {
        **os.environ,
        "PIXDEX_CONFIG": str(base / "none.toml"),
        "PIXDEX_INDEX": str(base / "index.db"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [str(BIN / "pixdex"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/api/stats", proc, log)
        yield Process(url, log)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """moto in server mode: S3 and Rekognition on one loopback port."""
    exe = BIN / "moto_server"
    if not exe.exists():
        pytest.fail("moto_server not installed: pip install 'moto[server]' (in the dev extra)")
    base = tmp_path_factory.mktemp("moto")
    port = free_port()
    log = base / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **AWS_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/moto-api/", proc, log)
        yield Process(url, log)
    finally:
        _stop(proc)


# --- a scripted Rekognition -------------------------------------------------------------------
@dataclass
class Received:
    """One request as the server saw it."""

    target: str  # e.g. RekognitionService.DetectLabels
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival

    @property
    def image_bytes(self) -> bytes | None:
        raw = self.body.get("Image", {}).get("Bytes")
        return base64.b64decode(raw) if raw is not None else None


Answer = tuple[int, dict[str, Any]]
Script = Callable[[Received, int], Answer]  # (request, its 0-based number) → (status, body)


def labels_answer(received: Received, number: int) -> Answer:
    """A DetectLabels/DetectText answer naming what was sent, so tests can tell photos apart."""
    image = received.body.get("Image", {})
    what = image.get("S3Object", {}).get("Name") or f"{len(received.image_bytes or b'')} bytes"
    if received.target.endswith("DetectText"):
        return 200, {
            "TextDetections": [
                {
                    "DetectedText": "STOP",
                    "Type": "LINE",
                    "Id": 0,
                    "Confidence": 99.5,
                    "Geometry": {
                        "BoundingBox": {"Width": 0.2, "Height": 0.1, "Left": 0.4, "Top": 0.3},
                        "Polygon": [
                            {"X": 0.4, "Y": 0.3},
                            {"X": 0.6, "Y": 0.3},
                            {"X": 0.6, "Y": 0.4},
                            {"X": 0.4, "Y": 0.4},
                        ],
                    },
                }
            ],
            "TextModelVersion": "3.0",
        }
    return 200, {
        "Labels": [
            {
                "Name": "Scripted",
                "Confidence": 91.5,
                "Instances": [],
                "Parents": [],
                "Aliases": [{"Name": what}],
                "Categories": [{"Name": "Test"}],
            }
        ],
        "LabelModelVersion": "scripted-1",
    }


def error(code: str, message: str = "scripted", status: int = 400) -> Answer:
    return status, {"__type": code, "Message": message}


@dataclass
class ScriptedRekognition:
    url: str
    received: list[Received] = field(default_factory=list)
    script: Script = labels_answer

    def calls(self, target: str = "DetectLabels") -> list[Received]:
        return [r for r in self.received if r.target.endswith(target)]


@pytest.fixture
def scripted() -> Iterator[ScriptedRekognition]:
    state = ScriptedRekognition(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            received = Received(self.headers.get("x-amz-target", ""), body, time.monotonic())
            with lock:
                number = len(state.received)
                state.received.append(received)
            status, answer = state.script(received, number)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/x-amz-json-1.1")
            self.send_header("content-length", str(len(payload)))
            if status >= 400:
                self.send_header("x-amzn-ErrorType", answer.get("__type", ""))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
