"""Real servers for the benchmark, started by the repo's own scripts on 127.0.0.1 free ports and
stopped at the end: MinIO (``scripts/minio``), OpenSearch (``scripts/search-server``), ElasticMQ
(``scripts/elasticmq``). The same scripts the tests use; nothing is mocked."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
MINIO_USER, MINIO_SECRET = "pixdex-bench", "pixdex-bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(*args: str, timeout: float = 1800) -> str:
    done = subprocess.run(
        [str(SCRIPTS / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Minio:
    endpoint: str
    pid: int

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": MINIO_USER,
            "AWS_SECRET_ACCESS_KEY": MINIO_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        from pixdex.integrations.aws import make_client

        for name, value in self.env().items():
            os.environ.setdefault(name, value)
        return make_client(endpoint_url=self.endpoint, max_pool_connections=32)


@contextlib.contextmanager
def minio() -> Iterator[Minio]:
    binary = _script("minio", "build")
    data = Path(tempfile.mkdtemp(prefix="pixdex-bench-minio-"))
    port = free_port()
    env = {
        **os.environ,
        "MINIO_ROOT_USER": MINIO_USER,
        "MINIO_ROOT_PASSWORD": MINIO_SECRET,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    proc = subprocess.Popen(
        [binary, "server", "--quiet", "--address", f"127.0.0.1:{port}",
         "--console-address", f"127.0.0.1:{free_port()}", str(data / "data")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(f"{endpoint}/minio/health/ready", proc, 60, "MinIO")
        yield Minio(endpoint, proc.pid)
    finally:
        _stop(proc)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Search:
    url: str
    pid: int
    version: str


@contextlib.contextmanager
def opensearch() -> Iterator[Search]:
    home = _script("search-server", "opensearch", "fetch")
    data = Path(tempfile.mkdtemp(prefix="pixdex-bench-opensearch-"))
    data.chmod(0o755)  # as root the server runs as 'nobody'
    port = free_port()
    env = {**os.environ, "SEARCH_PORT": str(port), "SEARCH_DATA": str(data)}
    with (data / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(SCRIPTS / "search-server"), "opensearch", "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s", proc, 240, "OpenSearch")
        yield Search(url, proc.pid, Path(home).name)
    finally:
        _stop(proc)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Sqs:
    endpoint: str

    def client(self):  # noqa: ANN201 - a boto3 SQS client
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )


@contextlib.contextmanager
def elasticmq() -> Iterator[Sqs]:
    port = free_port()
    proc = subprocess.Popen(
        [str(SCRIPTS / "elasticmq"), "start", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(f"{endpoint}/?Action=ListQueues", proc, 120, "ElasticMQ")
        yield Sqs(endpoint)
    finally:
        _stop(proc)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
