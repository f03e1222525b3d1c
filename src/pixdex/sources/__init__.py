"""Where images come from: a local folder or an S3-compatible bucket/prefix."""

from __future__ import annotations

from pixdex.sources.base import ObjectRef, Source, SourceError

__all__ = ["ObjectRef", "Source", "SourceError", "open_source"]


def open_source(location: str) -> Source:
    """A Source for a folder path or an ``s3://bucket/prefix`` URI."""
    if location.startswith("s3://"):
        from pixdex.sources.s3 import S3Source

        return S3Source.from_uri(location)
    from pixdex.sources.local import LocalSource

    return LocalSource(location)
