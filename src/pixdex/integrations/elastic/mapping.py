"""The explicit mappings and the index template pixdex creates (docs/elasticsearch.md), and
their migrations (``indexes.migrations``).

Each index lists the migrations its mapping has had in ``_meta.pixdex.migrations``; the first
makes the first release's mapping, at creation, from the template. A later release that adds
fields appends a migration that puts them into existing mappings in place (new fields are
allowed in a mapping; changed ones are not — those need ``pixdex reindex``).
"""

from __future__ import annotations

from typing import Any

from pixdex.indexes.migrations import Migrations
from pixdex.integrations.elastic.transport import Options
from pixdex.similarity import EMBEDDING_DIM

MIGRATIONS = Migrations("Elasticsearch/OpenSearch")


@MIGRATIONS
def m001_initial(index: Any, concrete: str) -> None:
    """The mapping of pixdex 0.2.0, the first release: made by the template at creation."""


#: the label names at fixed confidence floors
FACET_FIELD = "pixdex_facets"
#: Floors at which each document lists its label names in a field of its own
#: (``pixdex_facets.at55``: the names with confidence ≥ 55), so the facets of a search at one of
#: these floors are one terms aggregation over a field of the records, instead of one over every
#: label of every matching record behind the nested join, which costs the server far less on a
#: large index (docs/benchmarks.md, "Reading"). The default floor is
#: 55 and the gallery's slider moves in steps of 5; below 50 a search counts most labels stored
#: and is rare, so those floors (and any other) count through the nested labels as before. An
#: index lists the floors its documents were written with in its ``_meta`` (``facet_floors``).
FACET_FLOORS = tuple(range(50, 100, 5))


#: the embedding as a vector the server searches by kNN, and the version it belongs to
VECTOR_FIELD = "pixdex_vector"
VECTOR_VERSION_FIELD = "pixdex_vector_version"


def vector_mapping(flavor: str) -> dict[str, Any]:
    """The kNN field: Elasticsearch's ``dense_vector``, OpenSearch's ``knn_vector`` (Lucene's
    HNSW, which filters by version during the search), both by cosine."""
    if flavor == "es":
        return {
            "type": "dense_vector",
            "dims": EMBEDDING_DIM,
            "index": True,
            "similarity": "cosine",
        }
    return {
        "type": "knn_vector",
        "dimension": EMBEDDING_DIM,
        "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"},
    }


