"""The one record type that flows end to end, in the shape of the original pattern's documents.

The original S3 → Lambda → Rekognition → Elasticsearch pattern stored ``Labels`` exactly as
Rekognition's DetectLabels returns them plus ``timestamp``, ``bucket``, ``key`` and
``imported-by``. Those names and formats are kept verbatim (dashboards and saved queries depend
on them); everything pixdex adds sits beside them.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pixdex import __version__

IMPORTED_BY = f"pixdex/{__version__}"


class _Shape(BaseModel):
    """Base for Rekognition-shaped models: field names are Rekognition's, output drops Nones."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Named(_Shape):
    Name: str


class BoundingBox(_Shape):
    """Ratios of the image's width/height, as Rekognition returns them."""

    Width: float
    Height: float
    Left: float
    Top: float


class Instance(_Shape):
    BoundingBox: BoundingBox
    Confidence: float


class Label(_Shape):
    Name: str
    Confidence: float
    Instances: list[Instance] = Field(default_factory=list)
    Parents: list[Named] = Field(default_factory=list)
    Aliases: list[Named] = Field(default_factory=list)
    Categories: list[Named] = Field(default_factory=list)

    def terms(self) -> list[str]:
        """Every name a search for this label should match: itself, its parents, its aliases."""
        return [self.Name, *(p.Name for p in self.Parents), *(a.Name for a in self.Aliases)]


def unite_labels(labels: Iterable[Label]) -> list[Label]:
    """One label per name (case-insensitive), in the order names were first seen: a name seen
    twice keeps its higher confidence and gains the other's instances (if it had none), parents,
    aliases and categories.

    Why it matters beyond tidiness: a record holds one label per name, as Rekognition's
    DetectLabels answers, and the Elasticsearch/OpenSearch facets count records per name by
    counting label entries (``query.label_agg``; ~2 x cheaper than counting parent documents)."""
    united: dict[str, Label] = {}
    for label in labels:
        key = label.Name.lower()
        seen = united.get(key)
        if seen is None:
            united[key] = label
            continue
        keep, other = (label, seen) if label.Confidence > seen.Confidence else (seen, label)
        # a new Label, not the caller's edited: the same Label may sit in other records
        update: dict[str, Any] = {"Instances": keep.Instances or other.Instances}
        for attr in ("Parents", "Aliases", "Categories"):
            mine: list[Named] = getattr(keep, attr)
            names = {n.Name for n in mine}
            update[attr] = [*mine, *(n for n in getattr(other, attr) if n.Name not in names)]
        united[key] = keep.model_copy(update=update)
    return list(united.values())


class Point(_Shape):
    """A polygon corner, as ratios of the image's width (X) and height (Y)."""

    X: float
    Y: float


class Geometry(_Shape):
    """Where a piece of text is: its axis-aligned box and its (possibly rotated) quadrilateral,
    corners clockwise from the text's own top-left, both as ratios of the upright image."""

    BoundingBox: BoundingBox
    Polygon: list[Point] = Field(default_factory=list)


class TextDetection(_Shape):
    """A line or a word of text in the photo, exactly as Rekognition's DetectText returns it.

    LINEs come first (``Id`` 0…), then their WORDs, each with ``ParentId`` = its line's ``Id``.
    ``Confidence`` is 0–100. This is also the stored shape, so an index can be filled by the
    local OCR or by Rekognition itself without translation (docs/text.md)."""

    DetectedText: str
    Type: Literal["LINE", "WORD"]
    Id: int
    ParentId: int | None = None
    Confidence: float
    Geometry: Geometry


