"""The label vocabulary: ImageNet-1k classes named and arranged like Rekognition's labels.

``imagenet.json`` is generated from WordNet 3.0 by ``scripts/build_taxonomy.py`` (committed, so
nothing is read from WordNet at run time). Each class has a ``Name``, ``Aliases``, up to five
``Parents`` (most specific first), one of a fixed set of ``Categories``, and ``Ancestors``: every
label-worthy ancestor, used to sum a parent label's confidence over all of its classes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np


@dataclass(frozen=True, slots=True)
class LabelInfo:
    name: str
    parents: tuple[str, ...]
    aliases: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    #: one per class index (0…999)
    classes: tuple[LabelInfo, ...]
    #: parent labels (Dog, Vehicle, …), by name
    parents: dict[str, LabelInfo]
    #: (parent labels × classes) 0/1 matrix: parent probability = membership @ class probabilities
    membership: np.ndarray
    #: short hash of the data file: part of the label analyzer's version
    digest: str
    #: every label the vocabulary can emit, classes then parents, in the order of ``confidences``
    labels: tuple[LabelInfo, ...] = field(init=False)
    by_name: dict[str, LabelInfo] = field(init=False)

    def __post_init__(self) -> None:
        labels = self.classes + tuple(self.parents.values())
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "by_name", {info.name: info for info in labels})

    def info(self, name: str) -> LabelInfo | None:
        return self.by_name.get(name)

    def confidences(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities (1000,) → every label's confidence (0–100), aligned with
        ``labels``: a parent's is the summed probability of the classes below it."""
        parent_p = np.minimum(self.membership @ probs.astype(np.float32), 1.0)
        return np.concatenate([probs, parent_p.astype(probs.dtype)]) * 100


@cache
def imagenet() -> Taxonomy:
    raw = resources.files(__package__).joinpath("imagenet.json").read_bytes()
    data = json.loads(raw)
    classes = tuple(
        LabelInfo(c["Name"], tuple(c["Parents"]), tuple(c["Aliases"]), tuple(c["Categories"]))
        for c in data["classes"]
    )
    parents = {
        name: LabelInfo(name, tuple(p["Parents"]), (), tuple(p["Categories"]))
        for name, p in sorted(data["parents"].items())
    }
    row = {name: i for i, name in enumerate(parents)}
    membership = np.zeros((len(parents), len(classes)), dtype=np.float32)
    for j, c in enumerate(data["classes"]):
        for ancestor in c["Ancestors"]:
            membership[row[ancestor], j] = 1.0
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return Taxonomy(classes, parents, membership, digest)


@dataclass(frozen=True)
class DetectorVocabulary:
    """Labels of the object detectors' 80 COCO categories (``coco.json``, curated by hand).

    A detected object yields its class label and every parent in its chain as labels of their
    own (Rekognition's "Car" → "Motor Vehicle", "Vehicle", "Transportation"); parents are the
    same parent labels the ImageNet vocabulary uses, so both analyzers' labels merge."""

    #: one per COCO80 category, in the detectors' score order
    classes: tuple[LabelInfo, ...]
    #: every parent label a class can yield, by name
    parents: dict[str, LabelInfo]
    #: short hash of the data file: part of the object analyzer's version
    digest: str


@cache
def coco() -> DetectorVocabulary:
    raw = resources.files(__package__).joinpath("coco.json").read_bytes()
    data = json.loads(raw)
    classes = tuple(
        LabelInfo(c["Name"], tuple(c["Parents"]), tuple(c["Aliases"]), tuple(c["Categories"]))
        for c in data["classes"]
    )
    known = imagenet().parents
    own = {
        name: LabelInfo(name, tuple(p["Parents"]), (), tuple(p["Categories"]))
        for name, p in data["parents"].items()
    }
    parents: dict[str, LabelInfo] = {}
    for info in classes:
        for name in info.parents:
            found = own.get(name) or known.get(name)
            if found is None:
                raise ValueError(f"coco.json: parent {name!r} of {info.name} is not a label")
            parents[name] = found
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return DetectorVocabulary(classes, parents, digest)
