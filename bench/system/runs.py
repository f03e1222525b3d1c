"""(3) ``pixdex index`` folder → SQLite and (4) MinIO → OpenSearch, each as a real ``pixdex``
process under ``/usr/bin/time -v``: wall time (img/s), CPU time (user + sys, ms per photo) and
peak RSS (the kernel's maximum resident set size of the process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIXDEX = [sys.executable, "-m", "pixdex"]


@dataclass
class Run:
    what: str
    photos: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    output: str

    @property
    def img_s(self) -> float:
        return self.photos / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / self.photos


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any PIXDEX_* setting (defaults, as a user gets them),
    and no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXDEX_")}
    env["PIXDEX_CONFIG"] = os.devnull
    env["PYTHONPATH"] = str(REPO / "src")
    return {**env, **extra}


def timed(what: str, args: Sequence[str], photos: int, env: dict[str, str]) -> Run:
    """Run ``args`` under /usr/bin/time -v; raises with the output when it fails."""
    cmd = ["/usr/bin/time", "-v", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    text = done.stderr

    def field(name: str) -> float:
        match = re.search(rf"{re.escape(name)}: ([\d.]+)", text)
        if not match:
            raise RuntimeError(f"/usr/bin/time -v printed no {name!r}:\n{text[-2000:]}")
        return float(match.group(1))

    cpu = field("User time (seconds)") + field("System time (seconds)")
    rss = field("Maximum resident set size (kbytes)") / 1024
    return Run(what, photos, wall, cpu, rss, done.stdout + text)


def index_folder(folder: Path, photos: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index.db"
        run = timed(
            "pixdex index folder → SQLite",
            [*PIXDEX, "index", str(folder), "--index", str(db), "--quiet"],
            photos,
            clean_env(),
        )
        _check_indexed(run, photos)
        return run


def detect_labels_cli(paths: list[Path]) -> Run:
    """``pixdex detect-labels`` over the photos: the CLI's DetectLabels throughput (the same label
    analyzers the HTTP endpoint runs, batched as ``pixdex index`` batches)."""
    run = timed(
        "pixdex detect-labels FILES…",
        [*PIXDEX, "detect-labels", *map(str, paths)],
        len(paths),
        clean_env(),
    )
    lines = [line for line in run.output.splitlines() if line.startswith('{"Image"')]
    if len(lines) != len(paths):
        raise RuntimeError(f"detect-labels answered {len(lines)} of {len(paths)} photos")
    return run


def upload(client, bucket: str, prefix: str, paths: list[Path]) -> float:  # noqa: ANN001
    client.create_bucket(Bucket=bucket)
    t0 = time.perf_counter()

    def put(path: Path) -> None:
        client.put_object(Bucket=bucket, Key=prefix + path.name, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, paths))
    return time.perf_counter() - t0


def index_s3(minio, search_url: str, bucket: str, prefix: str, photos: int) -> Run:  # noqa: ANN001
    env = clean_env(**minio.env())
    run = timed(
        "pixdex index MinIO → OpenSearch",
        [*PIXDEX, "index", f"s3://{bucket}/{prefix}", "--endpoint-url", minio.endpoint,
         "--index", f"opensearch+{search_url}/bench", "--quiet"],
        photos,
        env,
    )  # fmt: skip
    _check_indexed(run, photos)
    return run


def _check_indexed(run: Run, photos: int) -> None:
    match = re.search(r"indexed(?: \(analyzed\))?\s+(\d+)", run.output)
    if not match or int(match.group(1)) != photos:
        raise RuntimeError(f"{run.what}: expected {photos} indexed:\n{run.output[-2000:]}")
