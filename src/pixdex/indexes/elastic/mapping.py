"""The explicit mappings and the index template pixdex creates (docs/elasticsearch.md).

``SCHEMA`` is stored in each index's ``_meta``; an index with another schema is refused until
``pixdex reindex`` copies it into a new index made from the current template.
"""

from __future__ import annotations

from typing import Any

from pixdex.indexes.elastic.transport import Options

#: 1: Labels.Name a keyword. 2: Labels.Name (and Parents/Aliases/Categories.Name) text with a
#: .keyword sub-field, as a dynamically mapped index has them; Labels.pixdex_phrases.
SCHEMA = 2


def record_mapping() -> dict[str, Any]:
    """The mapping of the record indexes (``name-pixdex-<timestamp>``)."""
    keyword = {"type": "keyword"}
    # What dynamic mapping makes of a string, so the original pattern's queries keep working:
    # `Labels.Name:dog` (any case, words, phrases) and exact `Labels.Name.keyword`.
    text = {"type": "text", "fields": {"keyword": keyword}}
    named = {"properties": {"Name": text}}
    return {
        "_meta": {"pixdex": {"schema": SCHEMA}},
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
            "pixdex_path_words": keyword,
            # exif.GPS lat/lon as a geo_point (distance and bounding-box queries, map dashboards)
            "pixdex_location": {"type": "geo_point"},
        },
    }


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
