"""Where records are kept: SQLite (embedded default), Elasticsearch, OpenSearch.

``open_index`` picks the backend from a URL: a plain path or ``sqlite:///path`` for SQLite,
``es+http(s)://host:port/name`` for Elasticsearch, ``opensearch+http(s)://host:port/name`` for
OpenSearch (Amazon OpenSearch Service too, signed with SigV4 when ``aws_region`` is set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixdex.indexes.base import Index, IndexUnavailable, SearchQuery, SearchResult

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["Index", "IndexUnavailable", "SearchQuery", "SearchResult", "open_index"]

SERVER_SCHEMES = ("es+http://", "es+https://", "opensearch+http://", "opensearch+https://")


def open_index(
    location: str, settings: Settings | None = None, *, create: bool = True, serving: bool = False
) -> Index:
    """The index at ``location``; ``create=False`` (read-only commands: search, stats) refuses
    to create one that does not exist, with IndexUnavailable saying so. ``serving``: for a
    long-lived process that answers searches (``pixdex serve``), where SQLite keeps its labels in
    memory (``indexes.sqlite_memory``)."""
    if location.startswith(SERVER_SCHEMES):
        from pixdex.indexes.elastic import ElasticIndex

        return ElasticIndex.from_url(location, settings, create=create)
    if "://" in location and not location.startswith("sqlite://"):
        raise IndexUnavailable(
            f"unknown index URL {location!r}: use a file path, sqlite:///path, "
            "es+http(s)://host:port/name or opensearch+http(s)://host:port/name"
        )
    from pixdex.indexes.sqlite import SqliteIndex

    return SqliteIndex(location.removeprefix("sqlite://"), create=create, memory_search=serving)
