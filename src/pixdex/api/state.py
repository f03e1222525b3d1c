"""What every request handler shares, kept on ``app.state.pixdex`` (one per app, no globals).

Routers outside this package (e.g. the MinIO webhook) get the same objects through the
``get_state`` / ``get_index`` / ``get_settings`` dependencies.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from pixdex.api.media import S3Access
from pixdex.api.metrics import Metrics
from pixdex.api.thumbs import ThumbnailCache
from pixdex.config import Settings
from pixdex.indexes.base import Index, IndexUnavailable
from pixdex.logs import Redactor

if TYPE_CHECKING:
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.analyzers.text import TextDetector

log = logging.getLogger(__name__)


class IndexHolder:
    """Opens the configured index on first use and again after a failed open, so a server started
    before Elasticsearch (or with a locked file) answers 503 with the reason, then recovers."""

    def __init__(self, settings: Settings, index: Index | None) -> None:
        self._settings = settings
        self._index = index
        self._owned = index is None  # only close what we opened
        self._lock = threading.Lock()

    def get(self) -> Index:
        if self._index is not None:
            return self._index
        with self._lock:
            if self._index is None:
                from pixdex.indexes import open_index

                try:
                    self._index = open_index(self._settings.index, self._settings)
                except IndexUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - any open failure is "unavailable"
                    raise IndexUnavailable(f"{self._settings.index}: {exc}") from exc
            return self._index

    def close(self) -> None:
        with self._lock:
            if self._owned and self._index is not None:
                try:
                    self._index.close()
                except Exception as exc:  # noqa: BLE001 - shutting down anyway
                    log.warning("closing the index failed: %s", exc)
                self._index = None


class DetectorHolder:
    """The label analyzers for the Rekognition endpoint, loaded on first use (model load takes
    seconds and memory; a server that only searches never pays for it)."""

    def __init__(self, settings: Settings, detector: LabelDetector | None = None) -> None:
        self._settings = settings
        self._detector = detector
        self._lock = threading.Lock()

    def get(self) -> LabelDetector:
        if self._detector is not None:
            return self._detector
        with self._lock:
            if self._detector is None:
                from pixdex.analyzers.detect import LabelDetector

                self._detector = LabelDetector(self._settings)
            return self._detector


class TextDetectorHolder:
    """The text analyzer for the DetectText endpoint, loaded on first use (like DetectorHolder)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._detector: TextDetector | None = None
        self._lock = threading.Lock()

    def get(self) -> TextDetector:
        with self._lock:
            if self._detector is None:
                from pixdex.analyzers.text import TextDetector

                self._detector = TextDetector(self._settings)
            return self._detector


@dataclass
class ApiState:
    settings: Settings
    index: IndexHolder
    detector: DetectorHolder
    thumbs: ThumbnailCache
    s3: S3Access
    metrics: Metrics
    #: Hides secrets and server paths in error bodies (``pixdex.logs.Redactor``).
    redact: Redactor = field(default_factory=Redactor)
    extras: dict[str, Any] = field(default_factory=dict)
    text: TextDetectorHolder = field(init=False)

    def __post_init__(self) -> None:
        self.text = TextDetectorHolder(self.settings)


def get_state(request: Request) -> ApiState:
    return request.app.state.pixdex


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_index(request: Request) -> Index:
    """The open index, or IndexUnavailable (answered as 503 with the reason)."""
    return get_state(request).index.get()
