"""The face analyzer as users meet it: ``pixdex detect-faces`` (DetectFaces' JSON), ``pixdex
index --faces`` (FaceDetails in the records, descriptors never shown), off by default, and
added to or removed from an index by ``reindex --reanalyze`` without re-running the rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from pixdex.analyzers.faces import FaceAnalyzer, decode_descriptor
from pixdex.cli import app
from pixdex.imaging import decode
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Record

runner = CliRunner()
#: coco128 photos with a clear face each (hand-checked, tests/data/face_reference.json)
FACE_PHOTO = "000000000036.jpg"
NO_FACE_PHOTO = "000000000009.jpg"  # bowls of food


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(threads=1)


def test_detect_faces_prints_rekognition_json(coco_dir: Path) -> None:
    images = coco_dir / "images"
    one = run("detect-faces", str(images / FACE_PHOTO))
    assert one.exit_code == 0, one.output
    faces = json.loads(one.stdout)["FaceDetails"]
    assert len(faces) == 1
    face = faces[0]
    assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    box = face["BoundingBox"]
    assert 0 <= box["Left"] < box["Left"] + box["Width"] <= 1
    assert 0 <= box["Top"] < box["Top"] + box["Height"] <= 1
    assert [lm["Type"] for lm in face["Landmarks"]] == [
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    ]
    for lm in face["Landmarks"]:  # the landmarks lie inside the face
        assert box["Left"] <= lm["X"] <= box["Left"] + box["Width"]
        assert box["Top"] <= lm["Y"] <= box["Top"] + box["Height"]
    assert set(face["Pose"]) == {"Roll", "Yaw", "Pitch"}
    assert set(face["Quality"]) == {"Brightness", "Sharpness"}
    assert 50 <= face["Confidence"] <= 100

    several = run("detect-faces", str(images / FACE_PHOTO), str(images / NO_FACE_PHOTO), "nope")
    assert several.exit_code == 1  # one file missing: reported, the others answered
    lines = [json.loads(line) for line in several.stdout.splitlines()]
    assert [line["Image"] for line in lines] == [
        str(images / FACE_PHOTO),
        str(images / NO_FACE_PHOTO),
    ]
    assert lines[1]["FaceDetails"] == []
    assert "nope" in several.stderr and "Traceback" not in several.output


def test_faces_are_grouped_only_when_good_enough(analyzer: FaceAnalyzer, coco_dir: Path) -> None:
    photo = Image.open(coco_dir / "images" / FACE_PHOTO).convert("RGB")
    sharp = analyzer.faces(decode(_jpeg(photo)))
    assert len(sharp) == 1 and sharp[0].Grouping
    vector = decode_descriptor(sharp[0].descriptor or "")
    assert vector.shape == (128,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-3

    blurred = analyzer.faces(decode(_jpeg(photo.filter(ImageFilter.GaussianBlur(4)))))
    assert all(not f.Grouping for f in blurred)  # kept, shown, but never grouped

    small = photo.resize((photo.width // 4, photo.height // 4))  # the face is ~30 px
    found = analyzer.faces(decode(_jpeg(small)))
    assert all(not f.Grouping for f in found)


def test_index_with_faces_and_reanalyze(tmp_path: Path, coco_dir: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (FACE_PHOTO, NO_FACE_PHOTO):
        shutil.copy(coco_dir / "images" / name, folder / name)
    db = str(tmp_path / "index.db")

    assert run("index", str(folder), "--index", db, "--quiet").exit_code == 0
    records = _records(db)
    assert all(r.FaceDetails is None and "faces" not in r.analyzers for r in records.values())

    added = run("reindex", "--index", db, "--reanalyze", "--faces")
    assert added.exit_code == 0, added.output
    assert "2 by the new or changed analyzers only" in added.stderr
    records = _records(db)
    faces = records[FACE_PHOTO].FaceDetails or []
    assert len(faces) == 1 and records[NO_FACE_PHOTO].FaceDetails == []
    assert faces[0].FaceId and faces[0].descriptor
    assert records[FACE_PHOTO].FaceModelVersion

    again = run("index", str(folder), "--index", db, "--faces", "--force", "--quiet")
    assert again.exit_code == 0
    assert _records(db)[FACE_PHOTO].FaceDetails[0].FaceId == faces[0].FaceId  # stable id

    shown = json.loads(run("search", "person", "--index", db, "--json").stdout)["hits"]
    face = next(h for h in shown if h["key"] == FACE_PHOTO)["FaceDetails"][0]
    assert "descriptor" not in face and "embedding" not in shown[0]

    removed = run("reindex", "--index", db, "--reanalyze", "--no-faces")
    assert removed.exit_code == 0
    assert all(r.FaceDetails is None for r in _records(db).values())


def _records(db: str) -> dict[str, Record]:
    index = SqliteIndex(db)
    try:
        rows = index._db.execute("SELECT doc FROM records").fetchall()
        return {r.key: r for r in (Record.model_validate_json(doc) for (doc,) in rows)}
    finally:
        index.close()


def _jpeg(image: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()
