"""Faces in photos, in DetectFaces' shape: box, landmarks, pose, quality — and a descriptor per
face, from which ``pixdex.people`` groups faces into people.

Opt-in (``faces = true``, ``--faces``): faces are personal data, so nothing about them is
computed or stored unless the user asks. The models are ``pixdex.models.faces`` (BlazeFace,
Face Mesh, dlib's ResNet descriptor; docs/faces-models.md).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixdex.imaging import DEFAULT_MAX_PIXELS, DecodedImage, decode
from pixdex.models.faces import Face, FaceDetector, FaceEmbedder, pose, quality
from pixdex.records import BoundingBox, FaceDetail, FacePose, FaceQuality, Landmark

if TYPE_CHECKING:
    from pixdex.config import Settings

#: DetectFaces answers at most 100 faces per image; so does this analyzer (the largest)
MAX_FACES = 100
#: Rekognition's landmark names, in ``pixdex.models.faces.LANDMARKS`` order
LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
#: What makes a face good enough to be grouped into a person without a user's word: its
#: shorter side in the analyzed pixels (the descriptor's chip is 150 px; smaller faces are
#: upsampled guesses), sharpness, and how far it turns away (descriptors of profiles match
#: other people's profiles). Fitted with the grouping thresholds (docs/faces.md).
GROUPING_MIN_SIDE = 40.0
GROUPING_MIN_SHARPNESS = 15.0
GROUPING_MAX_YAW = 45.0
GROUPING_MAX_PITCH = 35.0
VERSION = "1"


def encode_descriptor(vector: np.ndarray) -> str:
    """A unit descriptor as stored: float16 (256 bytes for 128 numbers), base64."""
    return base64.b64encode(np.asarray(vector, np.float16).tobytes()).decode("ascii")


def decode_descriptor(text: str | bytes) -> np.ndarray:
    """The float32 unit vector of a stored descriptor (base64 text, or its raw bytes)."""
    raw = base64.b64decode(text) if isinstance(text, str) else text
    vector = np.frombuffer(raw, np.float16).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


class FaceAnalyzer:
    """Detect faces, describe each, and emit DetectFaces' ``FaceDetails`` (with descriptors)."""

    name = "faces"
    #: the record fields this analyzer alone writes: adding faces to an index (``pixdex reindex
    #: --reanalyze --faces``) runs nothing else
    fields = ("FaceDetails", "FaceModelVersion")

    def __init__(
        self,
        *,
        threads: int = 0,
        detector: FaceDetector | None = None,
        embedder: FaceEmbedder | None = None,
        max_faces: int = MAX_FACES,
    ) -> None:
        self.detector = detector or FaceDetector(threads=threads)
        self.embedder = embedder or FaceEmbedder(threads=threads)
        self.max_faces = max_faces
        # small faces need pixels: JPEG draft mode may not shrink a photo below this
        self.min_side = 640
        self.model_version = f"{self.detector.version}+{self.embedder.version}"
        self.version = f"{self.model_version}+v{VERSION}"

    @classmethod
    def from_settings(cls, settings: Settings) -> FaceAnalyzer:
        return cls(threads=settings.session_threads)

    # --- the Analyzer contract ------------------------------------------------------------------
    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        return [
            {"FaceDetails": self.faces(img), "FaceModelVersion": self.model_version}
            for img in images
        ]

    def faces(self, decoded: DecodedImage) -> list[FaceDetail]:
        """The faces of one photo, largest first (at most ``max_faces``)."""
        image = decoded.image
        found = self.detector.detect(image)
        found = sorted(found, key=lambda f: -(f.width * f.height))[: self.max_faces]
        if not found:
            return []
        descriptors = self.embedder.embed(image, found)
        return [
            self.detail(image.width, image.height, face, quality(image, face), vector)
            for face, vector in zip(found, descriptors, strict=True)
        ]

    @staticmethod
    def detail(
        width: int, height: int, face: Face, measured: dict[str, float], vector: np.ndarray
    ) -> FaceDetail:
        x0, y0, x1, y1 = (float(v) for v in face.box)
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(width), x1), min(float(height), y1)
        angles = pose(face)
        side = min(x1 - x0, y1 - y0)
        grouping = (
            side >= GROUPING_MIN_SIDE
            and measured["sharpness"] >= GROUPING_MIN_SHARPNESS
            and abs(angles["yaw"]) <= GROUPING_MAX_YAW
            and abs(angles["pitch"]) <= GROUPING_MAX_PITCH
        )
        return FaceDetail(
            BoundingBox=BoundingBox(
                Width=_ratio(x1 - x0, width),
                Height=_ratio(y1 - y0, height),
                Left=_ratio(x0, width),
                Top=_ratio(y0, height),
            ),
            Confidence=round(min(1.0, float(face.score)) * 100, 3),
            Landmarks=[
                Landmark(Type=name, X=_ratio(float(x), width), Y=_ratio(float(y), height))
                for name, (x, y) in zip(LANDMARK_TYPES, face.landmarks, strict=True)
            ],
            Pose=FacePose(Roll=angles["roll"], Yaw=angles["yaw"], Pitch=angles["pitch"]),
            Quality=FaceQuality(Brightness=measured["brightness"], Sharpness=measured["sharpness"]),
            descriptor=encode_descriptor(vector),
            Grouping=grouping,
        )


def _ratio(value: float, whole: int) -> float:
    return round(value / whole, 6) if whole else 0.0


class FaceDetectorService:
    """DetectFaces for single images, outside any index: what ``pixdex detect-faces`` and the
    Rekognition-compatible endpoint answer."""

    def __init__(self, settings: Settings, analyzer: FaceAnalyzer | None = None) -> None:
        self.max_pixels = settings.max_pixels if settings else DEFAULT_MAX_PIXELS
        self.analyzer = analyzer or FaceAnalyzer(threads=settings.threads)

    def faces_of_bytes(self, data: bytes) -> tuple[DecodedImage, list[FaceDetail]]:
        image = decode(data, min_side=self.analyzer.min_side, max_pixels=self.max_pixels)
        return image, self.analyzer.faces(image)

    def detect_bytes(self, data: bytes) -> dict[str, Any]:
        _, found = self.faces_of_bytes(data)
        return {"FaceDetails": [f.api_json() for f in found]}

    def detect_file(self, path: Path) -> dict[str, Any]:
        return self.detect_bytes(Path(path).read_bytes())