class Embedding(_Shape):
    """What "more like this" and duplicates compare (``pixdex.similarity``): the classifier's
    features projected to 256 dimensions as int8, and an 8×8 RGB thumbnail, both base64.
    ``version`` names the model and the projection: embeddings of different versions are never
    compared (a model change re-embeds on the next ``pixdex index``)."""

    version: str
    vector: str
    thumbnail: str

    def vector_bytes(self) -> bytes:
        return base64.b64decode(self.vector)

    def thumbnail_bytes(self) -> bytes:
        return base64.b64decode(self.thumbnail)

    @classmethod
    def of(cls, version: str, vector: bytes, thumbnail: bytes) -> Embedding:
        return cls(
            version=version,
            vector=base64.b64encode(vector).decode("ascii"),
            thumbnail=base64.b64encode(thumbnail).decode("ascii"),
        )


class Landmark(_Shape):
    """A point of a face (``eyeLeft``, ``eyeRight``, ``nose``, ``mouthLeft``, ``mouthRight``;
    left and right as seen in the image), as ratios of the image's width (X) and height (Y)."""

    Type: str
    X: float
    Y: float


class FacePose(_Shape):
    """Where a face looks, in degrees: Roll (tilt in the image), Yaw (left-right), Pitch."""

    Roll: float
    Yaw: float
    Pitch: float


class FaceQuality(_Shape):
    """Brightness and sharpness of a face, 0–100."""

    Brightness: float
    Sharpness: float


class FaceDetail(_Shape):
    """A face in the photo in DetectFaces' shape (its DEFAULT attributes), plus what pixdex
    keeps to tell people apart.

    ``FaceId`` is stable for a face at one place of one photo (the same box gives the same id
    on every analysis), so what a user said about a face can find it again. ``descriptor`` is
    the face's 128 numbers (float16, base64; compared by cosine) and never leaves through an
    API; ``Grouping`` says whether the face is good enough (large, sharp, frontal enough) to
    be put into a person automatically — the rest are kept and shown, never grouped."""

    BoundingBox: BoundingBox
    Confidence: float
    Landmarks: list[Landmark] = Field(default_factory=list)
    Pose: FacePose | None = None
    Quality: FaceQuality | None = None
    FaceId: str = ""
    descriptor: str | None = None
    Grouping: bool = False

    def descriptor_bytes(self) -> bytes | None:
        return base64.b64decode(self.descriptor) if self.descriptor else None

    def api_json(self) -> dict[str, Any]:
        """What DetectFaces answers for this face (no descriptor, no pixdex fields)."""
        return self.model_dump(
            by_alias=True,
            exclude_none=True,
            mode="json",
            include={"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"},
        )


def face_id(record_id: str, box: BoundingBox) -> str:
    """A face's id: a UUID (Rekognition's FaceId form) from its photo and its box, rounded so
    that the same face found again by the same model keeps its id."""
    place = f"{box.Left:.3f},{box.Top:.3f},{box.Width:.3f},{box.Height:.3f}"
    return str(uuid.uuid5(_FACE_NAMESPACE, f"{record_id}/{place}"))


_FACE_NAMESPACE = uuid.UUID("5b0c5e6e-8f0e-4a3f-9a53-70697864657a")


