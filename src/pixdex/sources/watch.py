"""Follow a local folder (``pixdex watch FOLDER``): the S3-event semantics for a file system.

watchdog reports created/modified/moved/deleted files (inotify on Linux, FSEvents on macOS,
polling as a fallback). Events for a path are debounced: a path is handled only once no event
has touched it for ``debounce`` seconds, so a file being copied in is read once, whole, rather
than half-written at its first ``created`` event. Then, like the S3 event consumers, the file
system is the truth: a path that exists is (re)indexed — unchanged content is skipped by the
pipeline — and a path that is gone is removed from the index. Moves are a removal plus a
creation, and a directory deleted or moved away removes every record under it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pixdex.sources.base import IMAGE_SUFFIXES, has_image_suffix
from pixdex.sources.local import LocalSource

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

    from pixdex.pipeline import Pipeline, Summary

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 1.0


class _Pending:
    """Paths touched by events, with when they were last touched; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: dict[str, float] = {}
        self.dirs: dict[str, float] = {}  # directories to rescan / to drop from the index

    def touch_file(self, rel: str) -> None:
        with self._lock:
            self.files[rel] = time.monotonic()

    def touch_dir(self, rel: str) -> None:
        with self._lock:
            self.dirs[rel] = time.monotonic()

    def due(self, debounce: float) -> tuple[list[str], list[str]]:
        """Paths quiet for ``debounce`` seconds, removed from the pending set."""
        cutoff = time.monotonic() - debounce
        with self._lock:
            files = sorted(p for p, t in self.files.items() if t <= cutoff)
            dirs = sorted(p for p, t in self.dirs.items() if t <= cutoff)
            for p in files:
                del self.files[p]
            for p in dirs:
                del self.dirs[p]
        return files, dirs

    def __len__(self) -> int:
        with self._lock:
            return len(self.files) + len(self.dirs)


def _handler(root: Path, pending: _Pending):  # noqa: ANN202 - watchdog handler built lazily
    from watchdog.events import FileSystemEventHandler

    def rel(path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        try:
            relative = Path(text).relative_to(root)
        except ValueError:
            return None  # moved outside the folder
        if any(part.startswith(".") for part in relative.parts):
            return None  # hidden files and folders: editors' and rsync's temp files
        return relative.as_posix()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return
            paths = [event.src_path]
            if event.event_type == "moved":
                paths.append(event.dest_path)
            for path in paths:
                key = rel(path)
                if key is None or key == ".":
                    continue
                if event.is_directory:
                    if event.event_type != "modified":  # a dir's mtime changes with its entries
                        pending.touch_dir(key)
                else:
                    pending.touch_file(key)

    return Handler()


def watch_folder(
    folder: str | os.PathLike[str],
    pipeline: Pipeline,
    *,
    stop_event: threading.Event | None = None,
    debounce: float = DEFAULT_DEBOUNCE,
    initial_scan: bool = True,
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    polling: bool = False,
    on_change: Callable[[Summary], None] | None = None,
    ready: threading.Event | None = None,
) -> Summary:
    """Index ``folder`` and keep the index in step with it until ``stop_event`` is set.

    ``initial_scan`` first back-fills (and prunes records of files deleted while not watching).
    ``polling`` uses watchdog's polling observer (network mounts, where inotify sees nothing).
    ``on_change`` is called with each applied batch's summary; ``ready`` is set once the
    observer is running. Returns the total summary."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    from pixdex.pipeline import Summary

    stop = stop_event or threading.Event()
    source = LocalSource(folder)
    root = source.root
    total = Summary()
    pending = _Pending()
    observer = PollingObserver(timeout=min(1.0, debounce)) if polling else Observer()
    observer.schedule(_handler(root, pending), str(root), recursive=True)
    observer.start()
    try:
        # Start observing before the scan so nothing written during the scan is missed.
        if initial_scan:
            summary = pipeline.run(source, prune=True)
            total.add(summary)
            if on_change:
                on_change(summary)
        if ready:
            ready.set()
        tick = max(0.05, min(0.5, debounce / 4))
        while not stop.wait(tick):
            files, dirs = pending.due(debounce)
            if files or dirs:
                summary = _apply(root, pipeline, files, dirs, suffixes)
                total.add(summary)
                if on_change:
                    on_change(summary)
    finally:
        observer.stop()
        observer.join(timeout=10)
    return total


def _apply(
    root: Path, pipeline: Pipeline, files: list[str], dirs: list[str], suffixes: tuple[str, ...]
) -> Summary:
    from pixdex.pipeline import Summary

    bucket = str(root)
    present: set[str] = set()
    gone: set[str] = set()
    for key in files:
        if not has_image_suffix(key, suffixes):
            continue
        (present if (root / key).is_file() else gone).add(key)
    for key in dirs:
        path = root / key
        if path.is_dir():  # created or moved in: its files may not each have had an event
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if not name.startswith(".") and has_image_suffix(name, suffixes):
                        present.add((Path(dirpath) / name).relative_to(root).as_posix())
        else:  # deleted or moved away: whatever the index holds under it goes
            known = pipeline.index.known(bucket, key + "/")
            gone.update(k for k in known if not (root / k).exists())
    summary = Summary()
    if present:
        source = LocalSource(root)
        refs = []
        for key in sorted(present):
            try:
                refs.append(source.ref_for(root / key))
            except OSError:
                gone.add(key)  # vanished after the event
        # Narrow the pipeline's Index.known() lookup to these keys, not the whole folder.
        source.prefix = os.path.commonprefix([ref.key for ref in refs])
        summary.add(pipeline.process(source, refs))
    if gone:
        summary.deleted += pipeline.remove(bucket, sorted(gone))
    log.info(
        "watch: %d indexed, %d unchanged, %d failed, %d removed",
        summary.indexed,
        summary.unchanged,
        summary.failed,
        summary.deleted,
    )
    return summary
