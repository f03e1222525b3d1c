""" "More like this" and duplicates, from what an index stores (``pixdex similar``,
``pixdex duplicates``, ``/api/similar``, ``/api/duplicates``).

The arithmetic is ``pixdex.similarity``'s; this module asks the index for the embeddings and
turns the answers into what users see: hits with a ``Similarity`` (0–100, the cosine of the two
embeddings), and groups of copies ordered with the one to keep first and why. A photo that is
not indexed is embedded on the spot by the classifier (``embed_image``), nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from pixdex.errors import InputError
from pixdex.indexes.base import EmbeddingSet, SearchResult, SimilarQuery, similarity_score
from pixdex.records import Embedding, Record
from pixdex.similarity import (
    DEFAULT_RULE,
    Copy,
    decode_embeddings,
    duplicate_groups,
    keep_order,
    normalize,
)

if TYPE_CHECKING:
    from pixdex.analyzers.labels import LabelAnalyzer
    from pixdex.imaging import DecodedImage
    from pixdex.indexes.base import Index


def vector_of(embedding: Embedding) -> np.ndarray:
    """A stored embedding as the unit float32 vector searches take."""
    return decode_embeddings([embedding.vector_bytes()])[0]


def similar_to_record(index: Index, record: Record, limit: int = 20) -> SearchResult:
    """The indexed photos most like an indexed one (itself left out)."""
    if record.embedding is None:
        raise InputError(
            f"{record.key} has no embedding: it was indexed without the classifier, or by an"
            " older pixdex (pixdex index --force, or pixdex reindex --reanalyze, adds it)"
        )
    query = SimilarQuery(vector_of(record.embedding), record.embedding.version, limit, record.id)
    return index.similar(query)


def embed_image(analyzer: LabelAnalyzer, image: DecodedImage) -> Embedding:
    """An image's embedding, as indexing would store it (nothing is written)."""
    if analyzer.projection is None:
        raise InputError(
            f"the {analyzer.classifier.name} classifier has no similarity projection: use"
            " efficientnet-lite0 (the default model) for similar photos"
        )
    partial = analyzer.analyze([image])[0]
    embedding: Embedding = partial["embedding"]
    return embedding


def similar_to_image(
    index: Index, analyzer: LabelAnalyzer, image: DecodedImage, limit: int = 20
) -> SearchResult:
    """The indexed photos most like any image (a file, an upload)."""
    embedding = embed_image(analyzer, image)
    return index.similar(SimilarQuery(vector_of(embedding), embedding.version, limit))


@dataclass(slots=True)
class DuplicateGroup:
    """Copies of one photo, the one to keep first; each photo's ``Similarity`` to it."""

    photos: list[dict[str, Any]]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"photos": self.photos, "reason": self.reason}


def latest_version(index: Index) -> str | None:
    """The embedding version most records have (the current model's, once indexed with it)."""
    versions = index.embedding_versions()
    return versions[0][0] if versions else None


def duplicates(
    index: Index, *, min_similarity: float | None = None, version: str | None = None
) -> list[DuplicateGroup]:
    """Groups of near-duplicates among the indexed photos (``similarity.duplicate_groups``:
    resized, re-encoded, lightly cropped or re-exposed copies, bursts), largest first. With
    ``min_similarity`` (0–100) a group keeps only the photos at least that similar to the one
    to keep. Never deletes or moves anything."""
    version = version or latest_version(index)
    if version is None:
        return []
    found = index.embeddings(version)
    return _groups(found, min_similarity)


def _groups(found: EmbeddingSet, min_similarity: float | None) -> list[DuplicateGroup]:
    if len(found.photos) < 2:
        return []
    matrix = normalize(found.vectors.astype(np.float32))
    out: list[DuplicateGroup] = []
    for rows in duplicate_groups(matrix, found.thumbnails, DEFAULT_RULE):
        photos = [found.photos[i] for i in rows]
        order, reason = keep_order([_copy(p) for p in photos])
        ranked = [rows[i] for i in order]
        keeper = matrix[ranked[0]]
        members = []
        for row in ranked:
            score = similarity_score(float(matrix[row] @ keeper))
            if row != ranked[0] and min_similarity is not None and score < min_similarity:
                continue
            members.append({**_shown(found.photos[row]), "Similarity": score})
        if len(members) > 1:
            out.append(DuplicateGroup(members, reason))
    return out


def _copy(photo: dict[str, Any]) -> Copy:
    when = photo.get("last_modified") or photo.get("timestamp")
    try:
        moment = datetime.fromisoformat(when) if when else None
    except ValueError:
        moment = None
    return Copy(
        width=int(photo.get("width") or 0),
        height=int(photo.get("height") or 0),
        size=int(photo.get("size") or 0),
        timestamp=moment,
    )


def _shown(photo: dict[str, Any]) -> dict[str, Any]:
    return {k: photo.get(k) for k in ("key", "id", "uri", "width", "height", "size")}
