"""(7) Scale-out back-fill: ``pixdex enqueue`` a MinIO prefix onto an ElasticMQ queue, then 1, 2
and 4 ``pixdex worker`` processes drain it into OpenSearch. Each worker runs under
``/usr/bin/time -v`` (CPU time, peak RSS); the clock runs from the workers' start (model loading
included, as on a fresh machine) until the queue is empty and every photo is searchable.

Every run checks "exactly once in effect": as many records as photos, and the workers' own count
of analyzed photos equals the number of photos (a photo analyzed twice would show there)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from system.runs import clean_env

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ScaleRun:
    workers: int
    photos: int
    enqueue_s: float
    wall_s: float
    cpu_s: float
    peak_rss_mb: float  # largest of the workers
    analyzed: int  # photos the workers analyzed, all together
    redelivered: int

    @property
    def img_s(self) -> float:
        return self.photos / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / self.photos


def _waiting(sqs, url: str) -> int:  # noqa: ANN001
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def _count(search_url: str, name: str) -> int:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{search_url}/{name}/_count", timeout=10) as r:  # noqa: S310
            return int(json.load(r)["count"])
    except OSError:
        return 0


def run(minio, sqs_server, search_url: str, uri: str, photos: int, workers: int) -> ScaleRun:  # noqa: ANN001
    sqs = sqs_server.client()
    url = sqs.create_queue(
        QueueName=f"scale-{workers}-{time.monotonic_ns()}",
        Attributes={"VisibilityTimeout": "300"},
    )["QueueUrl"]
    env = clean_env(**minio.env())
    name = f"scale-{workers}-{time.monotonic_ns()}"
    index = f"opensearch+{search_url}/{name}"
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pixdex", "enqueue", uri, "--sqs-queue-url", url,
         "--sqs-endpoint-url", sqs_server.endpoint, "--endpoint-url", minio.endpoint, "--quiet"],
        env=env, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    enqueue_s = time.perf_counter() - t0
    if done.returncode != 0 or f"enqueued {photos} of {photos}" not in done.stderr:
        raise RuntimeError(f"enqueue failed: {done.stderr[-2000:]}")
    args = ["/usr/bin/time", "-v", sys.executable, "-m", "pixdex", "worker",
            "--sqs-queue-url", url, "--sqs-endpoint-url", sqs_server.endpoint,
            "--endpoint-url", minio.endpoint, "--index", index]  # fmt: skip
    # stderr to files, not pipes: a worker's log must never fill a pipe nobody reads and stall it
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(workers)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(args, env=env, cwd=REPO, stderr=log) for log in logs]
        failed = False
        try:
            while _waiting(sqs, url) or _count(search_url, name) < photos:
                if any(p.poll() is not None for p in procs):
                    failed = True
                    break
                time.sleep(0.5)
            wall = time.perf_counter() - t0
        finally:
            for p in procs:
                # /usr/bin/time ignores SIGINT and forwards nothing: stop the worker (its child)
                # itself; SIGTERM makes it finish its batch, print its stats and exit
                _signal_children(p.pid)
        errs = []
        for p, log in zip(procs, logs, strict=True):
            p.wait(timeout=120)
            log.seek(0)
            errs.append(log.read())
    if failed:
        raise RuntimeError("a worker exited: " + "\n".join(e[-2000:] for e in errs))
    cpu = rss = 0.0
    analyzed = redelivered = 0
    for err in errs:
        cpu += _field(err, "User time (seconds)") + _field(err, "System time (seconds)")
        rss = max(rss, _field(err, "Maximum resident set size (kbytes)") / 1024)
        stats = re.search(r"WorkerStats\((.*?)\)", err.replace("\n", ""))
        if stats is None:
            raise RuntimeError(f"no worker stats:\n{err[-2000:]}")
        numbers = dict(re.findall(r"(\w+)=(\d+)", stats.group(1)))
        analyzed += int(numbers["indexed"])
        redelivered += int(numbers["retried"])
    if _count(search_url, name) != photos or analyzed != photos:
        raise RuntimeError(f"{workers} workers: {analyzed} analyzed for {photos} photos")
    sqs.delete_queue(QueueUrl=url)
    return ScaleRun(workers, photos, enqueue_s, wall, cpu, rss, analyzed, redelivered)


def _signal_children(pid: int) -> None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGTERM)


def _field(text: str, name: str) -> float:
    match = re.search(rf"{re.escape(name)}: ([\d.]+)", text)
    if not match:
        raise RuntimeError(f"/usr/bin/time printed no {name!r}:\n{text[-2000:]}")
    return float(match.group(1))
