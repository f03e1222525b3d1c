"""Hostile and awkward files (tests/_hostile.py) through every door, with the real analyzers:
``pixdex index`` of a folder and of a MinIO bucket, the API's file/thumbnail routes and the
Rekognition endpoint. Every good file is indexed exactly as it is (format, upright size, labels),
every bad one is named with a one-line reason, nothing crashes, nothing is a 500."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _hostile import Case, corpus, write
from _http import LocalClient
from PIL import Image

from pixdex.api.app import create_app
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex

REPO = Path(__file__).resolve().parents[1]
DOG = REPO / "samples" / "000000000042.jpg"


def pixdex(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixdex", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def check_outcomes(index: SqliteIndex, bucket: str, cases: dict[str, Case]) -> None:
    known = index.known(bucket)
    failures = {f.key: f.reason for f in index.failures(bucket)}
    for key, case in cases.items():
        if case.fails:
            assert key not in known, key
            assert case.fails in failures.get(key, ""), (key, failures.get(key))
            assert "\n" not in failures[key]
        else:
            record = index.get(bucket, key)
            assert record is not None, (key, failures.get(key))
            assert (record.format, (record.width, record.height)) == (case.format, case.size), key
            assert record.Labels, key
    assert len(known) + len(failures) == len(cases)


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return corpus(DOG)


@pytest.fixture(scope="module")
def folder_index(cases, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The corpus indexed from a folder by the real CLI (object detector on)."""
    tmp = tmp_path_factory.mktemp("hostile")
    folder, db = tmp / "photos", tmp / "index.db"
    write(cases, folder)
    done = pixdex("index", str(folder), "--index", str(db), "--quiet")
    return folder, db, done.stderr + f"\nexit {done.returncode}"


def test_a_folder_of_hostile_files(folder_index, cases):
    folder, db, output = folder_index
    assert output.endswith("exit 1")  # some failed; everything else indexed
    assert "Traceback" not in output and "XNNPACK" not in output and "Warning" not in output
    for key, case in cases.items():
        if case.fails:
            assert f"failed {key}:" in output, key
    index = SqliteIndex(db)
    check_outcomes(index, str(folder.resolve()), cases)
    # EXIF-rotated: labelled from the upright picture, so the same labels as the upright file
    bucket = str(folder.resolve())
    upright = index.get(bucket, "dog.jpg")
    rotated = index.get(bucket, "rotated-exif.jpg")
    dog = {r.key: {lb.Name: lb.Confidence for lb in r.Labels}["Dog"] for r in (upright, rotated)}
    assert min(dog.values()) >= 55 and abs(dog["dog.jpg"] - dog["rotated-exif.jpg"]) < 10, dog
    top = {lb.Name for lb in upright.Labels[:5]}
    assert len(top & {lb.Name for lb in rotated.Labels[:5]}) >= 4
    index.close()
    # a rerun reads nothing new and names the same failures again
    again = pixdex("index", str(folder), "--index", str(db), "--quiet")
    assert again.returncode == 1
    assert re.search(r"indexed \(analyzed\)\s+0\s", again.stderr)


def test_a_bucket_of_hostile_objects(minio, s3_env, bucket, cases, tmp_path: Path):
    client = minio.client()
    for key, case in cases.items():
        client.put_object(Bucket=bucket, Key=key, Body=case.data)
    db = tmp_path / "s3.db"
    done = pixdex(
        "index", f"s3://{bucket}/", "--index", str(db), "--quiet", "--no-objects", env=s3_env
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    index = SqliteIndex(db)
    check_outcomes(index, bucket, cases)  # keys come back byte for byte: spaces, +, %, 日本, 🐶
    index.close()


def test_every_indexed_file_is_served_and_every_case_answered(folder_index, cases, tmp_path):
    folder, db, _ = folder_index
    index = SqliteIndex(db)
    app = create_app(Settings(index=str(db), objects=False), index)
    bucket = str(folder.resolve())
    with LocalClient(app) as client:
        for key in index.known(bucket):
            record = index.get(bucket, key)
            original = client.get(f"/api/images/{record.id}/file")
            assert original.status_code == 200 and original.content == cases[key].data, key
            thumb = client.get(f"/api/images/{record.id}/thumb", params={"size": 128})
            assert thumb.status_code == 200, (key, thumb.text)
            assert max(Image.open(io.BytesIO(thumb.content)).size) <= 128
        for key, case in cases.items():
            body = {"Image": {"Bytes": base64.b64encode(case.data).decode()}}
            response = client.post("/rekognition/detect-labels", json=body)
            assert response.status_code in (200, 400), (key, response.status_code)
            if response.status_code == 400:
                assert response.json()["__type"] in (
                    "InvalidImageFormatException",
                    "ImageTooLargeException",
                    "InvalidParameterException",
                ), key
            elif case.format not in ("JPEG", "PNG"):
                pytest.fail(f"{key}: {case.format} accepted; Rekognition takes JPEG and PNG")
    index.close()
