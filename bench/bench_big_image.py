"""Cost of the biggest image Rekognition accepts, on a real ``pixdex serve``: a 10,000 x 10,000
PNG of one colour (~0.3 MB on the wire, 300 MB of pixels), sent to the Rekognition endpoint one
at a time and then several at once, with the server's RSS sampled every 20 ms.

Usage (from the repo root):
    PYTHONPATH=src:tests .venv/bin/python bench/bench_big_image.py [--repeat 3] [--parallel 4]

Prints, per phase: seconds per request, the server's peak RSS, and its RSS 3 s after the last
answer (memory handed back or not).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _serve import ServeProcess
from PIL import Image


def png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


class Sampler:
    def __init__(self, server: ServeProcess) -> None:
        self.server, self.peak, self._stop = server, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.server.rss())

    def __enter__(self) -> Sampler:
        self.peak = self.server.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ask(url: str, data: bytes) -> tuple[int, float, str]:
    body = {"Image": {"Bytes": base64.b64encode(data).decode()}, "MaxLabels": 3}
    start = time.perf_counter()
    response = httpx.post(f"{url}/rekognition/detect-labels", json=body, timeout=300)
    return response.status_code, time.perf_counter() - start, response.text[:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pixdex-big-"))
    big = png(args.side)
    env = {"PIXDEX_CACHE_DIR": str(tmp / "cache"), "PIXDEX_OBJECTS": "false"}
    mb = 2**20
    with ServeProcess(["--index", str(tmp / "i.db")], tmp / "serve.log", env) as server:
        status, seconds, text = ask(server.url, png(200))  # loads the model
        assert status == 200, text
        result: dict[str, object] = {"png_bytes": len(big), "rss_warm_mb": server.rss() // mb}
        with Sampler(server) as sampler:
            runs = [ask(server.url, big) for _ in range(args.repeat)]
        time.sleep(3)
        result["sequential"] = {
            "status": sorted({s for s, _, _ in runs}),
            "seconds": [round(t, 2) for _, t, _ in runs],
            "peak_rss_mb": sampler.peak // mb,
            "rss_3s_after_mb": server.rss() // mb,
        }
        with Sampler(server) as sampler, ThreadPoolExecutor(args.parallel) as pool:
            started = time.perf_counter()
            runs = list(pool.map(lambda _: ask(server.url, big), range(args.parallel)))
            wall = time.perf_counter() - started
        time.sleep(3)
        result["parallel"] = {
            "requests": args.parallel,
            "status": sorted({s for s, _, _ in runs}),
            "wall_seconds": round(wall, 2),
            "peak_rss_mb": sampler.peak // mb,
            "rss_3s_after_mb": server.rss() // mb,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
