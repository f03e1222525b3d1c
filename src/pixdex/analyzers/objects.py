"""Objects: a label with boxes for every COCO category a detector finds (Person, Car, Dog, Cup…).

The ImageNet classifier names a photo's main subject; it misses most of what else is in it and
has no person class. Two small COCO-80 detectors on ONNX Runtime (``models/detectors.py``)
look for 80 everyday kinds of things, and this analyzer turns what they find into Rekognition's
shape: one label per category with an ``Instances`` entry (box + confidence) per object, plus the
category's parents as labels of their own ("Car" → "Motor Vehicle", "Vehicle",
"Transportation"), named from ``taxonomy/coco.json``. ``merge_partials`` unites them with the
classifier's labels (one label per name).

Cost: the second detector runs only where the first is unsure of something — some category's
best score from SSDLite between 0.25 and 0.5, a band chosen on the PASCAL VOC 2007 fit split by
``bench/eval_labels.py --fit-cascade`` (there it keeps the pair's recall and Person recall, and
nearly all of its boxes, with NanoDet on a minority of the photos). Elsewhere SSDLite's objects
stand alone, with SSDLite's own calibration. docs/labels.md ("NanoDet only where SSDLite is
unsure") has what this keeps and what it costs.

Confidence: the detectors' fused score is mapped through a logistic (Platt) calibration fitted
on photos none of the detectors trained on (the PASCAL VOC 2007 fit split, by
``bench/eval_labels.py --fit``): Confidence ≈ 100 × the chance the object is really there, so
Rekognition's default floor of 55 means "more likely than not". docs/labels.md has the fit and
what it gives on other photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pixdex.imaging import DecodedImage
from pixdex.models.detectors import COCO80, DETECTORS, Detections, OnnxDetector, fuse
from pixdex.records import BoundingBox, Instance, Label, Named
from pixdex.taxonomy import DetectorVocabulary, LabelInfo, coco

if TYPE_CHECKING:
    from pixdex.config import Settings


@dataclass(frozen=True, slots=True)
class Preset:
    """A detector combination with its fusion weights and its calibration (fitted together)."""

    detectors: tuple[str, ...]
    weights: tuple[float, ...]
    #: Confidence = 100 × sigmoid(slope × logit(score) + offset)
    slope: float
    offset: float
    #: the offset for Person (None: ``offset``): its own operating point, because a false
    #: Person is the mistake people notice most (fitted to a false-Person rate, see --fit)
    person_offset: float | None = None
    #: (lo, hi): the detectors after the first run only on photos where the first is unsure —
    #: its best score for some category in [lo, hi); None: always all of them
    unsure: tuple[float, float] | None = None
    #: the preset (its calibration) that applies where the first detector ran alone
    alone: Preset | None = None

    def __post_init__(self) -> None:
        if (self.unsure is None) != (self.alone is None):
            raise ValueError("a preset with an 'unsure' band needs an 'alone' preset, and back")


#: by ``bench/eval_labels.py --fit`` on the VOC 2007 fit split (docs/labels.md)
_SSDLITE = Preset(("ssdlite",), (1.0,), 1.703, 2.357, 0.244)
PRESETS: dict[str, Preset] = {
    # NanoDet where SSDLite is unsure (the band by --fit-cascade), SSDLite alone elsewhere
    "ssdlite+nanodet": Preset(
        ("ssdlite", "nanodet"), (0.6, 0.4), 2.443, 2.922, 1.768, (0.25, 0.5), _SSDLITE
    ),
    "ssdlite+nanodet-always": Preset(("ssdlite", "nanodet"), (0.6, 0.4), 2.443, 2.922, 1.768),
    "ssdlite": _SSDLITE,
    "nanodet": Preset(("nanodet",), (1.0,), 3.07, 1.714, 0.789),
}
CALIBRATION_VERSION = "1"
PERSON = COCO80.index("person")
#: at most this many boxes per label (a crowd, a flock, a shelf of books)
MAX_INSTANCES = 25


class ObjectDetectionAnalyzer:
    """COCO-80 detectors → Rekognition-style labels with instances, and their parent labels."""

    name = "objects"

    def __init__(
        self,
        detectors: Sequence[OnnxDetector],
        preset: Preset,
        *,
        min_confidence: float = 55.0,
        vocabulary: DetectorVocabulary | None = None,
    ) -> None:
        if [d.key for d in detectors] != list(preset.detectors):
            raise ValueError(f"detectors {[d.key for d in detectors]} do not match the preset")
        self.detectors = list(detectors)
        self.preset = preset
        self.min_confidence = min_confidence
        self.vocabulary = vocabulary or coco()
        self.min_side = max(d.min_side for d in self.detectors)
        weights = ",".join(f"{w:g}" for w in preset.weights)
        self.version = (
            "+".join(d.version for d in self.detectors)
            + f"+w{weights}+tax.{self.vocabulary.digest}"
            + f"+cal{CALIBRATION_VERSION}.{_calibration(preset)}"
            + (
                f"+unsure{preset.unsure[0]:g}-{preset.unsure[1]:g}.{_calibration(preset.alone)}"
                if preset.unsure and preset.alone
                else ""
            )
            + f"+min{min_confidence:g}"
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, preset: str | None = None
    ) -> ObjectDetectionAnalyzer:
        chosen = PRESETS[preset or settings.detector]
        detectors = [DETECTORS[key](threads=settings.session_threads) for key in chosen.detectors]
        # stored down to the store floor: search and DetectLabels apply their own floor
        return cls(detectors, chosen, min_confidence=settings.store_min_confidence)

    # --- the Analyzer contract -------------------------------------------------------------------
    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        out = []
        for img in images:
            view = self.view(img.image)
            dets, calibration = self.detect(view)
            out.append({"Labels": self.labels(dets, view.size, calibration)})
        return out

    # --- pieces, public for the evaluation script and tests ---------------------------------------
    def view(self, image: Image.Image) -> Image.Image:
        """The image at the largest detector input (long side 416): resized once here instead
        of once per detector from the full decode, so a smaller detector resizes this small
        view, which is much cheaper than resizing the full decode again."""
        side = max(d.size for d in self.detectors)
        scale = side / max(image.size)
        if scale >= 1:
            return image
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)

    def detect(self, image: Image.Image) -> tuple[Detections, Preset]:
        """The objects in ``image`` (raw scores 0…1, boxes in its pixels) and the preset whose
        calibration turns their scores into confidences: the first detector's alone where it is
        sure of everything (``Preset.unsure``), else every detector's, fused."""
        first, later = self.detectors[0], self.detectors[1:]
        return self.combine(first.detect(image), lambda: [d.detect(image) for d in later])

    def combine(
        self, first: Detections, later: Callable[[], list[Detections]]
    ) -> tuple[Detections, Preset]:
        """``detect`` from the first detector's objects; ``later`` runs the others (only when
        needed). Public so the evaluation scores exactly this rule."""
        if self.preset.alone is not None and not self.unsure(first):
            return first, self.preset.alone
        return fuse([first, *later()], self.preset.weights), self.preset

    def unsure(self, first: Detections) -> bool:
        """Some category's best score from the first detector lies in the preset's band."""
        if self.preset.unsure is None:
            return True
        lo, hi = self.preset.unsure
        return bool(np.any((first.scores >= lo) & (first.scores < hi) & _best_of_class(first)))

    def confidence(
        self, scores: np.ndarray, classes: np.ndarray, preset: Preset | None = None
    ) -> np.ndarray:
        """Raw scores → Confidence 0–100 with ``preset``'s calibration (default: this
        analyzer's; monotone per class)."""
        p = preset or self.preset
        s = np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6)
        offset = np.full(len(s), p.offset)
        if p.person_offset is not None:
            offset[classes == PERSON] = p.person_offset
        z = p.slope * np.log(s / (1 - s)) + offset
        return 100.0 / (1.0 + np.exp(-z))

    def labels(
        self, dets: Detections, size: tuple[int, int], calibration: Preset | None = None
    ) -> list[Label]:
        """One label per category with at least one object ≥ ``min_confidence`` (its boxes as
        instances, best first), then its parents at the best confidence of their children;
        ``calibration``: the preset ``detect`` returned (default: this analyzer's)."""
        width, height = size
        conf = self.confidence(dets.scores, dets.classes, calibration)
        instances: dict[int, list[Instance]] = {}
        for cls, c, box in zip(dets.classes, conf, dets.boxes, strict=True):
            if c < self.min_confidence or len(instances.get(int(cls), ())) >= MAX_INSTANCES:
                continue
            bbox = _bounding_box(box, width, height)
            if bbox is not None:
                instances.setdefault(int(cls), []).append(
                    Instance(BoundingBox=bbox, Confidence=round(float(c), 3))
                )
        labels: list[Label] = []
        parent_conf: dict[str, float] = {}
        for cls, found in instances.items():
            info = self.vocabulary.classes[cls]
            best = max(i.Confidence for i in found)
            labels.append(_label(info, best, found))
            for parent in info.parents:
                parent_conf[parent] = max(parent_conf.get(parent, 0.0), best)
        for name, best in parent_conf.items():
            labels.append(_label(self.vocabulary.parents[name], best, []))
        labels.sort(key=lambda lb: (-lb.Confidence, not lb.Instances, lb.Name))
        return labels


