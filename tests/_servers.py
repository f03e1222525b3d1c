"""Real Elasticsearch and OpenSearch servers for the tests, loaded as a pytest plugin.

``scripts/search-server <dist> run`` fetches the distribution from Maven Central once (cached in
``$PIXDEX_DEV_CACHE``) and runs it in the foreground; each session fixture starts one on a free
port with a throw-away data folder and stops it at the end of the run.

- ``PIXDEX_ELASTICSEARCH_URL`` / ``PIXDEX_OPENSEARCH_URL``: use a server that is already running
  (e.g. ``scripts/search-server elasticsearch start``) instead of starting one;
- without Java and Maven the tests that need them are skipped (``_tools``; under scripts/test
  they fail); a server that cannot be fetched or started fails them, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _tools import require

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "search-server"
FETCH_TIMEOUT = 900
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - loopback
            f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=3
        ) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class SearchServer:
    """One running server: its URL, and how to stop and start it again (fault tests)."""

    dist: str
    url: str
    port: int
    data: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "SEARCH_PORT": str(self.port), "SEARCH_DATA": str(self.data)}
        log = open(self.data / "server.log", "ab")  # noqa: SIM115 - handed to the process
        self.proc = subprocess.Popen(  # noqa: S603
            [str(SCRIPT), self.dist, "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.dist} exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            if healthy(self.url):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.dist} not healthy after {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, chars: int = 3000) -> str:
        path = self.data / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _fetch(dist: str) -> None:
    try:
        subprocess.run(  # noqa: S603
            [str(SCRIPT), dist, "fetch"],
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"scripts/search-server {dist} fetch failed:\n{exc.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/search-server {dist} fetch took over {FETCH_TIMEOUT}s")


def _server(dist: str) -> Iterator[SearchServer]:
    existing = os.environ.get(f"PIXDEX_{dist.upper()}_URL")
    if existing:
        if not healthy(existing):
            pytest.fail(f"PIXDEX_{dist.upper()}_URL={existing} does not answer")
        yield SearchServer(dist, existing.rstrip("/"), 0, Path(tempfile.gettempdir()))
        return
    require("java", "mvn")
    _fetch(dist)
    port = free_port()
    # Not under pytest's tmp dir: as root the server runs as 'nobody', who cannot enter it.
    data = Path(tempfile.mkdtemp(prefix=f"pixdex-{dist}-"))
    data.chmod(0o755)
    server = SearchServer(dist, f"http://127.0.0.1:{port}", port, data)
    try:
        server.start()
    except RuntimeError as exc:
        shutil.rmtree(data, ignore_errors=True)
        pytest.fail(f"could not start {dist}: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def elasticsearch_server() -> Iterator[SearchServer]:
    yield from _server("elasticsearch")


@pytest.fixture(scope="session")
def opensearch_server() -> Iterator[SearchServer]:
    yield from _server("opensearch")


@pytest.fixture(scope="session")
def elasticsearch_url(elasticsearch_server: SearchServer) -> str:
    return elasticsearch_server.url


@pytest.fixture(scope="session")
def opensearch_url(opensearch_server: SearchServer) -> str:
    return opensearch_server.url
