"""End to end on MinIO with the real AWS CLI and the real default analyzers on coco128 photos:
``aws s3 sync`` as in the original instructions → back-fill → the same records a local run gives;
delete → gone; the Lambda handler building its pipeline from the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _minio import aws_record

from pixdex.config import Settings
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.integrations.s3 import lambda_handler
from pixdex.integrations.s3.source import S3Source
from pixdex.pipeline import Pipeline, default_analyzers
from pixdex.sources.local import LocalSource

LAYOUT = {  # local path under the synced folder → coco128 image index
    "2024/café/ñandú 1.jpg": 0,
    "2024/a+b = c.jpg": 1,
    "2024/sub dir/x.jpg": 2,
    "2025/日本/写真.jpeg": 3,
    "2025/y.JPG": 4,
    "z.jpg": 5,
}


@pytest.fixture(scope="module")
def analyzers():
    return default_analyzers(Settings())


@pytest.fixture(scope="session")
def aws_bin() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI (awscli, dev extra) is not installed")
    return found


def aws(aws_bin: str, minio, *args: str) -> str:
    env = {**os.environ, **minio.env(), "AWS_PAGER": ""}
    done = subprocess.run(
        [aws_bin, *args, "--endpoint-url", minio.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def photos(tmp_path: Path, coco_images: list[Path]) -> Path:
    folder = tmp_path / "photos"
    for rel, i in LAYOUT.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(coco_images[i], folder / rel)
    (folder / "2024" / "notes.txt").write_text("not an image: not listed")
    (folder / "2024" / "broken.jpg").write_bytes(b"<html>an error page saved as .jpg</html>")
    return folder


def test_aws_s3_sync_backfill_matches_a_local_run_then_delete(
    aws_bin, minio, s3_env, bucket, photos: Path, analyzers, tmp_path: Path
):
    out = aws(aws_bin, minio, "s3", "sync", str(photos), f"s3://{bucket}/photos")
    assert out.count("upload:") == len(LAYOUT) + 2

    pipeline = Pipeline(analyzers, SqliteIndex(tmp_path / "s3.db"), batch_size=4, workers=2)
    summary = pipeline.run(S3Source.from_uri(f"s3://{bucket}/photos/"))
    assert (summary.indexed, summary.failed) == (len(LAYOUT), 1)
    assert summary.failures[0].key == "photos/2024/broken.jpg"
    assert "not an image" in summary.failures[0].reason

    # The very same analysis as indexing the folder itself: bytes arrived intact, keys decoded.
    local = Pipeline(analyzers, SqliteIndex(tmp_path / "local.db"), batch_size=4, workers=2)
    local.run(LocalSource(photos))
    for rel in LAYOUT:
        from_s3 = pipeline.index.get(bucket, f"photos/{rel}")
        from_disk = local.index.get(str(photos.resolve()), rel)
        assert from_s3 is not None and from_disk is not None, rel
        assert from_s3.Labels and from_s3.LabelModelVersion
        assert [lb.to_json() for lb in from_s3.Labels] == [lb.to_json() for lb in from_disk.Labels]
        assert from_s3.content_sha256 == from_disk.content_sha256
        # and it is findable by its best label
        top = from_s3.Labels[0].Name
        hits = pipeline.index.search(SearchQuery(labels=[top], bucket=bucket, limit=50)).hits
        assert f"photos/{rel}" in [h.record.key for h in hits]

    # Resumable: a second run downloads nothing it has indexed.
    again = pipeline.run(S3Source.from_uri(f"s3://{bucket}/photos/"))
    assert (again.indexed, again.unchanged) == (0, len(LAYOUT))

    # Delete one with the CLI, another by syncing a local deletion; prune.
    aws(aws_bin, minio, "s3", "rm", f"s3://{bucket}/photos/2024/a+b = c.jpg")
    (photos / "2024" / "a+b = c.jpg").unlink()  # or the sync below would upload it again
    (photos / "2025" / "y.JPG").unlink()
    out = aws(aws_bin, minio, "s3", "sync", "--delete", str(photos), f"s3://{bucket}/photos")
    assert "delete:" in out
    summary = pipeline.run(S3Source.from_uri(f"s3://{bucket}/photos/"), prune=True)
    assert summary.deleted == 2
    assert pipeline.index.get(bucket, "photos/2024/a+b = c.jpg") is None
    assert pipeline.index.get(bucket, "photos/2025/y.JPG") is None
    assert len(pipeline.index.known(bucket)) == len(LAYOUT) - 2


def test_lambda_handler_builds_the_default_pipeline_from_the_environment(
    aws_bin, minio, s3_env, bucket, coco_images: list[Path], tmp_path: Path, monkeypatch
):
    index_path = tmp_path / "lambda.db"
    monkeypatch.setenv("PIXDEX_INDEX", str(index_path))
    key = "uploads/Ünïcode photo +1.jpg"
    aws(aws_bin, minio, "s3", "cp", str(coco_images[6]), f"s3://{bucket}/{key}")
    head = minio.client().head_object(Bucket=bucket, Key=key)
    created = aws_record(bucket, key, size=head["ContentLength"], etag=head["ETag"].strip('"'))
    lambda_handler.reset()
    try:
        result = lambda_handler.handler({"Records": [created]}, None)
        assert result["indexed"] == 1 and result["retry"] == 0
        record = SqliteIndex(index_path).get(bucket, key)
        assert record is not None and record.Labels and record.LabelModelVersion
        assert set(record.analyzers) >= {"labels", "properties", "exif"}
        aws(aws_bin, minio, "s3", "rm", f"s3://{bucket}/{key}")
        removed = aws_record(bucket, key, "ObjectRemoved:Delete")
        assert lambda_handler.handler({"Records": [removed]}, None)["deleted"] == 1
    finally:
        lambda_handler.reset()
    index = SqliteIndex(index_path)
    assert index.get(bucket, key) is None and index.stats().records == 0
    index.close()