def record_mapping(flavor: str = "es") -> dict[str, Any]:
    """The mapping of the record indexes (``name-pixdex-<timestamp>``)."""
    keyword = {"type": "keyword"}
    # What dynamic mapping makes of a string, so the original pattern's queries keep working:
    # `Labels.Name:dog` (any case, words, phrases) and exact `Labels.Name.keyword`.
    text = {"type": "text", "fields": {"keyword": keyword}}
    named = {"properties": {"Name": text}}
    return {
        "_meta": {"pixdex": {"migrations": MIGRATIONS.names, "facet_floors": list(FACET_FLOORS)}},
        "dynamic": True,
        "properties": {
            "Labels": {
                "type": "nested",
                "include_in_root": True,  # `Labels.Name:Truck` without a nested clause
                "properties": {
                    "Name": {
                        "type": "text",
                        # .text: pixdex's schema 1 name for the text field, kept for saved queries
                        "fields": {"keyword": keyword, "text": {"type": "text"}},
                    },
                    "Confidence": {"type": "float"},
                    "Parents": named,
                    "Aliases": named,
                    "Categories": named,
                    "Instances": {"type": "object", "enabled": False},
                    "pixdex_terms": keyword,
                    "pixdex_phrases": keyword,
                    "pixdex_words": keyword,
                },
            },
            "timestamp": {
                "type": "date",
                "format": "strict_date_optional_time||epoch_millis",
                "ignore_malformed": True,
                # filters compare the original strings, like the SQLite index (microseconds)
                "fields": {"raw": keyword},
            },
            "bucket": keyword,
            "key": {"type": "keyword", "fields": {"text": {"type": "text"}}},
            "imported-by": keyword,
            "id": keyword,
            "uri": keyword,
            "size": {"type": "long"},
            "fingerprint": keyword,
            "content_sha256": keyword,
            "etag": keyword,
            "version_id": keyword,
            "last_modified": keyword,
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "format": keyword,
            "LabelModelVersion": keyword,
            # free-form dicts: kept in _source, not mapped (no per-document mapping conflicts)
            "analyzers": {"type": "object", "dynamic": False},
            "ImageProperties": {"type": "object", "dynamic": False},
            "exif": {
                "type": "object",
                "dynamic": False,
                "properties": {"GPS": {"type": "geo_point", "ignore_malformed": True}},
            },
            # text read in the photo (docs/text.md): Kibana finds TextDetections.DetectedText
            "TextDetections": {
                "type": "object",
                "properties": {
                    "DetectedText": text,
                    "Type": keyword,
                    "Id": {"type": "integer"},
                    "ParentId": {"type": "integer"},
                    "Confidence": {"type": "float"},
                    "Geometry": {"type": "object", "enabled": False},
                },
            },
            "TextModelVersion": keyword,
            # faces (docs/faces.md): their details kept as stored; descriptors never searched
            # here (people are grouped from pixdex's own copy of them)
            "FaceDetails": {
                "type": "object",
                "properties": {
                    "FaceId": keyword,
                    "Confidence": {"type": "float"},
                    "Grouping": {"type": "boolean"},
                    "BoundingBox": {"type": "object", "enabled": False},
                    "Landmarks": {"type": "object", "enabled": False},
                    "Pose": {"type": "object", "enabled": False},
                    "Quality": {"type": "object", "enabled": False},
                    "descriptor": {"type": "keyword", "index": False, "doc_values": False},
                },
            },
            "FaceModelVersion": keyword,
            "pixdex_path_words": keyword,
            "pixdex_text_words": keyword,
            # exif.GPS lat/lon as a geo_point (distance and bounding-box queries, map dashboards)
            "pixdex_location": {"type": "geo_point"},
            # label names at fixed floors, for the facets (FACET_FLOORS)
            FACET_FIELD: {"properties": {facet_field(f): keyword for f in FACET_FLOORS}},
            # the record's embedding is kept as stored; its vector is searched (similar photos)
            "embedding": {"type": "object", "enabled": False},
            VECTOR_FIELD: vector_mapping(flavor),
            VECTOR_VERSION_FIELD: keyword,
        },
    }


def facet_field(floor: int) -> str:
    """The sub-field of ``pixdex_facets`` listing the names at ≥ ``floor``."""
    return f"at{floor}"


def failure_mapping() -> dict[str, Any]:
    """The mapping of the failures index (``name-failures``)."""
    keyword = {"type": "keyword"}
    return {
        "_meta": {"pixdex": {"migrations": MIGRATIONS.names, "kind": "failures"}},
        "dynamic": False,
        "properties": {
            "bucket": keyword,
            "key": keyword,
            "uri": keyword,
            "reason": {
                "type": "text",
                "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
            },
            "fingerprint": keyword,
            "timestamp": keyword,
        },
    }


def index_settings(options: Options, flavor: str = "es") -> dict[str, Any]:
    """Settings of a new index: shards and replicas (``[elastic]``), deep pagination allowed,
    and on OpenSearch the kNN plugin's switch (its vector fields need it)."""
    settings: dict[str, Any] = {
        "number_of_shards": options.shards,
        "max_result_window": 100_000,
    }
    if flavor != "es":
        settings["knn"] = True
    if options.replicas is not None:
        settings["number_of_replicas"] = options.replicas
    else:
        settings["auto_expand_replicas"] = "0-1"
    return settings


def template(name: str, options: Options, flavor: str = "es") -> dict[str, Any]:
    """The index template every ``name-pixdex-*`` index is created from."""
    return {
        "index_patterns": [f"{name}-pixdex-*"],
        "priority": 500,
        "_meta": {"pixdex": {"migrations": MIGRATIONS.names}},
        "template": {
            "settings": {"index": index_settings(options, flavor)},
            "mappings": record_mapping(flavor),
        },
    }
