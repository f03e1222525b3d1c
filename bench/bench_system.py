#!/usr/bin/env python3
"""The whole system in one run, on one deterministic corpus: how close pixdex runs to what this
machine allows, at every scale (issue 10).

    .venv/bin/python bench/bench_system.py                 # everything, 16,000 photos (~1.5 h
                                                           # on 2 cores), results into
                                                           # docs/benchmarks.md
    .venv/bin/python bench/bench_system.py --n 1000 --only limit,naive,index --no-doc

Sections (``--only``/``--skip`` take their names):

- ``limit``    per-photo CPU time of every stage at its best batch/threads, and the img/s it
               implies on this machine's cores (``system/limit.py``);
- ``naive``    one photo at a time through the same analyzers, nothing batched or overlapped;
- ``index``    ``pixdex index`` folder → SQLite, a real process: img/s, CPU/photo, peak RSS;
- ``profile``  py-spy on ``pixdex index`` (a 1,000-photo part): where each thread's time goes;
- ``s3``       MinIO → OpenSearch, both started by the repo's scripts on loopback;
- ``search``   search p50/p99 at 100,000 records on SQLite and OpenSearch;
- ``scaleout`` ``pixdex enqueue`` + 1, 2, 4 ``pixdex worker`` processes (MinIO, ElasticMQ,
               OpenSearch) on a 2,000-photo part;
- ``server``   DetectLabels over HTTP with 1, 4, 16 clients, then RSS over 10,000 requests; and
               ``pixdex detect-labels`` on the same photos, the CLI it is compared with.

Ratios are computed from figures of this one run only. The machine is shared: each section
records the load average before and after it, and CPU-time figures (which other jobs distort
least) are given beside wall-clock ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from system import corpus, limit, profile, report, runs, scaleout, search, server, servers  # noqa: E402

SECTIONS = ("limit", "naive", "index", "profile", "s3", "search", "scaleout", "server")


def log(message: str) -> None:
    print(message, flush=True)


def machine() -> dict[str, Any]:
    import numpy
    import onnxruntime
    import PIL

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) / 1024**2
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
    }


class Run:
    """Results by section, with the load average around each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = dt.datetime.now(dt.UTC)
        self.results: dict[str, Any] = {"machine": machine(), "load": {}, "args": vars(args)}
        self.results["started"] = self.started.isoformat(timespec="seconds")

    @contextlib.contextmanager
    def section(self, name: str):
        before = os.getloadavg()[0]
        t0 = time.perf_counter()
        log(f"== {name} (load average {before:.1f})")
        yield
        after = os.getloadavg()[0]
        self.results["load"][name] = (round(before, 1), round(after, 1))
        log(f"   {name}: {time.perf_counter() - t0:.0f} s (load average {after:.1f})")
        if self.args.json:  # so far, after every section: a run cut short keeps what it measured
            self.args.json.write_text(json.dumps(plain(self.results), indent=1, default=str))

    def put(self, name: str, value: Any) -> None:
        self.results[name] = value


def plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out = asdict(value)
        for attr in ("img_s", "cpu_ms", "growth", "speedup", "busy_img_s"):
            if hasattr(value, attr) and attr not in out:
                out[attr] = getattr(value, attr)
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16000, help="photos in the corpus")
    ap.add_argument("--sample", type=int, default=512, help="photos for limit and naive")
    ap.add_argument("--profile-n", type=int, default=1000)
    ap.add_argument("--search-records", type=int, default=100_000)
    ap.add_argument("--search-rounds", type=int, default=200)
    ap.add_argument("--scaleout-n", type=int, default=2000)
    ap.add_argument("--server-requests", type=int, default=10_000)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--skip", default="")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument(
        "--json", type=Path, help="also write the raw results here (after each section)"
    )
    ap.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="measure nothing: write the docs from the raw results of an earlier run",
    )
    args = ap.parse_args()
    if args.report:
        results = json.loads(args.report.read_text())
        results.setdefault("finished", "(cut short)")
        write_docs(results, args.no_doc)
        return
    wanted = [s for s in args.only.split(",") if s and s not in args.skip.split(",")]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")

    run = Run(args)
    paths = corpus.photos(args.n)
    folder = corpus.ensure(args.n)
    run.put("corpus", corpus.describe(paths))
    log(f"corpus: {run.results['corpus']}")
    sample = paths[: args.sample]
    cores = run.results["machine"]["cores"]

    with contextlib.ExitStack() as stack:
        started: dict[str, Any] = {}

        def need(name: str) -> Any:
            if name not in started:
                log(f"   starting {name} …")
                start = {
                    "minio": servers.minio,
                    "opensearch": servers.opensearch,
                    "elasticmq": servers.elasticmq,
                }[name]
                started[name] = stack.enter_context(start())
            return started[name]

        if "limit" in wanted:
            with run.section("limit"):
                run.put("limit", limit.measure_limit(sample, cores, log=log))
        if "naive" in wanted:
            with run.section("naive"):
                run.put("naive", limit.measure_naive(sample))
                log(f"   naive: {run.results['naive'].img_s:.1f} img/s")
        if "index" in wanted:
            with run.section("index"):
                run.put("index", runs.index_folder(folder, args.n))
                log(f"   index: {run.results['index'].img_s:.1f} img/s")
        if "profile" in wanted:
            with run.section("profile"):
                part = corpus.ensure(min(args.profile_n, args.n))
                run.put("profile", profile.run(part, min(args.profile_n, args.n)))
        if "s3" in wanted:
            with run.section("s3"):
                minio, search_server = need("minio"), need("opensearch")
                up = runs.upload(minio.client(), "bench", "corpus/", paths)
                log(f"   uploaded {len(paths)} photos in {up:.0f} s")
                run.put("s3_upload_s", up)
                run.put("s3", runs.index_s3(minio, search_server.url, "bench", "corpus/", args.n))
                run.put("opensearch_version", search_server.version)
                log(f"   s3: {run.results['s3'].img_s:.1f} img/s")
        if "search" in wanted:
            with run.section("search"):
                with tempfile.TemporaryDirectory() as tmp:
                    found, load, grew = search.sqlite_latencies(
                        args.search_records, args.search_rounds, Path(tmp), log=log
                    )
                run.put("search_memory_load_s", load)
                run.put("search_memory_mb", grew)
                found += search.opensearch_latencies(
                    need("opensearch").url, args.search_records, args.search_rounds, log=log
                )
                run.put("search", found)
                run.put("search_warm_passes", search.WARM_PASSES)
        if "scaleout" in wanted:
            with run.section("scaleout"):
                minio, search_server, sqs = need("minio"), need("opensearch"), need("elasticmq")
                part = paths[: args.scaleout_n]
                runs.upload(minio.client(), "scale", "part/", part)
                found = []
                for workers in (1, 2, 4):
                    result = scaleout.run(
                        minio, sqs, search_server.url, "s3://scale/part/", len(part), workers
                    )
                    log(f"   {workers} worker(s): {result.img_s:.1f} img/s")
                    found.append(result)
                run.put("scaleout", found)
        if "server" in wanted:
            with run.section("server"):
                pool = paths[:500]
                run.put("cli_detect", runs.detect_labels_cli(pool))
                log(f"   pixdex detect-labels: {run.results['cli_detect'].img_s:.1f} img/s")
                levels, soak, large = server.measure(paths, args.server_requests, log=log)
                run.put("server", {"levels": levels, "soak": soak, "large": large})

    results = plain(run.results)
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    write_docs(results, args.no_doc)


def write_docs(results: dict[str, Any], no_doc: bool) -> None:
    markdown = report.markdown(results)
    print()
    print(report.ratio_table(results))
    if not no_doc:
        report.write_doc(REPO / "docs" / "benchmarks.md", markdown)
        log("wrote docs/benchmarks.md")
        scaling = report.scaling(results)
        if scaling is not None:
            doc = REPO / "docs" / "benchmarks.md"
            report.write_block(doc, report.SCALING_BEGIN, report.SCALING_END, scaling)
            log("wrote the 100-million-photo block of docs/benchmarks.md")


if __name__ == "__main__":
    main()
