"""From an indexed record to its image bytes — only for records in the index, never a path a
client names.

Local folders: ``bucket`` is the indexed folder and ``key`` the path under it; the resolved path
must stay inside that folder (a ``..`` key or a symlink swapped in after indexing that points
elsewhere is refused), and must be a regular file. S3 objects: a short-lived presigned URL (the
browser fetches straight from the bucket) or the object's bytes via boto3, with the same endpoint
and credential chain as indexing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pixdex.api.errors import ApiError
from pixdex.config import Settings
from pixdex.integrations import load
from pixdex.records import Record

#: Pillow format name → media type browsers understand; anything else is sent as a download.
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "ICO": "image/x-icon",
}


def media_type(record: Record) -> str | None:
    return MEDIA_TYPES.get((record.format or "").upper())


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path


@dataclass(frozen=True, slots=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None


def locate(record: Record) -> LocalFile | S3Object:
    """Where the record's bytes live; ``ApiError(404)`` when this server cannot reach them."""
    if record.uri.startswith("s3://"):
        return S3Object(record.bucket, record.key, record.version_id)
    if record.uri and not record.uri.startswith("file://"):
        raise ApiError(404, f"images at {record.uri.split(':', 1)[0]}:// cannot be served")
    root = Path(record.bucket)
    if not root.is_absolute():
        raise ApiError(404, f"folder {record.bucket!r} is not an absolute path on this server")
    try:
        real_root = root.resolve(strict=True)
        path = (root / record.key).resolve(strict=True)
    except (OSError, RuntimeError):
        raise ApiError(404, f"image file is gone: {record.key}") from None
    if not path.is_relative_to(real_root):
        raise ApiError(403, f"refusing to serve {record.key}: it resolves outside {record.bucket}")
    if not path.is_file():
        raise ApiError(404, f"not a regular file: {record.key}")
    return LocalFile(path)


class RemoteMedia(Protocol):
    """Photos in a bucket, as the API serves them (the ``s3`` integration's ``media``)."""

    def presigned_url(self, obj: S3Object, media: str | None) -> str: ...

    def open(self, obj: S3Object) -> tuple[Iterator[bytes], int | None]: ...

    def head(self, obj: S3Object) -> int | None: ...

    def read(self, obj: S3Object, max_bytes: int | None = None) -> bytes: ...


class S3Access:
    """The bucket access of the ``s3`` integration, made on first use: a server with only local
    folders never needs it (nor its extra)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._media: RemoteMedia | None = None
        self._lock = threading.Lock()

    def _get(self) -> RemoteMedia:
        with self._lock:
            if self._media is None:
                module = load("s3", "serving photos from S3", "media")
                self._media = module.S3Media(self._settings.s3)
            return self._media

    def presigned_url(self, obj: S3Object, media: str | None) -> str:
        return self._get().presigned_url(obj, media)

    def open(self, obj: S3Object) -> tuple[Iterator[bytes], int | None]:
        return self._get().open(obj)

    def head(self, obj: S3Object) -> int | None:
        return self._get().head(obj)

    def read(self, obj: S3Object, max_bytes: int | None = None) -> bytes:
        return self._get().read(obj, max_bytes)


def read_bytes(record: Record, s3: S3Access) -> bytes:
    where = locate(record)
    if isinstance(where, S3Object):
        return s3.read(where)
    try:
        return where.path.read_bytes()
    except OSError as exc:
        raise ApiError(404, f"cannot read {record.key}: {exc.strerror or exc}") from exc
