"""``pixdex index --dry-run``: what a run would analyze and, with Rekognition, roughly what it
would cost — counted from the listing and the index, without reading a photo or calling anyone.

The price is an assumption the user can and should check: ``rekognition.price`` (USD per image
per billed unit), by default the list price of DetectLabels/DetectText for the first million
images a month in us-east-1 as pixdex knew it — not verifiable from the machine it was written
on (no internet) on PRICE_ASSUMED_ON. Each DetectLabels feature
(GENERAL_LABELS, IMAGE_PROPERTIES) and DetectText is counted as one billed unit per photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pixdex.analyzers.select import select_analyzers

if TYPE_CHECKING:
    from pixdex.config import Settings
    from pixdex.sources.base import Source

PRICE_ASSUMED_ON = "2026-12-01"


@dataclass
class Estimate:
    listed: int
    unchanged: int
    todo: int
    units: list[str]  # billed units per photo sent to Rekognition ([] without Rekognition)
    price: float  # USD per image per unit

    @property
    def cost(self) -> float:
        return self.todo * len(self.units) * self.price

    def __str__(self) -> str:
        lines = [
            f"dry run: {self.listed} photo(s) listed, {self.unchanged} unchanged, "
            f"{self.todo} would be analyzed (nothing was read, sent or written)"
        ]
        if not self.units:
            lines.append("no remote analyzer selected: nothing is billed")
            return "\n".join(lines)
        lines.append(
            f"Rekognition: at most {self.todo} photo(s) × {len(self.units)} billed unit(s) "
            f"({', '.join(self.units)}) = {self.todo * len(self.units)} image unit(s)"
        )
        lines.append(
            f"estimated price: ${self.cost:,.2f} at ${self.price:g} per image per unit "
            "(assumed: the rekognition.price setting, AWS's us-east-1 list price for the first "
            "million "
            f"images a month as pixdex knew it, not verified on {PRICE_ASSUMED_ON}: check yours; "
            "touched but identical folder files are skipped after hashing, so the real count "
            "can be lower)"
        )
        return "\n".join(lines)


def billed_units(settings: Settings) -> list[str]:
    """What Rekognition bills per photo for these settings."""
    units = [f"DetectLabels {f}" for f in settings.rekognition.features]
    if settings.rekognition.text:
        units.append("DetectText")
    return units


def dry_run(source: Source, settings: Settings, *, force: bool = False) -> Estimate:
    from pixdex.indexes import open_index
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import Pipeline

    analyzers = select_analyzers(settings)
    location = settings.index.removeprefix("sqlite://")
    if "://" not in location and not Path(location).expanduser().exists():
        index = SqliteIndex(":memory:")  # no index yet: everything is new, and none is created
    else:
        index = open_index(settings.index, settings)
    try:
        pipeline = Pipeline(analyzers, index)
        listed = list(source.list())
        todo, _, unchanged = pipeline.plan(source, listed, force=force)
    finally:
        index.close()
    remote = any(a.name == "rekognition" for a in pipeline.remote_analyzers)
    return Estimate(
        listed=len(listed),
        unchanged=unchanged,
        todo=len(todo),
        units=billed_units(settings) if remote else [],
        price=settings.rekognition.price,
    )
