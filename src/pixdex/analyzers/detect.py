"""DetectLabels outside any index: what ``pixdex detect-labels`` and the Rekognition-compatible
HTTP endpoint answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pixdex.analyzers import label_analyzers
from pixdex.analyzers.base import Analyzer, merge_partials
from pixdex.config import Settings
from pixdex.imaging import DecodedImage, ImageError, decode


class LabelDetector:
    """The label analyzers of the default pipeline (labels + objects), Rekognition's response."""

    def __init__(self, settings: Settings, analyzers: list[Analyzer] | None = None) -> None:
        self.settings = settings
        if analyzers is None:
            # one batch at a time here (not a pipeline's several): every core for each model
            analyzers = label_analyzers(settings.model_copy(update={"analysis_workers": 1}))
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
        return self._answer(merged, max_labels, min_confidence)

    def _answer(
        self, merged: dict[str, Any], max_labels: int | None, min_confidence: float | None
    ) -> dict[str, Any]:
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

    def detect_files(
        self,
        paths: Iterable[Path],
        *,
        max_labels: int | None = None,
        min_confidence: float | None = None,
    ) -> Iterator[tuple[Path, dict[str, Any] | OSError | ImageError]]:
        """Answers for many files, in order, as ``pixdex index`` works: files are read and
        decoded by ``workers`` threads while the analyzers run on batches of ``batch_size``
        (one image at a time ran ~7 img/s; batches and overlap are what make indexing fast).
        A file that cannot be read or decoded yields its error; the others go on."""
        batch_size = max(1, self.settings.batch_size)
        with ThreadPoolExecutor(max(1, self.settings.workers)) as pool:
            pending: list[tuple[Path, Future[DecodedImage]]] = []
            for path in paths:
                pending.append((path, pool.submit(self._decode_file, path)))
                # keep two batches in flight: bounded memory, the decoders never starve
                if len(pending) >= 2 * batch_size:
                    yield from self._run(pending[:batch_size], max_labels, min_confidence)
                    pending = pending[batch_size:]
            while pending:
                yield from self._run(pending[:batch_size], max_labels, min_confidence)
                pending = pending[batch_size:]

    def _decode_file(self, path: Path) -> DecodedImage:
        data = Path(path).read_bytes()
        return decode(data, min_side=self.min_side, max_pixels=self.settings.max_pixels)

    def _run(
        self,
        batch: list[tuple[Path, Future[DecodedImage]]],
        max_labels: int | None,
        min_confidence: float | None,
    ) -> Iterator[tuple[Path, dict[str, Any] | OSError | ImageError]]:
        decoded: dict[int, DecodedImage] = {}
        errors: dict[int, OSError | ImageError] = {}
        for i, (_, future) in enumerate(batch):
            try:
                decoded[i] = future.result()
            except (OSError, ImageError) as exc:
                errors[i] = exc
        images = list(decoded.values())
        parts = [a.analyze(images) for a in self.analyzers] if images else []
        answers = {
            i: self._answer(merge_partials([p[k] for p in parts]), max_labels, min_confidence)
            for k, i in enumerate(decoded)
        }
        for i, (path, _) in enumerate(batch):
            yield path, errors[i] if i in errors else answers[i]
