"""Which analyzers a run uses: the ``analyzer`` setting (flag ``--analyzer``, ``PIXDEX_ANALYZER``,
``analyzer = [...]`` in the config file), resolved to analyzer objects.

- ``local`` (the default): the default local set (``analyzers.default_analyzers``);
- ``rekognition``: Amazon Rekognition (the ``rekognition`` integration, ``pixdex[rekognition]``),
  which costs money per image;
- single local analyzers by name, to run beside Rekognition: ``labels``, ``objects``,
  ``properties``, ``exif``, ``text``, ``faces``.

Kept apart from ``analyzers/__init__.py`` (the default set) so the two can change independently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pixdex.errors import ConfigError
from pixdex.integrations import load

if TYPE_CHECKING:
    from pixdex.config import Settings


def _labels(settings: Settings) -> Any:
    from pixdex.analyzers.labels import LabelAnalyzer

    return LabelAnalyzer.from_settings(settings)


def _objects(settings: Settings) -> Any:
    from pixdex.analyzers.objects import ObjectDetectionAnalyzer

    return ObjectDetectionAnalyzer.from_settings(settings)


def _properties(settings: Settings) -> Any:
    from pixdex.analyzers.properties import PropertiesAnalyzer

    return PropertiesAnalyzer()


def _exif(settings: Settings) -> Any:
    from pixdex.analyzers.exif import ExifAnalyzer

    return ExifAnalyzer()


def _text(settings: Settings) -> Any:
    from pixdex.analyzers.text import TextAnalyzer

    return TextAnalyzer.from_settings(settings)


def _faces(settings: Settings) -> Any:
    from pixdex.analyzers.faces import FaceAnalyzer

    return FaceAnalyzer.from_settings(settings)


def _rekognition(settings: Settings) -> Any:
    module = load("rekognition", "--analyzer rekognition", "analyzer")
    return module.RekognitionAnalyzer.from_settings(settings)


#: single analyzers by name (the ``name`` they store in ``Record.analyzers``)
SINGLE: dict[str, Callable[[Settings], Any]] = {
    "labels": _labels,
    "objects": _objects,
    "properties": _properties,
    "exif": _exif,
    "text": _text,
    "faces": _faces,
    "rekognition": _rekognition,
}
CHOICES = ("local", *SINGLE)


def check_names(names: list[str]) -> list[str]:
    """The names, lower-cased; raises ConfigError naming the bad one and the choices."""
    wanted = [name.strip().lower() for name in names]
    if not wanted:
        raise ConfigError(f"invalid setting: analyzer is empty (choose from {', '.join(CHOICES)})")
    for name in wanted:
        if name not in CHOICES:
            raise ConfigError(
                f"invalid setting: analyzer {name!r} is unknown (choose from {', '.join(CHOICES)};"
                " flag --analyzer, PIXDEX_ANALYZER or the config file)"
            )
    return wanted


def uses_rekognition(settings: Settings) -> bool:
    return "rekognition" in check_names(settings.analyzer)


def select_analyzers(settings: Settings) -> list[Any]:
    """The analyzers the settings ask for, each once, in the order given."""
    from pixdex.analyzers import default_analyzers

    chosen: list[Any] = []
    names: set[str] = set()
    for name in check_names(settings.analyzer):
        group = default_analyzers(settings) if name == "local" else [SINGLE[name](settings)]
        for analyzer in group:
            if analyzer.name not in names:
                names.add(analyzer.name)
                chosen.append(analyzer)
    return chosen
