"""What every request handler shares, kept on ``app.state.pixdex`` (one per app, no globals).

Routers outside this package (e.g. the MinIO webhook) get the same objects through the
``get_state`` / ``get_index`` / ``get_settings`` dependencies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fastapi import Request

from pixdex.api.media import S3Access
from pixdex.api.metrics import Metrics
from pixdex.api.thumbs import ThumbnailCache
from pixdex.config import Settings
from pixdex.errors import IndexUnavailable
from pixdex.indexes.base import Index
from pixdex.logs import Redactor

if TYPE_CHECKING:
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.analyzers.text import TextDetector, WordFilter
    from pixdex.api.batching import DecodePool, ImageBatcher, LabelOptions

Detector = TypeVar("Detector")
Options = TypeVar("Options")

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
                    self._index = open_index(self._settings.index, self._settings, serving=True)
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


class _BatchedHolder(Generic[Detector, Options]):
    """An endpoint's analyzer, loaded on first use (model load takes seconds and memory; a server
    that only searches never pays for it), and the micro-batcher that runs concurrent requests
    through it in batches (``api.batching``)."""

    operation = ""

    def __init__(
        self,
        settings: Settings,
        detector: Detector | None = None,
        metrics: Metrics | None = None,
        decoding: DecodePool | None = None,
    ) -> None:
        from pixdex.api.batching import DecodePool

        self._settings = settings
        self._detector = detector
        self._metrics = metrics
        #: shared by every image endpoint (``batching.DecodePool``)
        self.decoding = decoding or DecodePool()
        self._batcher: ImageBatcher[Options] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Detector:
        raise NotImplementedError

    def _make_batcher(
        self, detector: Detector, on_batch: Callable[[int, float], None] | None
    ) -> ImageBatcher[Options]:
        raise NotImplementedError  # each endpoint's holder says how its batches run

    def get(self) -> Detector:
        if self._detector is not None:
            return self._detector
        with self._lock:
            if self._detector is None:
                self._detector = self._load()
            return self._detector

    def batcher(self) -> ImageBatcher[Options]:
        if self._batcher is not None:
            return self._batcher
        detector = self.get()
        with self._lock:
            if self._batcher is None:
                metrics = self._metrics
                observe = metrics.batch_observer(self.operation) if metrics is not None else None
                self._batcher = self._make_batcher(detector, observe)
            return self._batcher

    def close(self) -> None:
        """Answer the requests already queued, then stop the batch thread."""
        with self._lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()


class DetectorHolder(_BatchedHolder["LabelDetector", "LabelOptions"]):
    """The label analyzers (classifier + object detector) for DetectLabels."""

    operation = "DetectLabels"

    def _load(self) -> LabelDetector:
        from pixdex.analyzers.detect import LabelDetector

        return LabelDetector(self._settings)

    def _make_batcher(
        self, detector: LabelDetector, on_batch: Callable[[int, float], None] | None
    ) -> ImageBatcher[LabelOptions]:
        from pixdex.api.batching import label_batcher

        return label_batcher(detector, self._settings, on_batch, self.decoding)


class TextDetectorHolder(_BatchedHolder["TextDetector", "WordFilter | None"]):
    """The text analyzer for DetectText."""

    operation = "DetectText"

    def _load(self) -> TextDetector:
        from pixdex.analyzers.text import TextDetector

        return TextDetector(self._settings)

    def _make_batcher(
        self, detector: TextDetector, on_batch: Callable[[int, float], None] | None
    ) -> ImageBatcher[WordFilter | None]:
        from pixdex.api.batching import text_batcher

        return text_batcher(detector, self._settings, on_batch, self.decoding)


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
        self.text = TextDetectorHolder(
            self.settings, metrics=self.metrics, decoding=self.detector.decoding
        )


def get_state(request: Request) -> ApiState:
    return request.app.state.pixdex


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_index(request: Request) -> Index:
    """The open index, or IndexUnavailable (answered as 503 with the reason)."""
    return get_state(request).index.get()
