"""The Analyzer contract: a batch of decoded images in, one partial record per image out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pixdex.imaging import DecodedImage
from pixdex.records import Label


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


def merge_partials(partials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine analyzers' partial records: ``Labels`` lists are united (a name seen twice keeps
    its higher confidence and gains the other's instances); other fields are set by whoever
    provides them."""
    merged: dict[str, Any] = {}
    labels: dict[str, Label] = {}
    for part in partials:
        for key, value in part.items():
            if key != "Labels":
                merged[key] = value
                continue
            for label in value:
                label = label if isinstance(label, Label) else Label.model_validate(label)
                seen = labels.get(label.Name.lower())
                if seen is None:
                    labels[label.Name.lower()] = label
                    continue
                keep, other = (label, seen) if label.Confidence > seen.Confidence else (seen, label)
                if not keep.Instances:
                    keep.Instances = other.Instances
                for attr in ("Parents", "Aliases", "Categories"):
                    names = {n.Name for n in getattr(keep, attr)}
                    getattr(keep, attr).extend(
                        n for n in getattr(other, attr) if n.Name not in names
                    )
                labels[label.Name.lower()] = keep
    merged["Labels"] = sorted(labels.values(), key=lambda lb: (-lb.Confidence, lb.Name))
    return merged
