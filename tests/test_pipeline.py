"""The pipeline end to end on real photos: record shape, idempotent re-runs, pruning, bad input,
and a run killed half-way."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixdex.config import Settings
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.pipeline import Pipeline, default_analyzers
from pixdex.sources.local import LocalSource

TIMESTAMP_FORMAT = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$"


@pytest.fixture(scope="session")
def analyzers():
    return default_analyzers(Settings())


@pytest.fixture
def photos(tmp_path: Path, coco_images: list[Path]) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub dir").mkdir(parents=True)
    for path in coco_images[:6]:
        shutil.copy(path, folder / path.name)
    for path in coco_images[6:10]:
        shutil.copy(path, folder / "sub dir" / path.name)
    (folder / "notes.txt").write_text("not an image, not even listed")
    return folder


def make_pipeline(analyzers, tmp_path: Path) -> Pipeline:
    return Pipeline(analyzers, SqliteIndex(tmp_path / "index.db"), batch_size=4, workers=2)


def test_records_have_the_original_fields_and_more(analyzers, photos: Path, tmp_path: Path):
    pipeline = make_pipeline(analyzers, tmp_path)
    summary = pipeline.run(LocalSource(photos))
    assert (summary.indexed, summary.failed, summary.unchanged) == (10, 0, 0)
    record = pipeline.index.get(
        str(photos.resolve()),
        "sub dir/" + sorted(p.name for p in (photos / "sub dir").iterdir())[0],
    )
    assert record is not None
    doc = record.to_json()
    # the original document: Labels [{Name, Confidence}], timestamp, bucket, key, imported-by
    for field in ("Labels", "timestamp", "bucket", "key", "imported-by"):
        assert field in doc
    assert doc["bucket"] == str(photos.resolve()) and doc["key"].startswith("sub dir/")
    import re

    assert re.match(TIMESTAMP_FORMAT, doc["timestamp"])
    assert doc["Labels"] and {"Name", "Confidence", "Parents", "Aliases"} <= set(doc["Labels"][0])
    confidences = [lb["Confidence"] for lb in doc["Labels"]]
    assert confidences == sorted(confidences, reverse=True)
    # pixdex's additions
    assert len(doc["id"]) == 40 and doc["uri"].startswith("file://")
    assert doc["width"] > 0 and doc["height"] > 0 and doc["format"] == "JPEG"
    assert doc["size"] == (photos / doc["key"]).stat().st_size
    assert len(doc["content_sha256"]) == 64
    assert doc["LabelModelVersion"]
    assert set(doc["analyzers"]) >= {"labels", "properties", "exif"}


def test_rerun_skips_unchanged_without_reading(analyzers, photos: Path, tmp_path: Path):
    pipeline = make_pipeline(analyzers, tmp_path)
    pipeline.run(LocalSource(photos))

    class CountingSource(LocalSource):
        reads = 0

        def fetch(self, ref):
            CountingSource.reads += 1
            return super().fetch(ref)

    started = time.perf_counter()
    summary = pipeline.run(CountingSource(photos))
    elapsed = time.perf_counter() - started
    assert (summary.indexed, summary.unchanged, summary.failed) == (0, 10, 0)
    assert CountingSource.reads == 0
    assert elapsed < 2.0, f"an unchanged re-run should be near-instant, took {elapsed:.2f}s"

    # touched but identical: read and hashed, not re-analyzed, fingerprint refreshed
    touched = next(photos.glob("*.jpg"))
    os.utime(touched, (time.time() + 10, time.time() + 10))
    summary = pipeline.run(CountingSource(photos))
    assert (summary.indexed, summary.unchanged) == (0, 10)
    assert CountingSource.reads == 1
    assert pipeline.run(CountingSource(photos)).unchanged == 10 and CountingSource.reads == 1

    # content changed: re-analyzed and overwritten, still one record
    other = sorted((photos / "sub dir").glob("*.jpg"))[0]
    shutil.copy(other, touched)
    summary = pipeline.run(LocalSource(photos))
    assert (summary.indexed, summary.unchanged) == (1, 9)
    assert pipeline.index.stats().records == 10


def test_vanished_files_are_removed_only_with_prune(analyzers, photos: Path, tmp_path: Path):
    pipeline = make_pipeline(analyzers, tmp_path)
    pipeline.run(LocalSource(photos))
    gone = next(photos.glob("*.jpg"))
    gone.unlink()
    assert pipeline.run(LocalSource(photos)).deleted == 0
    assert pipeline.index.stats().records == 10
    summary = pipeline.run(LocalSource(photos), prune=True)
    assert summary.deleted == 1
    assert pipeline.index.get(str(photos.resolve()), gone.name) is None
    assert pipeline.index.stats().records == 9


def test_bad_files_fail_with_reasons_and_the_run_goes_on(
    analyzers, photos: Path, tmp_path: Path, coco_images: list[Path]
):
    good = coco_images[0].read_bytes()
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.jpg").write_text("hello, I am not a JPEG\n")
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photos / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    pipeline = make_pipeline(analyzers, tmp_path)
    summary = pipeline.run(LocalSource(photos))
    assert summary.indexed == 10
    assert summary.failed == 4 and not summary.ok
    reasons = {f.key: f.reason for f in pipeline.index.failures()}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.jpg"].startswith("not an image")
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["phone.heic"].startswith("not an image")
    # fixing the file clears the failure on the next run
    (photos / "truncated.jpg").write_bytes(good)
    summary = pipeline.run(LocalSource(photos))
    assert summary.indexed == 1 and "truncated.jpg" not in {
        f.key for f in pipeline.index.failures()
    }


def test_search_finds_dogs_among_coco_photos(analyzers, tmp_path: Path, coco_dir: Path):
    """The issue's acceptance check, on the full coco128 folder."""
    import json

    pipeline = make_pipeline(analyzers, tmp_path)
    summary = pipeline.run(LocalSource(coco_dir / "images"))
    assert summary.indexed == 128 and summary.failed == 0
    data = json.loads((coco_dir / "annotations" / "instances.json").read_text())
    dog_id = next(c["id"] for c in data["categories"] if c["name"] == "dog")
    names = {im["id"]: im["file_name"] for im in data["images"]}
    dog_images = {names[a["image_id"]] for a in data["annotations"] if a["category_id"] == dog_id}
    # what `pixdex search dog` shows: labels at the default floor (55)
    hits = pipeline.index.search(SearchQuery(text="dog", limit=50, min_confidence=55)).hits
    is_dog = [any(lb.Name == "Dog" and lb.Confidence >= 55 for lb in h.record.Labels) for h in hits]
    # every photo labelled Dog comes before any that only matched a word (a Hot Dog)
    assert is_dog == sorted(is_dog, reverse=True), [h.record.key for h in hits]
    found = {h.record.key for h, dog in zip(hits, is_dog, strict=True) if dog}
    assert len(found & dog_images) >= len(dog_images) * 2 // 3, (found, dog_images)
    # most photos labelled Dog really are dog photos
    assert len(found & dog_images) / max(1, len(found)) >= 0.8, found - dog_images


