"""Analyzers: a batch of decoded images in, partial records out (see ``base.Analyzer``).

The factories below say which analyzers a default install runs; heavy imports (ONNX Runtime)
happen only when one is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixdex.analyzers.base import Analyzer

if TYPE_CHECKING:
    from pixdex.config import Settings

__all__ = ["Analyzer", "default_analyzers", "label_analyzers"]


def label_analyzers(settings: Settings) -> list[Analyzer]:
    """What answers DetectLabels: the ImageNet classifier (what the photo shows: scenes, breeds,
    dishes…) and, unless turned off, the object detector (80 kinds of things with boxes, Person
    included)."""
    from pixdex.analyzers.labels import LabelAnalyzer

    analyzers: list[Analyzer] = [LabelAnalyzer.from_settings(settings)]
    if settings.objects:
        from pixdex.analyzers.objects import ObjectDetectionAnalyzer

        analyzers.append(ObjectDetectionAnalyzer.from_settings(settings))
    return analyzers


def default_analyzers(settings: Settings) -> list[Analyzer]:
    """The analyzers a default install runs: labels (+ objects), image properties, EXIF, text
    (OCR) when ``settings.text`` and faces when ``settings.faces``."""
    from pixdex.analyzers.exif import ExifAnalyzer
    from pixdex.analyzers.properties import PropertiesAnalyzer

    analyzers = [*label_analyzers(settings), PropertiesAnalyzer(), ExifAnalyzer()]
    if settings.text:
        from pixdex.analyzers.text import TextAnalyzer

        analyzers.append(TextAnalyzer.from_settings(settings))
    if settings.faces:
        from pixdex.analyzers.faces import FaceAnalyzer

        analyzers.append(FaceAnalyzer.from_settings(settings))
    return analyzers
