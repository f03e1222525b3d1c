"""JPEG thumbnails for the gallery, made once and cached in memory (LRU, bounded by bytes) and on
disk under ``<cache_dir>/thumbs`` so a restarted server does not decode every photo again.

The cache key holds the image's content hash (or listing fingerprint), so a re-indexed, changed
photo gets a new thumbnail instead of a stale one. Sizes come from a small fixed set: the disk
cache stays bounded whatever sizes clients ask for.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from pixdex.imaging import decode
from pixdex.records import Record

log = logging.getLogger(__name__)

THUMB_SIZES = (64, 128, 256, 512, 1024)
JPEG_QUALITY = 82


def thumb_key(record: Record, size: int) -> str:
    """Stable name for one record's thumbnail of one size and content version."""
    version = record.content_sha256 or record.fingerprint or record.timestamp
    digest = hashlib.sha1(f"{record.id}\x00{version}".encode()).hexdigest()[:24]
    return f"{digest}-{size}"


#: Thumbnails made at once. Each holds its original's pixels while it is made (a 100 MP PNG
#: is ~300 MB; JPEGs are decoded at reduced scale), so a burst of cold thumbnails for big photos
#: must not multiply that by the thread pool's 40 threads.
DECODE_SLOTS = threading.BoundedSemaphore(4)


def make_thumbnail(data: bytes, size: int, max_pixels: int) -> bytes:
    """JPEG whose longer side is at most ``size``; EXIF orientation applied, alpha on white.
    JPEG draft mode decodes at the smallest DCT scale that still covers ``size``."""
    with DECODE_SLOTS:
        decoded = decode(data, min_side=size, max_pixels=max_pixels)
        image = decoded.image
        image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        del decoded
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=size >= 512)
    return out.getvalue()


class ThumbnailCache:
    """Memory LRU in front of an optional disk directory; thread-safe; disk errors only log."""

    def __init__(self, directory: Path | None, memory_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("thumbnail disk cache disabled: cannot create %s: %s", directory, exc)
                self.directory = None

    def _path(self, key: str) -> Path | None:
        # Two-level fan-out keeps directories small for libraries of 100k+ photos.
        return None if self.directory is None else self.directory / key[:2] / f"{key}.jpg"

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The cached bytes and where they came from ("memory" or "disk"), or None."""
        with self._lock:
            data = self._memory.get(key)
            if data is not None:
                self._memory.move_to_end(key)
                return data, "memory"
        path = self._path(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        self._remember(key, data)
        return data, "disk"

    def put(self, key: str, data: bytes) -> None:
        self._remember(key, data)
        path = self._path(key)
        if path is None:
            return
        tmp: str | None = None
        try:
            path.parent.mkdir(exist_ok=True)
            # Atomic: a concurrent reader never sees half a JPEG.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            log.warning("cannot write thumbnail %s: %s", path, exc)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > self.memory_bytes:
            return
        with self._lock:
            old = self._memory.pop(key, None)
            if old is not None:
                self._used -= len(old)
            self._memory[key] = data
            self._used += len(data)
            while self._used > self.memory_bytes:
                _, evicted = self._memory.popitem(last=False)
                self._used -= len(evicted)
