"""The analyzer contracts: what we learn from an image, as partial records.

Two kinds, because two kinds of work exist:

- ``Analyzer``: a batch of decoded pixels in, one partial record per image out — local models,
  batched because inference is much faster per image in batches.
- ``RemoteAnalyzer``: one object at a time, analyzed where it lives — a remote service such as
  Amazon Rekognition, given the object's location (S3Object) or its bytes. The pipeline runs it in
  its worker pool and neither downloads nor decodes an object for it unless it asks to.

Two optional attributes let ``pixdex reindex --reanalyze`` (``pipeline.Reanalyzer``) run fewer
analyzers: ``fields``, the record fields an analyzer alone writes (the text analyzer: added to or
removed from an index without re-running the others), and ``overrides``, fields an analyzer
writes that another may give too, its answer being the one kept (Rekognition's DetectText).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pixdex.imaging import DecodedImage
from pixdex.records import Label, unite_labels
from pixdex.sources.base import ObjectRef, Source


@runtime_checkable
class Analyzer(Protocol):
    #: short stable name, stored in ``Record.analyzers``
    name: str
    #: changes whenever outputs may change (weights, taxonomy, calibration): triggers re-analysis
    version: str
    #: shorter image side this analyzer needs for full accuracy; JPEG draft mode keeps at least it
    min_side: int

    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        """Partial record fields (e.g. ``{"Labels": [...], "LabelModelVersion": ...}``) per image,
        in order. Batched because inference is much faster per image in batches."""
        ...


@dataclass(slots=True)
class Photo:
    """One object as a RemoteAnalyzer sees it: where it lives and what the pipeline read of it.

    ``data`` is None when nobody needed the bytes (the analyzer reads the object by reference);
    ``image`` is set only when a pixel ``Analyzer`` runs beside it."""

    source: Source
    ref: ObjectRef
    data: bytes | None = None
    image: DecodedImage | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """An object a RemoteAnalyzer could not analyze: a one-line reason users can act on, and
    whether it may pass by itself (throttling that outlasted the retries, a service outage), so
    event consumers redeliver it rather than record it as a bad object."""

    reason: str
    transient: bool = False


@runtime_checkable
class RemoteAnalyzer(Protocol):
    #: short stable name, stored in ``Record.analyzers``
    name: str
    #: changes whenever outputs may change (settings sent to the service): triggers re-analysis
    version: str
    #: objects worth having in flight at once (remote latency); the pipeline sizes its pool by it
    concurrency: int

    def reads_by_reference(self, source: Source) -> bool:
        """True when the analyzer reads this source's objects itself (Rekognition's S3Object),
        so the pipeline need not fetch them — unless a pixel analyzer runs too."""
        ...

    def analyze_object(self, photo: Photo) -> dict[str, Any] | Failed:
        """Partial record fields for one object, or why it could not be analyzed. Must be
        thread-safe: the pipeline calls it from ``concurrency`` threads at once."""
        ...


def even_batch_size(count: int, batch_size: int, workers: int) -> int:
    """The batch size for ``count`` photos analyzed by ``workers`` threads at once: at most
    ``batch_size``, and a few photos (an SQS message batch of 10, a webhook, a watch event, a
    short ``detect-labels`` list) split evenly over the workers — with one model thread per
    batch (``Settings.session_threads``), 8 + 2 would leave a core idle while the 8 are
    analyzed."""
    return max(1, min(batch_size, -(-count // max(1, workers))))


def merge_partials(partials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine analyzers' partial records: ``Labels`` lists are united (``unite_labels``: a name
    seen twice keeps its higher confidence and gains the other's instances); other fields are set
    by whoever provides them."""
    merged: dict[str, Any] = {}
    found: list[Label] = []
    for part in partials:
        for key, value in part.items():
            if key != "Labels":
                merged[key] = value
                continue
            found.extend(lb if isinstance(lb, Label) else Label.model_validate(lb) for lb in value)
    labels = unite_labels(found)
    # best first; at equal confidence the thing seen (with boxes) before the parent labels it
    # yields (Dog before Animal, Canine, Mammal, Pet), so a MaxLabels cut keeps the thing
    merged["Labels"] = sorted(labels, key=lambda lb: (-lb.Confidence, not lb.Instances, lb.Name))
    return merged
