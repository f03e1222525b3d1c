"""Elasticsearch (8.x/9.x) and OpenSearch (2.x/3.x) indexes, with the SQLite index's semantics.

URLs: ``es+http(s)://[user:pass@]host:port/name`` and ``opensearch+http(s)://…/name``, with
optional query parameters (``refresh=true|wait_for``, ``shards``, ``replicas``, ``batch_docs``,
``batch_mb``, ``retries``, ``backoff``, ``timeout``, ``verify_certs=false``, ``ca_certs=PATH``,
``api_key``, ``aws_region``, ``aws_service``, ``sigv4=false``); auth defaults come from Settings.

One module per seam:

- ``index``: ``ElasticIndex``, the Index contract (opening, writes, reads, stats);
- ``transport``: the HTTP layer (either client, retries with backoff, bulk, scroll, URL parsing);
- ``mapping``: the explicit mappings and index template, and the schema version;
- ``documents``: records as stored documents (the original pattern's fields plus search helpers);
- ``query``: SearchQuery → search body and exact hit scores;
- ``reindex``: a new index behind the alias, swapped atomically.
"""

from pixdex.indexes.elastic.documents import search_doc
from pixdex.indexes.elastic.index import ElasticIndex
from pixdex.indexes.elastic.reindex import ReindexResult
from pixdex.indexes.elastic.transport import sigv4_auth

__all__ = ["ElasticIndex", "ReindexResult", "search_doc", "sigv4_auth"]