def utc_timestamp(moment: datetime | None = None) -> str:
    """The original pattern's timestamp format: ISO 8601, microseconds, UTC, no offset suffix."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def record_id(bucket: str, key: str) -> str:
    """Stable id from where the image lives, so re-indexing overwrites instead of duplicating."""
    return hashlib.sha1(f"{bucket}\x00{key}".encode()).hexdigest()


class Record(_Shape):
    """One image. Analyzers fill parts of it; indexes store it whole."""

    # --- the original pattern's fields, same names and formats ---
    Labels: list[Label] = Field(default_factory=list)
    timestamp: str = Field(default_factory=utc_timestamp)
    bucket: str
    key: str
    imported_by: str = Field(default=IMPORTED_BY, alias="imported-by")

    # --- pixdex additions ---
    id: str = ""
    uri: str = ""
    size: int | None = None
    fingerprint: str | None = Field(
        default=None, description="cheap change marker from listing: S3 ETag/version or size+mtime"
    )
    content_sha256: str | None = None
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    LabelModelVersion: str | None = None
    analyzers: dict[str, str] = Field(
        default_factory=dict, description="analyzer name → version that produced this record"
    )
    ImageProperties: dict[str, Any] | None = None
    exif: dict[str, Any] | None = None
    #: DetectText's ``TextDetections``; None when no text analyzer ran, [] when it found none
    TextDetections: list[TextDetection] | None = None
    TextModelVersion: str | None = None
    #: the photo's place among similar photos (``Embedding``); None without the classifier
    embedding: Embedding | None = None
    #: DetectFaces' ``FaceDetails``; None when the face analyzer did not run, [] when it found none
    FaceDetails: list[FaceDetail] | None = None
    FaceModelVersion: str | None = None

    @field_validator("Labels")
    @classmethod
    def _one_label_per_name(cls, labels: list[Label]) -> list[Label]:
        """Whoever builds a record (an analyzer, a document written by another tool), it holds
        one label per name (``unite_labels`` says why)."""
        if len({label.Name.lower() for label in labels}) == len(labels):
            return labels
        return unite_labels(labels)

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = record_id(self.bucket, self.key)
        for face in self.FaceDetails or ():
            if not face.FaceId:  # analyzers see pixels, not where the photo lives
                face.FaceId = face_id(self.id, face.BoundingBox)

    def public_json(self) -> dict[str, Any]:
        """The record as commands and the API show it: without the numbers only comparisons
        read (the embedding, each face's descriptor) — bytes nobody reads, and a face's
        descriptor is biometric data that has no business leaving the index."""
        shown = self.model_dump(
            by_alias=True, exclude_none=True, mode="json", exclude={"embedding"}
        )
        for face in shown.get("FaceDetails") or ():
            face.pop("descriptor", None)
        return shown

    @property
    def analysis_version(self) -> str:
        """One string that changes whenever any analyzer that produced this record changes."""
        return analysis_version(self.analyzers)

    def label_terms(self) -> list[tuple[str, float]]:
        """(term, confidence) for every label, parent and alias name — what search matches on."""
        out: list[tuple[str, float]] = []
        for label in self.Labels:
            out.extend((term, label.Confidence) for term in label.terms())
        return out

    def text_lines(self) -> list[str]:
        """The LINEs of text read in the photo (words are parts of lines) — what search matches."""
        return [t.DetectedText for t in self.TextDetections or () if t.Type == "LINE"]


def analysis_version(analyzers: dict[str, str]) -> str:
    return ",".join(f"{name}={analyzers[name]}" for name in sorted(analyzers))


class Failure(_Shape):
    """An object that could not be indexed — unreadable, refused by an analyzer or by the index —
    with a one-line reason users can act on. The one failure value pixdex passes around: the
    failure list stores it, ``Index.upsert`` returns it for records it refused, a remote
    analyzer returns it for an object it could not analyze.

    ``transient``: the reason may pass by itself (a service throttling or down), so event
    consumers redeliver the object instead of recording it as bad; never stored."""

    bucket: str
    key: str
    uri: str = ""
    reason: str
    fingerprint: str | None = None
    timestamp: str = Field(default_factory=utc_timestamp)
    transient: bool = Field(default=False, exclude=True)

    @property
    def id(self) -> str:
        """The id of the record this object has (or would have)."""
        return record_id(self.bucket, self.key)

    @classmethod
    def of(cls, thing: Any, reason: str, *, transient: bool = False) -> Failure:
        """The failure of ``thing``: a ``Record`` or an ``ObjectRef`` (anything with ``bucket``,
        ``key`` and, where known, ``uri`` and ``fingerprint``)."""
        return cls(
            bucket=thing.bucket,
            key=thing.key,
            uri=getattr(thing, "uri", "") or "",
            reason=reason,
            fingerprint=getattr(thing, "fingerprint", None),
            transient=transient,
        )
