"""Where records are kept: SQLite (the core's embedded default), or Elasticsearch and OpenSearch
(the ``elastic`` integration). ``open_index`` is the one place that picks a backend by URL:

- a plain path or ``sqlite:///path``: a SQLite file;
- ``es+http(s)://host:port/name``: Elasticsearch; ``opensearch+http(s)://host:port/name``:
  OpenSearch (Amazon OpenSearch Service too, signed with SigV4 when ``elastic.aws_region`` is
  set).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pixdex.errors import IndexUnavailable
from pixdex.indexes.base import Index, SearchQuery, SearchResult
from pixdex.integrations import require

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["Index", "IndexUnavailable", "SearchQuery", "SearchResult", "open_index"]

#: URL scheme → (the extra it needs, the module whose ``open_index`` opens it)
SCHEMES: dict[str, tuple[str, str]] = {
    scheme: ("elastic", "pixdex.integrations.elastic")
    for scheme in ("es+http", "es+https", "opensearch+http", "opensearch+https")
}


def open_index(
    location: str, settings: Settings | None = None, *, create: bool = True, serving: bool = False
) -> Index:
    """The index at ``location``; ``create=False`` (read-only commands: search, stats) refuses
    to create one that does not exist, with IndexUnavailable saying so. ``serving``: for a
    long-lived process that answers searches (``pixdex serve``), where SQLite keeps its labels in
    memory (``indexes.sqlite_memory``)."""
    scheme, sep, _ = location.partition("://")
    if not sep or scheme == "sqlite":
        from pixdex.indexes.sqlite import SqliteIndex

        path = location.removeprefix("sqlite://")
        return SqliteIndex(path, create=create, memory_search=serving)
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://host:port/name" for s in SCHEMES)
        raise IndexUnavailable(
            f"unknown index URL {location!r}: use a file path, sqlite:///path, {known}"
        )
    extra, module = SCHEMES[scheme]
    require(extra, f"an {scheme.partition('+')[0]}+http(s):// index")
    opener = importlib.import_module(module).open_index
    return opener(location, settings, create=create)  # type: ignore[no-any-return]
