"""Elasticsearch (8.x/9.x) and OpenSearch (2.x/3.x) indexes, with the SQLite index's semantics.

``pip install 'pixdex[elastic]'``; settings section ``[elastic]``; docs/elasticsearch.md.
URLs: ``es+http(s)://[user:pass@]host:port/name`` and ``opensearch+http(s)://…/name``; everything
else (credentials, TLS, SigV4, refresh, bulk sizes, retries) comes from the ``[elastic]``
settings.

One module per seam:

- ``index``: ``ElasticIndex``, the Index contract (opening, writes, reads, stats);
- ``transport``: the HTTP layer (either client, retries with backoff, bulk, scroll, URL parsing);
- ``mapping``: the explicit mappings and index template, and their migrations;
- ``documents``: records as stored documents (the original pattern's fields plus search helpers);
- ``query``: SearchQuery → search body and exact hit scores;
- ``reindex``: a new index behind the alias, swapped atomically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixdex.integrations.elastic.documents import search_doc
from pixdex.integrations.elastic.index import ElasticIndex
from pixdex.integrations.elastic.transport import sigv4_auth

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["ElasticIndex", "open_index", "search_doc", "sigv4_auth"]


def open_index(url: str, settings: Settings | None = None, *, create: bool = True) -> ElasticIndex:
    """The ``es+…``/``opensearch+…`` index of ``indexes.open_index``."""
    return ElasticIndex.from_url(url, settings, create=create)
