"""DetectLabels for single images, outside any index: what ``pixdex detect-labels`` and the
Rekognition-compatible HTTP endpoint answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixdex.analyzers import label_analyzers
from pixdex.analyzers.base import Analyzer, merge_partials
from pixdex.config import Settings
from pixdex.imaging import decode


class LabelDetector:
    """The label analyzers of the default pipeline (labels + people), Rekognition's response."""

    def __init__(self, settings: Settings, analyzers: list[Analyzer] | None = None) -> None:
        self.settings = settings
        if analyzers is None:
            analyzers = label_analyzers(settings)
        self.analyzers = analyzers
        self.min_side = max(a.min_side for a in analyzers)

    def detect_bytes(
        self,
        data: bytes,
        *,
        max_labels: int | None = None,
        min_confidence: float | None = None,
    ) -> dict[str, Any]:
        image = decode(data, min_side=self.min_side, max_pixels=self.settings.max_pixels)
        merged = merge_partials([a.analyze([image])[0] for a in self.analyzers])
        # The analyzers keep labels down to store_min_confidence (what the index stores); the
        # answer holds what Rekognition would: labels and instances ≥ MinConfidence (default
        # min_confidence), at most MaxLabels.
        floor = self.settings.min_confidence if min_confidence is None else min_confidence
        cap = self.settings.max_labels if max_labels is None else max_labels
        labels = [
            lb.model_copy(update={"Instances": [i for i in lb.Instances if i.Confidence >= floor]})
            for lb in merged["Labels"]
            if lb.Confidence >= floor
        ][:cap]
        return {
            "Labels": [lb.to_json() for lb in labels],
            "LabelModelVersion": merged.get("LabelModelVersion", ""),
        }

    def detect_file(self, path: Path, **options: Any) -> dict[str, Any]:
        return self.detect_bytes(Path(path).read_bytes(), **options)
