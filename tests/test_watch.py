"""``watch_folder`` on a real folder with real file-system events (inotify via watchdog)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pixdex.sources.watch import watch_folder

DEBOUNCE = 0.4


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


SUMMARIES: list = []


@pytest.fixture
def watched(tmp_path: Path, tiny_pipeline, coco_images: list[Path]) -> Iterator[Path]:
    """A watched folder (one photo in it at start); applied batches' summaries in SUMMARIES."""
    SUMMARIES.clear()
    folder = tmp_path / "photos"
    (folder / "old").mkdir(parents=True)
    shutil.copy(coco_images[0], folder / "old" / "first.jpg")
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            watch_folder(
                folder,
                tiny_pipeline,
                stop_event=stop,
                debounce=DEBOUNCE,
                ready=ready,
                on_change=SUMMARIES.append,
            )
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), errors
    yield folder
    stop.set()
    thread.join(timeout=10)
    assert not errors, errors


def keys(pipeline, folder: Path) -> list[str]:
    return sorted(pipeline.index.known(str(folder.resolve())))


def test_initial_scan_then_create_modify_move_delete(
    watched: Path, tiny_pipeline, coco_images: list[Path]
):
    folder = watched
    index = tiny_pipeline.index
    bucket = str(folder.resolve())
    assert keys(tiny_pipeline, folder) == ["old/first.jpg"]

    # A file written slowly, in two halves: indexed once, whole, never as a truncated failure.
    data = coco_images[1].read_bytes()
    with (folder / "new café 1.jpg").open("wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(DEBOUNCE / 2)
        out.write(data[len(data) // 2 :])
    (folder / ".partial.jpg").write_bytes(b"editor temp file")  # hidden: ignored
    (folder / "notes.txt").write_text("not an image")  # not an image name: ignored
    wait_for(lambda: "new café 1.jpg" in keys(tiny_pipeline, folder), "created file")
    record = index.get(bucket, "new café 1.jpg")
    assert record is not None and record.size == len(data)
    # initial scan + one batch for the new file: the half-written file was never analysed (the
    # batch's summary is reported just after its records are written: wait for it too)
    wait_for(lambda: len(SUMMARIES) >= 2, "the new file's summary")
    assert [(s.indexed, s.failed) for s in SUMMARIES] == [(1, 0), (1, 0)]

    # Overwritten with another picture: re-analysed.
    before = (record.width, record.height)
    shutil.copy(coco_images[2], folder / "new café 1.jpg")
    wait_for(
        lambda: (
            (r := index.get(bucket, "new café 1.jpg")) is not None
            and r.content_sha256 != record.content_sha256
        ),
        "re-index after modification",
    )
    after = index.get(bucket, "new café 1.jpg")
    assert after is not None and after.size == coco_images[2].stat().st_size
    assert (after.width, after.height) != before or after.content_sha256 != record.content_sha256

    # Renamed: the old key goes, the new one comes.
    (folder / "new café 1.jpg").rename(folder / "old" / "renamed.jpg")
    wait_for(lambda: keys(tiny_pipeline, folder) == ["old/first.jpg", "old/renamed.jpg"], "rename")

    # Deleted.
    (folder / "old" / "first.jpg").unlink()
    wait_for(lambda: keys(tiny_pipeline, folder) == ["old/renamed.jpg"], "deletion")


def test_directories_moved_in_moved_out_and_removed(
    watched: Path, tiny_pipeline, coco_images: list[Path], tmp_path: Path
):
    folder = watched
    outside = tmp_path / "outside" / "album"
    (outside / "inner").mkdir(parents=True)
    for i, path in enumerate(coco_images[3:6]):
        shutil.copy(path, outside / "inner" / f"{i}.jpg")

    shutil.move(str(outside), str(folder / "album"))  # one event for a whole tree
    expected = ["album/inner/0.jpg", "album/inner/1.jpg", "album/inner/2.jpg", "old/first.jpg"]
    wait_for(lambda: keys(tiny_pipeline, folder) == expected, "moved-in directory")

    shutil.move(str(folder / "album"), str(tmp_path / "outside" / "back"))  # moved away
    wait_for(lambda: keys(tiny_pipeline, folder) == ["old/first.jpg"], "moved-out directory")

    shutil.rmtree(folder / "old")
    wait_for(lambda: keys(tiny_pipeline, folder) == [], "removed directory")
