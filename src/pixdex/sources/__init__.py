"""Where images come from: a local folder or an S3-compatible bucket/prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixdex.sources.base import ObjectRef, Source, SourceError

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["ObjectRef", "Source", "SourceError", "open_source"]


def open_source(location: str, settings: Settings | None = None) -> Source:
    """A Source for a folder path or an ``s3://bucket/prefix`` URI."""
    if location.startswith("s3://"):
        from pixdex.sources.s3 import S3Source

        return S3Source.from_uri(location, settings=settings)
    from pixdex.sources.local import LocalSource

    return LocalSource(location)
