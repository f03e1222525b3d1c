"""Where images come from: a local folder (core), or an S3-compatible bucket/prefix (``s3://``,
the ``s3`` integration). ``open_source`` is the one place that picks a source by location."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pixdex.errors import SourceError
from pixdex.integrations import require
from pixdex.sources.base import ObjectRef, Source

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["ObjectRef", "Source", "SourceError", "open_source"]

#: URI scheme → (the extra it needs, the module whose ``open_source`` opens it)
SCHEMES: dict[str, tuple[str, str]] = {"s3": ("s3", "pixdex.integrations.s3.source")}


def open_source(location: str, settings: Settings | None = None) -> Source:
    """A Source for a folder path or a URI such as ``s3://bucket/prefix``."""
    scheme, sep, _ = location.partition("://")
    if not sep:
        from pixdex.sources.local import LocalSource

        return LocalSource(location)
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://…" for s in SCHEMES)
        raise SourceError(f"unknown source {location!r}: use a folder path or {known}")
    extra, module = SCHEMES[scheme]
    require(extra, f"a {scheme}:// source")
    opener = importlib.import_module(module).open_source
    return opener(location, settings)  # type: ignore[no-any-return]
