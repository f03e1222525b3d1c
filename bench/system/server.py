"""(6) The HTTP server: ``POST /rekognition/detect-labels`` under 1, 4 and 16 concurrent clients,
then server RSS over a long run (10,000 requests by default), against a real ``pixdex serve``
process.

Clients are threads of this process with one keep-alive connection each, sending DetectLabels
requests (``Image.Bytes``, base64) for corpus photos; one request in ``LARGE_EVERY`` carries a
large image instead (12 and 24 MP JPEGs, 2 and 3 MP PNGs, all under Rekognition's 5 MB). A 503
(queue full) is retried after its Retry-After and counted. The server's RSS and CPU time are read
from /proc every second. The clients share the machine with the server: their own CPU time is
reported beside the figures.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from system.corpus import sources
from system.latency import p50_p99
from system.runs import clean_env
from system.servers import free_port, rss_mb

REPO = Path(__file__).resolve().parents[2]
LARGE_EVERY = 20
CLIENTS = (1, 4, 16)


def large_images() -> list[tuple[str, bytes]]:
    """Deterministic large photos made from coco128 (upscaled: camera-sized pixel counts)."""
    from PIL import Image

    photos = sources()
    out = []
    for i, (size, fmt, quality) in enumerate(
        [((4032, 3024), "JPEG", 92), ((6000, 4000), "JPEG", 90), ((1600, 1200), "PNG", None),
         ((2048, 1536), "PNG", None)]
    ):  # fmt: skip
        with Image.open(photos[7 * i + 5]) as im:
            big = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        big.save(buf, fmt, **({"quality": quality} if quality else {}))
        data = buf.getvalue()
        if len(data) <= 5 * 1024 * 1024:
            out.append((f"{size[0]}x{size[1]} {fmt}", data))
    return out


def body(data: bytes) -> bytes:
    return json.dumps({"Image": {"Bytes": base64.b64encode(data).decode()}}).encode()


@dataclass
class Level:
    clients: int
    requests: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    refused: int
    server_cpu_ms: float  # per request
    client_cpu_ms: float  # per request, this process (the load generator)

    @property
    def img_s(self) -> float:
        return self.requests / self.wall_s


@dataclass
class Soak:
    requests: int
    wall_s: float
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    samples: list[tuple[int, float]] = field(default_factory=list)  # (requests done, RSS MB)
    refused: int = 0
    large: int = 0

    @property
    def growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1


class Server:
    """``pixdex serve`` in its own process on a free port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        env = clean_env()
        # its log to a file, not a pipe nobody reads while it serves (a full pipe stalls it)
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pixdex", "serve", "--port", str(self.port),
             "--index", str(folder / "serve.db")],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2)  # noqa: S310
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(f"pixdex serve did not start: {self.log.read()}") from None
                time.sleep(0.2)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> float:
        return rss_mb(self.proc.pid)[0]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _load(
    port: int, bodies: list[bytes], clients: int, requests: int, on_done=None
) -> tuple[list[float], int, float]:
    """``requests`` requests from ``clients`` threads; (latencies s, refusals, wall s)."""
    latencies: list[float] = []
    refused = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        nonlocal refused
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            payload = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            while True:
                conn.request("POST", "/rekognition/detect-labels", payload, headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status != 503:
                    break
                with lock:
                    refused += 1
                time.sleep(float(response.getheader("Retry-After") or 1))
            if response.status != 200:
                raise RuntimeError(f"request {i}: HTTP {response.status}: {answer[:300]!r}")
            with lock:
                latencies.append(time.perf_counter() - t0)
                done = len(latencies)
            if on_done is not None:
                on_done(done)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, refused, time.perf_counter() - t0


def measure(
    photos: list[Path], soak_requests: int, per_client: int = 40, log=print
) -> tuple[list[Level], Soak, list[str]]:
    pool = photos[:500]
    large = large_images()
    bodies = []
    for i, path in enumerate(pool):
        if i % LARGE_EVERY == LARGE_EVERY - 1:
            bodies.append(body(large[(i // LARGE_EVERY) % len(large)][1]))
        else:
            bodies.append(body(path.read_bytes()))
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            _load(server.port, bodies[:8], 2, 16)  # model load, first allocations
            levels = []
            for clients in CLIENTS:
                n = per_client * clients if clients > 1 else per_client * 2
                cpu0, c0 = server.cpu_s(), time.process_time()
                latencies, refused, wall = _load(server.port, bodies, clients, n)
                p50, p99 = p50_p99(latencies)
                level = Level(
                    clients,
                    n,
                    wall,
                    p50 * 1000,
                    p99 * 1000,
                    refused,
                    (server.cpu_s() - cpu0) * 1000 / n,
                    (time.process_time() - c0) * 1000 / n,
                )
                log(
                    f"  {clients:2} client(s): {level.img_s:5.1f} img/s, p50 {level.p50_ms:.0f} ms,"
                    f" p99 {level.p99_ms:.0f} ms, refused {refused}"
                )
                levels.append(level)
            soak = _soak(server, bodies, soak_requests, log)
        finally:
            server.stop()
    return levels, soak, [name for name, _ in large]


def _soak(server: Server, bodies: list[bytes], requests: int, log) -> Soak:
    start = server.rss()
    samples: list[tuple[int, float]] = [(0, start)]
    done = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append((done[0], server.rss()))

    def count(n: int) -> None:
        done[0] = n

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, refused, wall = _load(server.port, bodies, 16, requests, count)
    stop.set()
    sampler.join()
    end = server.rss()
    samples.append((requests, end))
    soak = Soak(
        requests,
        wall,
        start,
        end,
        max(r for _, r in samples),
        samples,
        refused,
        sum(1 for i in range(requests) if i % len(bodies) % LARGE_EVERY == LARGE_EVERY - 1),
    )
    log(
        f"  {requests} requests, 16 clients: RSS {start:.0f} → {end:.0f} MB (max"
        f" {soak.rss_max_mb:.0f}), {requests / wall:.1f} img/s, refused {refused}"
    )
    return soak
