"""The label vocabulary: ImageNet-1k classes named and arranged like Rekognition's labels.

``imagenet.json`` is generated from WordNet 3.0 by ``scripts/build_taxonomy.py`` (committed, so
nothing is read from WordNet at run time). Each class has a ``Name``, ``Aliases``, up to five
``Parents`` (most specific first), one of a fixed set of ``Categories``, and ``Ancestors``: every
label-worthy ancestor, used to sum a parent label's confidence over all of its classes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
    parent_names: tuple[str, ...]
    #: short hash of the data file: part of the label analyzer's version
    digest: str

    def info(self, name: str) -> LabelInfo | None:
        return self.parents.get(name) or next((c for c in self.classes if c.name == name), None)

    @property
    def names(self) -> list[str]:
        """Every label the vocabulary can emit (classes and parents)."""
        return [c.name for c in self.classes] + list(self.parent_names)


@cache
def imagenet() -> Taxonomy:
    raw = resources.files(__package__).joinpath("imagenet.json").read_bytes()
    data = json.loads(raw)
    classes = tuple(
        LabelInfo(c["Name"], tuple(c["Parents"]), tuple(c["Aliases"]), tuple(c["Categories"]))
        for c in data["classes"]
    )
    parent_names = tuple(sorted(data["parents"]))
    parents = {
        name: LabelInfo(name, tuple(p["Parents"]), (), tuple(p["Categories"]))
        for name, p in data["parents"].items()
    }
    row = {name: i for i, name in enumerate(parent_names)}
    membership = np.zeros((len(parent_names), len(classes)), dtype=np.float32)
    for j, c in enumerate(data["classes"]):
        for ancestor in c["Ancestors"]:
            membership[row[ancestor], j] = 1.0
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return Taxonomy(classes, parents, membership, parent_names, digest)
