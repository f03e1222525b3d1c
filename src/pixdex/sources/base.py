"""The Source contract: where images come from — list what is there, fetch one, say what changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Listed so that they are tried and, where Pillow cannot decode them (HEIC, RAW, SVG), reported as
# failures with a reason instead of being silently skipped like unrelated files (.json, .txt).
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".gif",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
    ".svg",
    ".dng",
    ".cr2",
    ".nef",
    ".arw",
)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object in a source, as listing reports it (no bytes read yet).

    ``fingerprint`` is the cheap change marker the listing gives for free (S3 ETag + version id,
    a file's size + mtime): if it equals the indexed one, the object is not read at all.
    """

    bucket: str
    key: str
    uri: str
    size: int | None = None
    fingerprint: str | None = None
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None


@runtime_checkable
class Source(Protocol):
    bucket: str
    prefix: str

    def list(self) -> Iterator[ObjectRef]:
        """Every image under the source's prefix, in a stable order."""
        ...

    def fetch(self, ref: ObjectRef) -> bytes:
        """The object's bytes; raises SourceError with a one-line reason."""
        ...


def has_image_suffix(key: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    return key.lower().endswith(suffixes)


@runtime_checkable
class ReportsTransient(Protocol):
    """A source that says which reads failed for a reason that may pass by itself (throttling
    that outlasted the retries, a connection that kept dropping): event consumers redeliver
    those objects instead of recording them as bad. Checked through ``transient_keys``."""

    transient: set[str]


def transient_keys(source: object) -> set[str]:
    """Keys whose last read from ``source`` failed transiently (none for sources that never
    say)."""
    return set(source.transient) if isinstance(source, ReportsTransient) else set()
