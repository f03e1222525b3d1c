"""Analyzers: a batch of decoded images in, partial records out (see ``base.Analyzer``).

The factories below say which analyzers a default install runs; heavy imports (ONNX Runtime,
TFLite) happen only when one is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixdex.analyzers.base import Analyzer

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["Analyzer", "default_analyzers", "label_analyzers"]


def label_analyzers(settings: Settings) -> list[Analyzer]:
    """What answers DetectLabels: the label classifier, plus the person detector when enabled."""
    from pixdex.analyzers.labels import LabelAnalyzer

    analyzers: list[Analyzer] = [LabelAnalyzer.from_settings(settings)]
    if settings.people:
        from pixdex.analyzers.people import PeopleAnalyzer

        analyzers.append(
            PeopleAnalyzer(
                threads=settings.threads,
                cache_dir=settings.cache_dir,
                min_confidence=settings.store_min_confidence,
                views=settings.people_views,
            )
        )
    return analyzers


def default_analyzers(settings: Settings) -> list[Analyzer]:
    """The analyzers a default install runs: labels (+ people), image properties, EXIF."""
    from pixdex.analyzers.exif import ExifAnalyzer
    from pixdex.analyzers.properties import PropertiesAnalyzer

    return [*label_analyzers(settings), PropertiesAnalyzer(), ExifAnalyzer()]
