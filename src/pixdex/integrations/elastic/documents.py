"""Records as stored documents, and back.

A stored document is the record's JSON exactly as the original pattern stored it (``Labels``,
``timestamp``, ``bucket``, ``key``, ``imported-by``…) plus search helpers that pixdex's own queries
use and that are stripped again on read:

- ``Labels[].pixdex_terms``: lower-cased name, parents and aliases (label queries);
- ``Labels[].pixdex_phrases``: the phrases its name, parents and aliases equal
  (``words.term_keys``: "traffic light"; "man" and "men"), for the free-text tier "a label equals
  the query";
- ``Labels[].pixdex_words`` and ``pixdex_path_words``: words as ``pixdex.indexes.words`` makes
  them (free text; label words in both numbers);
- ``pixdex_text_words``: the words of the text read in the photo (its ``TextDetections`` LINEs,
  docs/text.md), made the same way; absent when there is none;
- ``pixdex_location``: ``exif.GPS`` as a clean geo_point;
- ``pixdex_facets.at<floor>``: the label names with confidence ≥ floor, at each of
  ``mapping.FACET_FLOORS`` (the facets of a search at that floor; absent when there are none);
- ``pixdex_vector`` and ``pixdex_vector_version``: the embedding as a unit vector for the
  server's kNN search, and its version (similar photos; absent without an embedding).
"""

from __future__ import annotations

from typing import Any

from pixdex.indexes.words import Words, term_keys
from pixdex.integrations.elastic.mapping import (
    FACET_FIELD,
    FACET_FLOORS,
    VECTOR_FIELD,
    VECTOR_VERSION_FIELD,
    facet_field,
)
from pixdex.records import Record
from pixdex.similarity import decode_embeddings

#: helper fields inside each label, removed on read
LABEL_HELPERS = ("pixdex_terms", "pixdex_words", "pixdex_phrases")
#: helper fields at the top of the document, removed on read
DOC_HELPERS = ("pixdex_path_words", "pixdex_text_words", "pixdex_location", FACET_FIELD)
DOC_HELPERS += (VECTOR_FIELD, VECTOR_VERSION_FIELD)


def search_doc(record: Record) -> dict[str, Any]:
    """The stored document: the record's JSON plus the search helper fields."""
    doc = record.to_json()
    path, text = Words.many([record.key, " ".join(record.text_lines())])
    doc["pixdex_path_words"] = sorted(set(path))
    if text:
        doc["pixdex_text_words"] = sorted(set(text))
    location = _location(record.exif)
    if location is not None:
        doc["pixdex_location"] = location
    facets = {
        facet_field(floor): names
        for floor in FACET_FLOORS
        if (names := [label.Name for label in record.Labels if label.Confidence >= floor])
    }
    if facets:
        doc[FACET_FIELD] = facets
    if record.embedding is not None:
        # the stored int8 vector as the unit vector the server's kNN compares by cosine
        vector = decode_embeddings([record.embedding.vector_bytes()])[0]
        doc[VECTOR_FIELD] = [float(x) for x in vector]
        doc[VECTOR_VERSION_FIELD] = record.embedding.version
    for label, out in zip(record.Labels, doc.get("Labels", []), strict=True):
        terms = label.terms()
        keys = [term_keys(t) for t in terms]
        out["pixdex_terms"] = sorted({t.lower() for t in terms})
        out["pixdex_phrases"] = sorted({p for phrases, _ in keys for p in phrases})
        out["pixdex_words"] = sorted({w for _, words in keys for w in words})
    return doc


def _location(exif: dict[str, Any] | None) -> dict[str, float] | None:
    """exif.GPS as a geo_point ({"lat", "lon"} only): the EXIF altitude the analyzer adds would
    make the object a malformed geo_point, silently not indexed."""
    gps = (exif or {}).get("GPS")
    if not isinstance(gps, dict):
        return None
    try:
        lat, lon = float(gps["lat"]), float(gps["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return {"lat": lat, "lon": lon}
    return None


def to_record(source: dict[str, Any]) -> Record:
    """The record a stored document holds, without pixdex's helper fields."""
    source = {k: v for k, v in source.items() if k not in DOC_HELPERS}
    labels = []
    for label in source.get("Labels") or []:
        if isinstance(label, dict):
            label = {k: v for k, v in label.items() if k not in LABEL_HELPERS}
        labels.append(label)
    if "Labels" in source:
        source["Labels"] = labels
    return Record.model_validate(source)
