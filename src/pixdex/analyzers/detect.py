"""DetectLabels outside any index: what ``pixdex detect-labels`` and the Rekognition-compatible
HTTP endpoint answer."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixdex.analyzers import label_analyzers
from pixdex.analyzers.base import Analyzer, even_batch_size, merge_partials
from pixdex.config import Settings
from pixdex.errors import ImageError, ModelError
from pixdex.imaging import DecodedImage, decode

if TYPE_CHECKING:
    from pixdex.analyzers.labels import LabelAnalyzer

#: one file's answer: its DetectLabels response, or why it could not be read or decoded
Answer = dict[str, Any] | OSError | ImageError


class LabelDetector:
    """The label analyzers of the default pipeline (labels + objects), Rekognition's response.

    ``parallel`` batches may be analyzed at once (``analysis_workers``, from different threads:
    the CLI's batches, the server's batch threads), each model on ``Settings.session_threads``
    intra-op threads, as ``pixdex index`` runs them: with one batch at a time and every core per
    model, the cores idled while a batch was in Python code (docs/benchmarks.md, "Threads per
    model and batch size")."""

    def __init__(self, settings: Settings, analyzers: list[Analyzer] | None = None) -> None:
        self.settings = settings
        self.parallel = max(1, settings.analysis_workers)
        self.analyzers = label_analyzers(settings) if analyzers is None else analyzers
        self.min_side = max(a.min_side for a in self.analyzers)

    def label_analyzer(self) -> LabelAnalyzer:
        """The classifier's analyzer (what embeds a photo for ``pixdex.similar``)."""
        from pixdex.analyzers.labels import LabelAnalyzer

        found = next((a for a in self.analyzers if isinstance(a, LabelAnalyzer)), None)
        if found is None:
            raise ModelError("no classifier among the label analyzers")
        return found

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
    ) -> Iterator[tuple[Path, Answer]]:
        """Answers for many files, in order, as ``pixdex index`` works: files are read and
        decoded by ``workers`` threads while ``parallel`` threads analyze batches of
        ``batch_size`` (batches, and decoding overlapped with analysis, are what make indexing
        fast; docs/benchmarks.md, "(2) Naive baseline"). A file that cannot be read or decoded
        yields its error; the others go on. A short list is split evenly over the analysis
        threads, so none idles."""
        batch_size = max(1, self.settings.batch_size)
        if isinstance(paths, Sequence):
            batch_size = even_batch_size(len(paths), batch_size, self.parallel)
        with (
            ThreadPoolExecutor(max(1, self.settings.workers), "pixdex-decode") as decoders,
            ThreadPoolExecutor(self.parallel, "pixdex-analyze") as analysts,
        ):
            running: deque[Future[list[tuple[Path, Answer]]]] = deque()
            batch: list[tuple[Path, Future[DecodedImage]]] = []

            def start(batch: list[tuple[Path, Future[DecodedImage]]]) -> None:
                running.append(analysts.submit(self._run, batch, max_labels, min_confidence))

            for path in paths:
                batch.append((path, decoders.submit(self._decode_file, path)))
                if len(batch) >= batch_size:
                    start(batch)
                    batch = []
                    # one batch decoding beyond those being analyzed: bounded memory, and the
                    # decoders never starve
                    while len(running) > self.parallel:
                        yield from running.popleft().result()
            if batch:
                start(batch)
            while running:
                yield from running.popleft().result()

    def _decode_file(self, path: Path) -> DecodedImage:
        data = Path(path).read_bytes()
        return decode(data, min_side=self.min_side, max_pixels=self.settings.max_pixels)

    def _run(
        self,
        batch: list[tuple[Path, Future[DecodedImage]]],
        max_labels: int | None,
        min_confidence: float | None,
    ) -> list[tuple[Path, Answer]]:
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
        return [
            (path, errors[i] if i in errors else answers[i]) for i, (path, _) in enumerate(batch)
        ]
