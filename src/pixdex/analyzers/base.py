"""The analyzer contracts: what we learn from an image, as partial records.

Two kinds, because two kinds of work exist:

- ``Analyzer``: a batch of decoded pixels in, one partial record per image out — local models,
  batched because inference is much faster per image in batches.
- ``RemoteAnalyzer``: one object at a time, analyzed where it lives — a remote service such as
  Amazon Rekognition, given the object's location (S3Object) or its bytes. The pipeline runs it in
  its worker pool and neither downloads nor decodes an object for it unless it asks to.

Optional abilities, each a Protocol checked here and nowhere else:

- ``OwnsFields``: the record fields an analyzer alone writes (the text analyzer: added to or
  removed from an index by ``pixdex reindex --reanalyze`` without re-running the others);
- ``Overrides``: fields an analyzer writes that another may give too, its answer being the one
  kept (Rekognition's DetectText);
- ``Metered``: an analyzer that calls a billed service and counts its calls (``usage``), which
  every command's summary reports (``usage_report``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pixdex.imaging import DecodedImage
from pixdex.records import Failure, Label, unite_labels
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

    def analyze_object(self, photo: Photo) -> dict[str, Any] | Failure:
        """Partial record fields for one object, or why it could not be analyzed (``transient``
        when that may pass by itself: throttling that outlasted the retries, an outage). Must be
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


@runtime_checkable
class OwnsFields(Protocol):
    #: record fields this analyzer alone writes
    fields: tuple[str, ...]


@runtime_checkable
class Overrides(Protocol):
    #: record fields another analyzer may give too, this one's answer being the one kept
    overrides: tuple[str, ...]


@runtime_checkable
class Metered(Protocol):
    name: str

    @property
    def usage(self) -> dict[str, int]:
        """Calls, throttled answers, retries and failures so far."""
        ...


def owned_fields(analyzer: object) -> tuple[str, ...]:
    return analyzer.fields if isinstance(analyzer, OwnsFields) else ()


def overridden_fields(analyzer: object) -> tuple[str, ...]:
    return analyzer.overrides if isinstance(analyzer, Overrides) else ()


def is_remote(analyzer: object) -> bool:
    """A ``RemoteAnalyzer`` (one object at a time, in the pipeline's pool) or a pixel one."""
    return isinstance(analyzer, RemoteAnalyzer)


def usage_report(analyzers: Iterable[object]) -> dict[str, dict[str, int]]:
    """analyzer name → its usage counters, for the metered analyzers among ``analyzers``."""
    return {a.name: dict(a.usage) for a in analyzers if isinstance(a, Metered)}


def usage_lines(analyzers: Iterable[object]) -> list[tuple[str, str]]:
    """(analyzer, "calls N, throttled N, retried N, failed N") for each metered analyzer."""
    report = usage_report(analyzers)
    return [(name, ", ".join(f"{k} {v}" for k, v in c.items())) for name, c in report.items()]