def _calibration(preset: Preset) -> str:
    return f"{preset.slope:g},{preset.offset:g},{preset.person_offset}"


def _best_of_class(dets: Detections) -> np.ndarray:
    """Mask of each category's best-scoring detection (``select`` returns them best first)."""
    _, first = np.unique(dets.classes, return_index=True)
    mask = np.zeros(len(dets), bool)
    mask[first] = True
    return mask


def _bounding_box(box: np.ndarray, width: int, height: int) -> BoundingBox | None:
    """Pixel box → Rekognition's fractions of the image, clipped to it; None if empty."""
    x0, y0 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
    x1, y1 = min(float(box[2]), float(width)), min(float(box[3]), float(height))
    if x1 - x0 <= 0 or y1 - y0 <= 0 or not all(map(math.isfinite, (x0, y0, x1, y1))):
        return None
    return BoundingBox(
        Width=round((x1 - x0) / width, 5),
        Height=round((y1 - y0) / height, 5),
        Left=round(x0 / width, 5),
        Top=round(y0 / height, 5),
    )


def _label(info: LabelInfo, confidence: float, instances: list[Instance]) -> Label:
    return Label(
        Name=info.name,
        Confidence=round(confidence, 3),
        Instances=instances,
        Parents=[Named(Name=p) for p in info.parents],
        Aliases=[Named(Name=a) for a in info.aliases],
        Categories=[Named(Name=c) for c in info.categories],
    )
