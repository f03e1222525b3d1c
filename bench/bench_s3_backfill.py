"""S3 back-fill on a real MinIO (built by scripts/minio): listing, download concurrency, resumable
re-runs at the scale of the original sample (~16,000 objects), and full analysis from S3 vs disk.

    PYTHONPATH=src python bench/bench_s3_backfill.py [--objects 16000] [--skip-analysis]

Starts MinIO on a free 127.0.0.1 port with a temporary data dir (killed at the end). Prints the
markdown recorded in docs/benchmarks.md ("S3 back-fill").
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from pixdex.indexes.sqlite import SqliteIndex
from pixdex.integrations.aws import make_client
from pixdex.integrations.s3.source import S3Source
from pixdex.pipeline import Pipeline
from pixdex.sources.local import LocalSource

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
KEY, SECRET = "bench", "bench-secret-key"


class SizeOnly:
    """Analyzer that only reads the decoded size: isolates listing/download/decode/index cost."""

    name, version, min_side = "size", "1", 0

    def analyze(self, images: Any) -> list[dict[str, Any]]:
        return [{"Labels": [{"Name": f"W{i.width}", "Confidence": 99.0}]} for i in images]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_minio(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = subprocess.run(
        [str(REPO / "scripts" / "minio"), "build"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": KEY, "MINIO_ROOT_PASSWORD": SECRET}
    proc = subprocess.Popen(
        [binary, "server", "--quiet", "--address", f"127.0.0.1:{port}", "--console-address",
         f"127.0.0.1:{free_port()}", str(data)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=1)  # noqa: S310
            return proc, endpoint
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("MinIO did not start")


class LatencyProxy:
    """Forwards to MinIO after ``delay`` seconds per request: a local MinIO answers in ~1 ms, S3
    in tens of ms, and that latency is what concurrent downloads hide."""

    def __init__(self, target: str, delay: float) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        host, port = urlsplit(target).hostname, urlsplit(target).port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                time.sleep(delay)
                upstream = http.client.HTTPConnection(host, port, timeout=30)
                upstream.request("GET", self.path, headers=dict(self.headers.items()))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def upload_all(client: Any, bucket: str, items: list[tuple[str, bytes]]) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items))
    return time.perf_counter() - t0


def tiny_jpegs(n: int) -> list[bytes]:
    """n distinct small JPEGs (64x48 noise, ~3 KB): stands in for many photos at low disk cost."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        img = Image.frombytes("RGB", (64, 48), rng.randbytes(64 * 48 * 3))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=16000)
    parser.add_argument("--skip-analysis", action="store_true")
    args = parser.parse_args()

    photos = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))
    tmp = Path(tempfile.mkdtemp(prefix="pixdex-bench-s3-"))
    proc, endpoint = start_minio(tmp / "data")
    os.environ.update(
        AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_EC2_METADATA_DISABLED="true"
    )
    rows: list[tuple[str, str]] = []
    try:
        client = make_client(endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")

        # 1. Many objects: back-fill, then a re-run where everything is unchanged.
        items = [
            (f"sample/p{i % 8}/img_{i:05}.jpg", b) for i, b in enumerate(tiny_jpegs(args.objects))
        ]
        up = upload_all(client, "bench", items)
        rows.append((f"upload {args.objects:,} small JPEGs (16 threads)", f"{up:.1f} s"))
        source = S3Source.from_uri("s3://bench/sample/", endpoint_url=endpoint)
        t0 = time.perf_counter()
        listed = sum(1 for _ in source.list())
        rows.append(
            (
                f"list {listed:,} keys (ListObjectsV2, 1,000/page)",
                f"{time.perf_counter() - t0:.2f} s",
            )
        )
        index = SqliteIndex(tmp / "many.db")
        pipeline = Pipeline([SizeOnly()], index, batch_size=16, workers=4)
        t0 = time.perf_counter()
        first = pipeline.run(source)
        took = time.perf_counter() - t0
        rows.append((
            f"back-fill {first.indexed:,} objects, size-only analyzer, 4 workers",
            f"{took:.1f} s ({first.indexed / took:,.0f} objects/s)",
        ))  # fmt: skip
        gets = []
        source = S3Source.from_uri("s3://bench/sample/", endpoint_url=endpoint)
        source.client.meta.events.register(
            "provide-client-params.s3.GetObject", lambda params, **_: gets.append(1)
        )
        t0 = time.perf_counter()
        again = pipeline.run(source)
        rows.append((
            f"re-run, all {again.unchanged:,} unchanged (resume/no-op)",
            f"{time.perf_counter() - t0:.2f} s, {len(gets)} downloads",
        ))  # fmt: skip
        index.close()

        # 2. Real photos: download + decode throughput by worker count.
        real = [(f"coco/{k}/{p.name}", p.read_bytes()) for k in range(4) for p in photos]
        upload_all(client, "bench", real)
        megabytes = sum(len(b) for _, b in real) / 1e6
        for workers in (1, 2, 4, 8):
            index = SqliteIndex(":memory:")
            pipeline = Pipeline([SizeOnly()], index, batch_size=16, workers=workers)
            t0 = time.perf_counter()
            summary = pipeline.run(S3Source.from_uri("s3://bench/coco/", endpoint_url=endpoint))
            took = time.perf_counter() - t0
            n = summary.indexed
            rows.append((
                f"fetch+decode {n} coco128 photos ({megabytes:.0f} MB), {workers} workers",
                f"{took:.2f} s ({n / took:.0f} photos/s, {megabytes / took:.0f} MB/s)",
            ))  # fmt: skip

        # 2b. The same through 50 ms of added latency per request (S3-like first-byte times).
        proxy = LatencyProxy(endpoint, 0.05)
        for workers in (1, 2, 4, 8):
            index = SqliteIndex(":memory:")
            pipeline = Pipeline([SizeOnly()], index, batch_size=16, workers=workers)
            t0 = time.perf_counter()
            summary = pipeline.run(
                S3Source.from_uri("s3://bench/coco/", endpoint_url=proxy.endpoint)
            )
            took = time.perf_counter() - t0
            n = summary.indexed
            rows.append((
                f"same, +50 ms latency per request, {workers} workers",
                f"{took:.2f} s ({n / took:.0f} photos/s, {megabytes / took:.0f} MB/s)",
            ))  # fmt: skip
        proxy.server.shutdown()

        # 3. Full default analysis from S3 vs from disk.
        if not args.skip_analysis:
            from pixdex.config import Settings
            from pixdex.pipeline import default_analyzers

            analyzers = default_analyzers(Settings())
            folder = tmp / "photos"
            folder.mkdir()
            for p in photos:
                shutil.copy(p, folder)
            for name, src in (
                (
                    "S3 (MinIO)",
                    lambda: S3Source.from_uri("s3://bench/coco/0/", endpoint_url=endpoint),
                ),
                ("local folder", lambda: LocalSource(folder)),
            ):
                index = SqliteIndex(":memory:")
                pipeline = Pipeline(analyzers, index, batch_size=16, workers=2)
                t0 = time.perf_counter()
                summary = pipeline.run(src())
                took = time.perf_counter() - t0
                rows.append((
                    f"default analyzers, {summary.indexed} coco128 photos from {name}",
                    f"{took:.1f} s ({summary.indexed / took:.1f} photos/s)",
                ))  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {sys.platform}")
    print("\n| measurement | result |\n| --- | --- |")
    for what, result in rows:
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
