"""Load on a real ``pixdex serve``: concurrent searchers while an index run writes, plus heavy
requests, with the server's resident memory sampled throughout.

Usage (from the repo root, ../shared beside it):
    PYTHONPATH=src:tests .venv/bin/python bench/bench_load.py [--duration 30] [--searchers 50]
        [--heavy 2] [--no-index-run] [--rss-every 1] [--json out.json]

- The server (a ``python -m pixdex serve`` process on a loopback port) starts on an SQLite index
  holding the 128 coco128 records (labels from COCO's annotations, as in tests/test_api.py).
- The index run (``pixdex index`` of the 300 VOC 2007 photos, real analyzers, again into a new
  bucket whenever it finishes) writes into the same file for the whole window.
- ``--searchers`` asyncio clients loop over a mix of searches (labels, parents, free text,
  filters, pages) and record reads; ``--heavy`` clients ask for thumbnails at 1024 px (decoded
  from the original each time: the cache is bypassed by cycling content) and send 1-5 MP PNGs to
  the Rekognition endpoint, the requests that used to leave memory behind.
- Exit status 1 when any request failed (non-2xx or transport error) or when the server's RSS at
  the end is more than ``--rss-slack`` MB above its level after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _serve import ServeProcess
from PIL import Image
from test_api import coco_records

from pixdex.indexes.sqlite import SqliteIndex

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"

SEARCHES = [
    {"label": "person"},
    {"label": "dog"},
    {"label": "animal", "min_confidence": 60},
    {"label": ["person", "car"]},
    {"q": "dog"},
    {"q": "person bicycle"},
    {"q": "000000000"},
    {"label": "vehicle", "since": "2000-01-01"},
    {"limit": 50, "offset": 50},
    {"label": "person", "limit": 24, "offset": 24, "facets": 50},
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def add(self, kind: str, seconds: float) -> None:
        self.latency.setdefault(kind, []).append(seconds)


async def searcher(client: httpx.AsyncClient, stats: Stats, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    ids: list[str] = []
    while time.monotonic() < stop:
        if ids and rng.random() < 0.2:
            kind, url, params = "record", f"/api/images/{rng.choice(ids)}", None
        else:
            kind, url, params = "search", "/api/search", rng.choice(SEARCHES)
        start = time.perf_counter()
        try:
            response = await client.get(url, params=params)
        except httpx.HTTPError as exc:
            stats.errors.append(f"{kind} at {time.monotonic() - stop:.0f}s: {exc!r}")
            continue
        stats.add(kind, time.perf_counter() - start)
        if response.status_code != 200:
            stats.errors.append(f"{kind} {params}: {response.status_code} {response.text[:200]}")
        elif kind == "search" and not ids:
            ids = [hit["id"] for hit in response.json()["hits"]]


def big_png(rng: random.Random) -> bytes:
    width, height = rng.choice([(1280, 960), (2048, 1536), (2592, 1944)])
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(
        0, 255, (height // 8, width // 8, 3), dtype=np.uint8
    )
    image = Image.fromarray(noise).resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


async def heavy(client: httpx.AsyncClient, stats: Stats, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    page = (await client.get("/api/search", params={"limit": 200})).json()["hits"]
    pngs = [big_png(rng) for _ in range(3)]
    pngs = [p for p in pngs if len(p) <= 5 * 1024 * 1024]
    while time.monotonic() < stop:
        if rng.random() < 0.5 or not pngs:
            hit = rng.choice(page)
            kind, call = (
                "thumbnail",
                client.get(
                    f"/api/images/{hit['id']}/thumb", params={"size": rng.choice([512, 1024])}
                ),
            )
        else:
            body = {"Image": {"Bytes": base64.b64encode(rng.choice(pngs)).decode()}}
            kind, call = "detect-labels", client.post("/rekognition/detect-labels", json=body)
        start = time.perf_counter()
        try:
            response = await call
        except httpx.HTTPError as exc:
            stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            continue
        stats.add(kind, time.perf_counter() - start)
        if response.status_code != 200:
            stats.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")


def index_runs(db: Path, folder: Path, stop: threading.Event, log: list[str]) -> None:
    """``pixdex index`` of the folder's photos, each run from a new folder of symlinks to them
    (a new bucket: every run analyzes and writes 300 new records, whatever the version)."""
    runs = 0
    while not stop.is_set():
        view = db.parent / f"voc-run-{runs}"
        view.mkdir()
        for photo in sorted(folder.glob("*.jpg")):
            (view / photo.name).symlink_to(photo)
        cmd = [sys.executable, "-m", "pixdex", "index", str(view), "--index", str(db), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not stop.is_set():
            time.sleep(0.2)
        if proc.poll() is None:
            proc.terminate()
        _, err = proc.communicate(timeout=60)
        runs += 1
        log.append(f"run {runs}: exit {proc.returncode} {err.strip()[-300:]}")


def sample_rss(server: ServeProcess, stop: threading.Event, every: float, out: list) -> None:
    start = time.monotonic()
    while not stop.wait(every):
        out.append((round(time.monotonic() - start, 1), server.rss() / 2**20))


async def drive(args: argparse.Namespace, server: ServeProcess, stats: Stats) -> None:
    # Idle connections expire before uvicorn's 5 s keep-alive closes them: with both at 5 s a
    # request can race the server's close and fail with ReadError (a client set-up artefact).
    limits = httpx.Limits(max_connections=args.searchers + args.heavy + 4, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        stop = time.monotonic() + args.duration
        tasks = [searcher(client, stats, stop, seed) for seed in range(args.searchers)]
        tasks += [heavy(client, stats, stop, 1000 + seed) for seed in range(args.heavy)]
        await asyncio.gather(*tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--searchers", type=int, default=50)
    parser.add_argument("--heavy", type=int, default=0)
    parser.add_argument("--no-index-run", action="store_true")
    parser.add_argument("--rss-every", type=float, default=1.0)
    parser.add_argument("--rss-slack", type=float, default=64.0, help="MB above warm level")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pixdex-load-"))
    db = tmp / "index.db"
    index = SqliteIndex(db)
    index.upsert(coco_records(SHARED / "coco128"))
    index.close()
    env = {"PIXDEX_CACHE_DIR": str(tmp / "cache"), "PIXDEX_OBJECTS": "false"}
    stats, rss, index_log = Stats(), [], []
    with ServeProcess(["--index", str(db)], tmp / "serve.log", env) as server:
        httpx.get(f"{server.url}/api/search", params={"label": "dog"}, timeout=60)
        baseline = server.rss() / 2**20
        stop = threading.Event()
        threads = [threading.Thread(target=sample_rss, args=(server, stop, args.rss_every, rss))]
        if not args.no_index_run:
            voc = SHARED / "voc2007" / "images"
            threads.append(threading.Thread(target=index_runs, args=(db, voc, stop, index_log)))
        for thread in threads:
            thread.start()
        started = time.monotonic()
        try:
            asyncio.run(drive(args, server, stats))
        finally:
            elapsed = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        time.sleep(3)
        idle = server.rss() / 2**20
        log_tail = server.output()[-2000:]
        final = httpx.get(f"{server.url}/api/stats", timeout=60).json()

    warm = [mb for t, mb in rss if t >= args.duration * args.warmup]
    warm_level = warm[0] if warm else baseline
    end_level = statistics.median([mb for _, mb in rss[-5:]]) if rss else baseline
    summary = {
        "duration_s": round(elapsed, 1),
        "searchers": args.searchers,
        "heavy": args.heavy,
        "index_runs": index_log,
        "records_after": final["records"],
        "records_before": 128,
        "requests": {k: len(v) for k, v in stats.latency.items()},
        "errors": len(stats.errors),
        "first_errors": stats.errors[:10],
        "latency_ms": {
            kind: {
                "p50": round(percentile(v, 50) * 1000, 1),
                "p99": round(percentile(v, 99) * 1000, 1),
                "max": round(max(v) * 1000, 1),
            }
            for kind, v in stats.latency.items()
        },
        "throughput_rps": round(sum(map(len, stats.latency.values())) / elapsed, 1),
        "rss_mb": {
            "before_load": round(baseline, 1),
            "after_warmup": round(warm_level, 1),
            "peak": round(max((mb for _, mb in rss), default=baseline), 1),
            "end_of_load": round(end_level, 1),
            "idle_3s_after": round(idle, 1),
        },
        "rss_samples": rss,
        "server_log_tail": log_tail,
    }
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text)
    printable = {k: v for k, v in summary.items() if k not in ("rss_samples", "server_log_tail")}
    print(json.dumps(printable, indent=2))
    grown = end_level - warm_level
    ok = not stats.errors and grown <= args.rss_slack
    if grown > args.rss_slack:
        print(f"RSS grew {grown:.0f} MB after warm-up (slack {args.rss_slack:.0f} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
