"""The explicit mappings and the index template pixdex creates (docs/elasticsearch.md).

``SCHEMA`` is stored in each index's ``_meta``. An index of ``ADDITIVE_FROM`` or later gets what
it lacks added in place when opened (new fields only, which a mapping allows: ``added``); an older
one is refused until ``pixdex reindex`` copies it into a new index made from the current template.
"""

from __future__ import annotations

from typing import Any

from pixdex.indexes.elastic.transport import Options

#: 1: Labels.Name a keyword. 2: Labels.Name (and Parents/Aliases/Categories.Name) text with a
#: .keyword sub-field, as a dynamically mapped index has them; Labels.pixdex_phrases.
#: 3: the text read in photos (docs/text.md): TextDetections, TextModelVersion, pixdex_text_words.
#: 4: pixdex_facets, label names at fixed confidence floors (``FACET_FLOORS``).
SCHEMA = 4
#: the oldest schema that becomes the current one by adding fields (2 → 3: the text fields;
#: 3 → 4: the facet fields, empty in documents written before: see ``FACET_FLOORS``)
ADDITIVE_FROM = 2
#: the fields schema 3 added, in the order they are added to a schema-2 index
TEXT_FIELDS = ("TextDetections", "TextModelVersion", "pixdex_text_words")
#: the field schema 4 added
FACET_FIELD = "pixdex_facets"
#: Floors at which each document lists its label names in a field of its own
#: (``pixdex_facets.at55``: the names with confidence ≥ 55), so the facets of a search at one of
#: these floors are one terms aggregation over a field of the records, instead of one over every
#: label of every matching record behind the nested join: label Person at floor 55, 100,000
#: records, 33 → 13 ms of the server's time (one-off, docs/benchmarks.md). The default floor is
#: 55 and the gallery's slider moves in steps of 5; below 50 a search counts most labels stored
#: and is rare, so those floors (and any other) count through the nested labels as before. An
#: index lists the floors its documents were written with in its ``_meta``
#: (``facet_floors``); one brought to schema 4 in place has documents without them and lists
#: none until ``pixdex reindex`` rewrites them.
FACET_FLOORS = tuple(range(50, 100, 5))


def record_mapping() -> dict[str, Any]:
    """The mapping of the record indexes (``name-pixdex-<timestamp>``)."""
    keyword = {"type": "keyword"}
    # What dynamic mapping makes of a string, so the original pattern's queries keep working:
    # `Labels.Name:dog` (any case, words, phrases) and exact `Labels.Name.keyword`.
    text = {"type": "text", "fields": {"keyword": keyword}}
    named = {"properties": {"Name": text}}
    return {
        "_meta": {"pixdex": {"schema": SCHEMA, "facet_floors": list(FACET_FLOORS)}},
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
            "pixdex_path_words": keyword,
            "pixdex_text_words": keyword,
            # exif.GPS lat/lon as a geo_point (distance and bounding-box queries, map dashboards)
            "pixdex_location": {"type": "geo_point"},
            # label names at fixed floors, for the facets (FACET_FLOORS)
            FACET_FIELD: {"properties": {facet_field(f): keyword for f in FACET_FLOORS}},
        },
    }


def facet_field(floor: int) -> str:
    """The sub-field of ``pixdex_facets`` listing the names at ≥ ``floor``."""
    return f"at{floor}"


def added(properties: dict[str, Any]) -> dict[str, Any]:
    """What an earlier schema's mapping (its ``properties``) lacks of the current one: the text
    fields and the facet field it has not mapped yet. One a document already brought in is left
    as dynamic mapping made it (e.g. ``TextDetections`` from Rekognition's DetectText): changing
    a mapped field is not allowed in place, and its dynamic mapping is searchable too."""
    current = record_mapping()["properties"]
    return {name: current[name] for name in (*TEXT_FIELDS, FACET_FIELD) if name not in properties}


def failure_mapping() -> dict[str, Any]:
    """The mapping of the failures index (``name-failures``)."""
    keyword = {"type": "keyword"}
    return {
        "_meta": {"pixdex": {"schema": SCHEMA, "kind": "failures"}},
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


def index_settings(options: Options) -> dict[str, Any]:
    """Settings of a new index: shards and replicas from the URL, deep pagination allowed."""
    settings: dict[str, Any] = {
        "number_of_shards": options.shards,
        "max_result_window": 100_000,
    }
    if options.replicas is not None:
        settings["number_of_replicas"] = options.replicas
    else:
        settings["auto_expand_replicas"] = "0-1"
    return settings


def template(name: str, options: Options) -> dict[str, Any]:
    """The index template every ``name-pixdex-*`` index is created from."""
    return {
        "index_patterns": [f"{name}-pixdex-*"],
        "priority": 500,
        "_meta": {"pixdex": {"schema": SCHEMA}},
        "template": {"settings": {"index": index_settings(options)}, "mappings": record_mapping()},
    }
