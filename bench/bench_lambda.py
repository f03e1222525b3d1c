"""What the Lambda function needs: package size and memory of one invocation, measured.

    PYTHONPATH=src python bench/bench_lambda.py

1. Package size: ``pip install --target`` of pixdex's runtime dependencies (from pyproject.toml,
   plus boto3) as Lambda's python3.12 x86_64 would get them (manylinux wheels), plus the built
   ONNX model files from the cache dir.
2. Memory and time: a fresh Python process calls
   ``pixdex.integrations.s3.lambda_handler.handler`` with a real S3 ObjectCreated event for a
   coco128 photo stored in a real MinIO (cold: import + pipeline build + one image; then warm
   invocations), and reports its peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_s3_backfill import KEY, SECRET, SHARED, start_minio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLATFORMS = [
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux2014_x86_64",
]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def package_size(tmp: Path) -> dict[str, float]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    target = tmp / "package"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
    cmd += [f"--platform={p}" for p in PLATFORMS]
    cmd += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    subprocess.run([*cmd, *deps, "boto3"], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "."],
        check=True,
        cwd=REPO,
    )
    from pixdex.config import Settings

    models = Settings().cache_dir / "models"
    onnx = sum(p.stat().st_size for p in models.glob("*.onnx")) if models.is_dir() else 0
    sizes = {p.name: du(p) for p in target.iterdir() if p.is_dir()}
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
    return {
        "site_packages_mb": du(target) / 1e6,
        "boto3_botocore_mb": (sizes.get("botocore", 0) + sizes.get("boto3", 0)) / 1e6,
        "onnx_models_mb": onnx / 1e6,
        "largest": {k: round(v / 1e6, 1) for k, v in top},
    }


CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from pixdex.integrations.s3 import lambda_handler
    events = json.loads(sys.argv[1])  # one per key: every invocation analyses a new object
    timings = []
    for event in events:
        t = time.perf_counter()
        result = lambda_handler.handler(event, None)
        timings.append(time.perf_counter() - t)
        assert result["indexed"] == 1, result
    print(json.dumps({
        "cold_s": time.perf_counter() - t0 - sum(timings[1:]),
        "warm_s": sorted(timings[1:])[1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def invocation(tmp: Path) -> dict[str, float]:
    from pixdex.integrations.aws import make_client

    proc, endpoint = start_minio(tmp / "data")
    try:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PIXDEX_S3__ENDPOINT_URL": endpoint,
            "PIXDEX_INDEX": str(tmp / "index.db"),
            "PYTHONPATH": str(REPO / "src"),
        }
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        client = make_client(endpoint_url=endpoint)
        client.create_bucket(Bucket="photos")
        photo = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))[0]
        events = []
        for i in range(4):  # the same photo under 4 keys: a cold and 3 warm invocations
            key = f"uploads/p{i}.jpg"
            etag = client.put_object(Bucket="photos", Key=key, Body=photo.read_bytes())["ETag"]
            obj = {"key": key, "size": photo.stat().st_size, "eTag": etag.strip('"')}
            record = {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "photos"}, "object": obj},
            }
            events.append({"Records": [record]})
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(events)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pixdex-bench-lambda-") as tmp:
        result = {"package": package_size(Path(tmp)), "invocation": invocation(Path(tmp))}
    result["peak_rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