def test_killed_run_loses_nothing_already_indexed(tmp_path: Path, coco_images: list[Path]):
    folder = tmp_path / "many"
    folder.mkdir()
    for path in coco_images[:48]:
        shutil.copy(path, folder / path.name)
    db = tmp_path / "killed.db"
    cmd = [
        sys.executable,
        "-m",
        "pixdex",
        "index",
        str(folder),
        "--index",
        str(db),
        "--batch-size",
        "4",
        "--quiet",
        "--no-objects",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    committed = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
        if committed >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + (
        proc.stderr.read().decode() if proc.stderr else ""
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 8 <= committed < 48

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    survivors = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert survivors >= committed and survivors % 4 == 0  # whole batches only
    orphans = conn.execute(
        "SELECT COUNT(*) FROM label_terms WHERE rid NOT IN (SELECT rid FROM records)"
    ).fetchone()[0]
    assert orphans == 0
    conn.close()
    index = SqliteIndex(db)
    for key in index.known(str(folder.resolve())):
        assert index.get(str(folder.resolve()), key).Labels  # each survivor is whole
    index.close()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    index = SqliteIndex(db)
    assert index.stats().records == 48
    index.close()


def test_a_few_photos_are_split_evenly_over_the_analysis_workers(photos: Path, tmp_path: Path):
    """An event's handful of photos (an SQS message batch of 10) goes to the analysis workers in
    equal batches, so that with one model thread per batch no core waits while the other
    analyzes most of them; a back-fill still uses full batches."""
    sizes: list[int] = []

    class Sizes:
        name, version, min_side = "sizes", "1", 0

        def analyze(self, images):
            sizes.append(len(images))
            return [{"Labels": []} for _ in images]

    index = SqliteIndex(tmp_path / "index.db")
    pipeline = Pipeline([Sizes()], index, batch_size=8, workers=2, analysis_workers=2)
    source = LocalSource(photos)
    refs = list(source.list())
    assert len(refs) == 10
    assert pipeline.process(source, refs).indexed == 10
    assert sorted(sizes) == [5, 5]
    sizes.clear()
    assert pipeline.process(source, refs[:3], force=True).indexed == 3
    assert sorted(sizes) == [1, 2]
    sizes.clear()
    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        shutil.copy(next((photos / "sub dir").iterdir()), many / f"{i}.jpg")
    assert pipeline.run(LocalSource(many)).indexed == 40
    assert sizes == [8] * 5
    index.close()
