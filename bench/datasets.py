"""The annotated photo sets the evaluations use, in one place, with their splits.

- ``coco128``: 128 COCO train2017 photos, 80 categories. The COCO detectors TRAINED on these
  photos (and the classifier's temperature was fitted on them): figures here flatter the product.
- ``voc-fit`` / ``voc-report``: the 300 PASCAL VOC 2007 test photos (no COCO detector saw them),
  20 categories, split in two by file-name order (even positions fit, odd positions report).
  Thresholds, fusion weights and the confidence calibration are fitted on ``voc-fit`` only;
  ``voc-report`` is where the product's quality is reported.
- COCO val2017 is reserved for acceptance and never read here.

VOC labels only 20 categories: a detection of another COCO category (a cup, a book) there is not
a mistake, just unlabelled, so precision on VOC is scored over the 20 only; ``difficult`` boxes
count neither way (missing one is no miss, finding one no hit), as VOC scores them.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"
NAMES = ("coco128", "voc-fit", "voc-report")


@dataclass(frozen=True, slots=True)
class Box:
    category: str
    xywh: tuple[float, float, float, float]
    difficult: bool = False
    crowd: bool = False


@dataclass(frozen=True, slots=True)
class Photo:
    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]

    @property
    def area(self) -> int:
        return self.width * self.height

    def present(self) -> set[str]:
        """Categories that count as in the photo (not only by difficult boxes)."""
        return {b.category for b in self.boxes if not b.difficult}

    def ignored(self) -> set[str]:
        """Categories seen only in difficult boxes: neither hit nor miss, nor a false label."""
        return {b.category for b in self.boxes if b.difficult} - self.present()


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    photos: tuple[Photo, ...]
    #: the categories that are labelled at all (precision is scored over these only)
    categories: frozenset[str]
    #: True when the COCO detectors trained on these photos
    seen_in_training: bool


def load(name: str) -> Dataset:
    if name not in NAMES:
        raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    if name == "coco128":
        root = SHARED / "coco128"
        data = json.loads((root / "annotations" / "instances.json").read_text())
    else:
        root = SHARED / "voc2007"
        data = json.loads((root / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    boxes: dict[int, list[Box]] = defaultdict(list)
    for a in data["annotations"]:
        box = Box(
            names[a["category_id"]],
            tuple(a["bbox"]),
            bool(a.get("difficult", 0)),
            bool(a.get("iscrowd", 0)),
        )
        boxes[a["image_id"]].append(box)
    images = sorted(data["images"], key=lambda im: im["file_name"])
    if name != "coco128":
        images = images[0::2] if name == "voc-fit" else images[1::2]
    photos = tuple(
        Photo(root / "images" / im["file_name"], im["width"], im["height"], tuple(boxes[im["id"]]))
        for im in images
    )
    return Dataset(name, photos, frozenset(names.values()), seen_in_training=name == "coco128")
