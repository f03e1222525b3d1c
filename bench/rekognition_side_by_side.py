"""The same photos labelled in Rekognition's shape by both backends, and what the rate limit costs.

Usage (from the repo root, ../shared beside it; needs the dev extra for moto):
    PYTHONPATH=src python bench/rekognition_side_by_side.py [--photos N] [--timed N]

Starts two real servers on loopback — ``pixdex serve`` (its Rekognition-compatible endpoint,
answered by the local analyzers) and ``moto_server`` (moto's S3 + Rekognition) — then, for the
first N coco128 photos, prints a markdown table of the top labels from:
  1. the local analyzers directly (``pixdex detect-labels``),
  2. the Rekognition analyzer through ``pixdex serve`` (Image.Bytes),
  3. the Rekognition analyzer through moto, the photos in moto's S3 (Image.S3Object).
Then it indexes ``--timed`` photos through ``pixdex serve`` with the Rekognition analyzer at two
rates, to show the client-side rate limit at work (wall time, calls).

AWS itself cannot be reached from the development machine: no column here is Amazon's model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
BIN = Path(sys.executable).parent
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], probe: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)  # noqa: S603
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(probe, timeout=2)  # noqa: S310 - loopback
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{args[0]} exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    proc.kill()
    sys.exit(f"{args[0]} did not start: {log.read_text()[-2000:]}")


def top(labels: list, n: int = 4) -> str:
    names = [
        f"{lb['Name'] if isinstance(lb, dict) else lb.Name} "
        f"{(lb['Confidence'] if isinstance(lb, dict) else lb.Confidence):.0f}"
        for lb in labels[:n]
    ]
    return ", ".join(names) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--timed", type=int, default=32)
    args = parser.parse_args()
    os.environ.update(AWS)

    import boto3
    from botocore.config import Config

    from pixdex.analyzers.detect import LabelDetector
    from pixdex.config import Settings
    from pixdex.pipeline import build_pipeline
    from pixdex.sources import open_source

    images = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))
    tmp = Path(tempfile.mkdtemp(prefix="pixdex-rek-bench-"))
    env = {**os.environ, "PIXDEX_CONFIG": str(tmp / "none.toml"), "PIXDEX_INDEX": str(tmp / "s.db")}
    serve_port, moto_port = free_port(), free_port()
    serve = start(
        [str(BIN / "pixdex"), "serve", "--port", str(serve_port)],
        f"http://127.0.0.1:{serve_port}/api/stats",
        tmp / "serve.log",
        env,
    )
    moto = start(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        f"http://127.0.0.1:{moto_port}/moto-api/",
        tmp / "moto.log",
        env,
    )
    serve_url, moto_url = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{moto_port}"
    try:
        folder = tmp / "photos"
        folder.mkdir()
        for path in images[: max(args.photos, args.timed)]:
            shutil.copy(path, folder / path.name)
        s3 = boto3.client(
            "s3", endpoint_url=moto_url, config=Config(s3={"addressing_style": "path"})
        )
        s3.create_bucket(Bucket="photos")
        for path in images[: args.photos]:
            s3.put_object(Bucket="photos", Key=path.name, Body=path.read_bytes())

        local = LabelDetector(Settings())
        common = {"analyzer": ["rekognition"], "rekognition_region": "us-east-1"}
        runs = {}
        for name, location, extra in (
            ("serve", str(folder), {"rekognition_endpoint_url": f"{serve_url}/rekognition"}),
            (
                "moto",
                "s3://photos/",
                {"rekognition_endpoint_url": moto_url, "endpoint_url": moto_url},
            ),
        ):
            settings = Settings(index=str(tmp / f"{name}.db"), **common, **extra)
            pipeline = build_pipeline(settings)
            source = open_source(location, settings)
            refs = [r for r in source.list() if r.key in {p.name for p in images[: args.photos]}]
            summary = pipeline.process(source, refs)
            assert summary.failed == 0, summary.failures
            runs[name] = pipeline.index

        print(f"## The same {args.photos} coco128 photos, top 4 labels (name confidence)\n")
        print(
            "| photo | local analyzers (`pixdex detect-labels`) "
            "| Rekognition analyzer → `pixdex serve` (Bytes) "
            "| Rekognition analyzer → moto (S3Object) |"
        )
        print("|---|---|---|---|")
        versions = {}
        for path in images[: args.photos]:
            answer = local.detect_bytes(path.read_bytes())
            via_serve = runs["serve"].get(str(folder.resolve()), path.name)
            via_moto = runs["moto"].get("photos", path.name)
            versions = {
                "local": answer["LabelModelVersion"],
                "serve": via_serve.LabelModelVersion,
                "moto": via_moto.LabelModelVersion,
            }
            print(
                f"| {path.name} | {top(answer['Labels'])} | {top(via_serve.Labels)} "
                f"| {top(via_moto.Labels)} |"
            )
        print(
            f"| LabelModelVersion | {versions['local']} | {versions['serve']} "
            f"| {versions['moto']} |"
        )

        print(f"\n## Rate limit: {args.timed} photos through `pixdex serve`, concurrency 4\n")
        print("| rekognition_rate (calls/s) | wall time (s) | calls | photos/s |")
        print("|---|---|---|---|")
        for rate in (4.0, 50.0):
            settings = Settings(
                index=str(tmp / f"rate{rate:g}.db"),
                **common,
                rekognition={"endpoint_url": f"{serve_url}/rekognition", "rate": rate},
            )
            pipeline = build_pipeline(settings)
            began = time.perf_counter()
            summary = pipeline.run(open_source(str(folder), settings))
            took = time.perf_counter() - began
            usage = pipeline.remote_analyzers[0].usage
            assert summary.indexed == args.timed, summary
            print(f"| {rate:g} | {took:.1f} | {usage['calls']} | {args.timed / took:.1f} |")
    finally:
        for proc in (serve, moto):
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
