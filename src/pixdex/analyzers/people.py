"""People: "Person" labels with bounding boxes from MediaPipe's BlazePose detector.

ImageNet has no person class, yet people are in most photo collections. The BlazePose person
detector (``pose_detection.tflite`` from the ``mediapipe`` 0.10.14 wheel, Apache-2.0, shipped as
package data in ``pixdex/models/people``) is a 224×224 SSD that finds a person by their face and
regresses two body keypoints: the hip centre and a point on the circle that encloses the whole
body. Its anchors assume a person of roughly frame size, so small people in a photo squeezed to
224 px are missed; the analyzer therefore runs it on several views (the whole image letterboxed,
squares along the long side, overlapping tiles), maps every detection back into the image, merges
duplicates, and scores a person by agreement between views. That and the threshold were measured
on coco128 (``bench/eval_people.py``, docs/people.md).

Runs on ``ai-edge-litert`` (the TFLite interpreter), not on ``mediapipe`` itself, whose protobuf
pin conflicts with ``onnx``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixdex.imaging import DecodedImage
from pixdex.logs import native_stderr_silenced
from pixdex.records import BoundingBox, Instance, Label, Named

log = logging.getLogger(__name__)

MODEL_FILE = "pose_detection.tflite"
INPUT = 224
#: Detector score at which Confidence is 55 (Rekognition's default floor): on coco128 the
#: image-level precision of "Person" at this score is ≥ 90 % (bench/eval_people.py, docs/people.md)
SCORE_AT_55 = 0.72
#: ``views="fast"``: only the whole image and the squares along its long side (no tiles), ~2.5×
#: fewer detector runs; its agreement score is lower, so its own operating point (measured the
#: same way on coco128: recall > 1 % 0.872 at precision 0.906)
SCORE_AT_55_FAST = 0.54
VIEW_MODES = {"full": (True, SCORE_AT_55), "fast": (False, SCORE_AT_55_FAST)}
#: detections below this raw score are dropped before merging (cheap, and none of them matters)
SCORE_FLOOR = 0.2
#: IoU above which two person boxes from different views are the same person
MERGE_IOU = 0.4
#: Person box from the detector's body circle (centre = hip centre, radius r, "up" towards the
#: second keypoint): across r, from the hip down and up. Fitted to coco128 person boxes.
BOX_HALF_WIDTH = 0.42
BOX_UP = 0.94
BOX_DOWN = 0.59
#: at most this many squares along the long side (panoramas, strips)
MAX_SQUARES = 6
CALIBRATION_VERSION = "1"


def _anchors() -> np.ndarray:
    """SSD anchor centres as MediaPipe's pose_detection graph makes them: 224 px input, strides
    8/16/32/32/32, two anchors per cell and layer, fixed anchor size (so only centres matter)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        grid = INPUT // stride
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, 1).reshape(-1, 2))
    anchors = np.concatenate(out).astype(np.float32)
    assert len(anchors) == 2254
    return anchors


_ANCHORS = _anchors()


@dataclass(slots=True)
class Detection:
    """One person in image pixels: score, hip centre, body-circle point, the view it came from."""

    score: float
    hip: tuple[float, float]
    top: tuple[float, float]
    view: int
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x0, y0, x1, y1


def model_path() -> Path:
    return Path(str(resources.files("pixdex.models") / "people" / MODEL_FILE))


def views(width: int, height: int, *, tiles: bool = True) -> list[tuple[float, float, float]]:
    """Square views (left, top, side) in image pixels: the whole image (letterboxed), squares of
    the short side along the long side, then overlapping tiles of 0.6 × the long side — each
    step enlarges people relative to the detector's 224 px input."""
    long, short = max(width, height), min(width, height)
    out: list[tuple[float, float, float]] = [((width - long) / 2, (height - long) / 2, float(long))]
    if long > short * 1.05:
        # overlapping squares; capped so a 3×900 strip costs 6 views, not 300
        n = min(math.ceil(long / short) + 1, MAX_SQUARES)
        for off in np.linspace(0, long - short, n):
            out.append((float(off), 0.0, short) if width >= height else (0.0, float(off), short))
    side = min(0.6 * long, short)
    if tiles and side >= 64:
        nx = math.ceil(max(width - side, 0) / (side / 2)) + 1
        ny = math.ceil(max(height - side, 0) / (side / 2)) + 1
        for y in np.linspace(0, height - side, ny):
            for x in np.linspace(0, width - side, nx):
                out.append((float(x), float(y), float(side)))
    return out


def person_box(
    hip: tuple[float, float], top: tuple[float, float]
) -> tuple[float, float, float, float]:
    """Axis-aligned box around the rotated body rectangle the keypoints imply."""
    ux, uy = top[0] - hip[0], top[1] - hip[1]
    r = math.hypot(ux, uy) or 1.0
    ux, uy = ux / r, uy / r  # "up" along the body
    px, py = -uy, ux  # across the body
    corners = [
        (hip[0] + r * (a * ux + b * px), hip[1] + r * (a * uy + b * py))
        for a in (BOX_UP, -BOX_DOWN)
        for b in (BOX_HALF_WIDTH, -BOX_HALF_WIDTH)
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def confidence(score: float, at_55: float = SCORE_AT_55) -> float:
    """Detector score → Confidence (0–100): a shift on the logit scale so that ``at_55`` maps
    to 55; monotone, so thresholds on Confidence are thresholds on the score."""
    s = min(max(score, 1e-6), 1 - 1e-6)
    logit = math.log(s / (1 - s)) - math.log(at_55 / (1 - at_55)) + math.log(55 / 45)
    return round(100.0 / (1.0 + math.exp(-logit)), 3)


class PeopleAnalyzer:
    """BlazePose detector on several views of each image → a "Person" label with instances."""

    name = "people"
    #: views are squares of the short side or 0.6 × the long side, each resized to 224 px: keep
    #: the short side ≥ 448 so the smaller views are not upsampled from a draft-reduced JPEG
    min_side = 448

    def __init__(
        self,
        *,
        threads: int = 0,
        cache_dir: Path | str | None = None,
        min_confidence: float = 55.0,
        model: Path | None = None,
        views: str = "full",
    ) -> None:
        if views not in VIEW_MODES:
            raise ValueError(f"people views must be one of {', '.join(VIEW_MODES)}, not {views!r}")
        self.views = views
        self.tiles, self.score_at_55 = VIEW_MODES[views]
        # cache_dir: accepted for the common analyzer signature; the .tflite is package data and
        # needs no conversion, so nothing is cached.
        self.cache_dir = cache_dir
        self.threads = threads
        self.min_confidence = min_confidence
        self.model = Path(model) if model is not None else model_path()
        digest = hashlib.sha256(self.model.read_bytes()).hexdigest()[:12]
        self.version = f"blazepose-det.{digest}+v{CALIBRATION_VERSION}+min{min_confidence:g}" + (
            "" if views == "full" else f"+{views}"
        )
        self._local = threading.local()

    # --- inference ------------------------------------------------------------------------------
    def _interpreter(self) -> Any:
        """One interpreter per thread: TFLite interpreters are not safe to share."""
        interp = getattr(self._local, "interp", None)
        if interp is None:
            from ai_edge_litert.interpreter import Interpreter

            from pixdex.models.classifier import available_cores

            # TFLite's default is one thread; "0 = all cores" as for the label model (measured:
            # 10.5 → 5.7 ms per view on 2 cores)
            threads = self.threads if self.threads > 0 else available_cores()
            interp = Interpreter(model_path=str(self.model), num_threads=threads)
            # TFLite prints "INFO: Created … XNNPACK delegate" straight to fd 2 here.
            with native_stderr_silenced(not log.isEnabledFor(logging.DEBUG)):
                interp.allocate_tensors()
            self._local.interp = interp
            self._local.io = (
                interp.get_input_details()[0]["index"],
                [d["index"] for d in interp.get_output_details()],
            )
        return interp

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores [n, 2254], keypoints [n, 2254, 2, 2] as 0–1 of the view) for n views."""
        interp = self._interpreter()
        inp, (out_reg, out_score) = self._local.io
        scores, kps = [], []
        for x in batch:
            interp.set_tensor(inp, x[None])
            interp.invoke()
            reg = interp.get_tensor(out_reg)[0]
            raw = np.clip(interp.get_tensor(out_score)[0, :, 0], -80.0, 80.0)  # no exp overflow
            scores.append(1.0 / (1.0 + np.exp(-raw)))
            # keypoint 0 = hip centre, 1 = full-body circle point; offsets in input pixels
            kp = reg[:, 4:8].reshape(-1, 2, 2) / INPUT + _ANCHORS[:, None, :]
            kps.append(kp)
        return np.stack(scores), np.stack(kps)

    def detect(self, image: Image.Image) -> list[Detection]:
        """Every detection above ``SCORE_FLOOR`` from every view, in pixels of ``image``."""
        width, height = image.size
        squares = views(width, height, tiles=self.tiles)
        batch = np.empty((len(squares), INPUT, INPUT, 3), np.float32)
        for i, (x, y, side) in enumerate(squares):
            batch[i] = _view_tensor(image, x, y, side)
        scores, kps = self._run(batch)
        found: list[Detection] = []
        for v, (x, y, side) in enumerate(squares):
            for a in np.flatnonzero(scores[v] >= SCORE_FLOOR):
                (hx, hy), (tx, ty) = kps[v, a]
                det = Detection(
                    score=float(scores[v, a]),
                    hip=(x + hx * side, y + hy * side),
                    top=(x + tx * side, y + ty * side),
                    view=v,
                )
                det.box = person_box(det.hip, det.top)
                found.append(det)
        return found

    def people(self, image: Image.Image) -> list[tuple[float, tuple[float, float, float, float]]]:
        """(score, box in pixels, clipped to the image) per person, best first."""
        width, height = image.size
        return [(score, _clip(box, width, height)) for score, box in merge(self.detect(image))]

    # --- the Analyzer contract ------------------------------------------------------------------
    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for decoded in images:
            img = decoded.image
            width, height = img.size
            instances = []
            for score, (x0, y0, x1, y1) in self.people(img):
                conf = confidence(score, self.score_at_55)
                if conf < self.min_confidence and instances:
                    break
                if x1 - x0 <= 0 or y1 - y0 <= 0:
                    continue
                box = BoundingBox(
                    Width=(x1 - x0) / width,
                    Height=(y1 - y0) / height,
                    Left=x0 / width,
                    Top=y0 / height,
                )
                instances.append(Instance(BoundingBox=box, Confidence=conf))
            if not instances or instances[0].Confidence < self.min_confidence:
                out.append({"Labels": []})
                continue
            label = Label(
                Name="Person",
                Confidence=instances[0].Confidence,
                Instances=instances,
                Aliases=[Named(Name="Human")],
                Categories=[Named(Name="Person Description")],
            )
            out.append({"Labels": [label]})
        return out


def merge(found: list[Detection]) -> list[tuple[float, tuple[float, float, float, float]]]:
    """Group detections of the same person across views (greedy, by box IoU) and score each
    person by agreement: the mean of its two best scores from distinct views (a lone view counts
    the other as 0). One view's confident mistake (a face-like texture) rarely repeats in another
    view of the same spot; a real person is seen in several."""
    found = sorted(found, key=lambda d: -d.score)
    groups: list[list[Detection]] = []
    for det in found:
        for group in groups:
            if iou(group[0].box, det.box) > MERGE_IOU:
                group.append(det)
                break
        else:
            groups.append([det])
    people = []
    for group in groups:
        best: dict[int, float] = {}
        for det in group:
            best[det.view] = max(best.get(det.view, 0.0), det.score)
        top2 = sorted(best.values(), reverse=True)[:2] + [0.0]
        score = (top2[0] + top2[1]) / 2
        # the box of the most confident detection, averaged with its agreeing neighbours
        weights = np.array([d.score for d in group])
        boxes = np.array([d.box for d in group])
        box = tuple(float(v) for v in (weights[:, None] * boxes).sum(0) / weights.sum())
        people.append((score, box))
    people.sort(key=lambda p: -p[0])
    return people


def _clip(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)


def _view_tensor(image: Image.Image, x: float, y: float, side: float) -> np.ndarray:
    """The square (x, y, side) of ``image`` at 224 px in the detector's -1…1 range; parts
    outside the image are black, as MediaPipe's letterboxing pads."""
    width, height = image.size
    inside = (max(x, 0.0), max(y, 0.0), min(x + side, width), min(y + side, height))
    scale = INPUT / side
    w = max(1, round((inside[2] - inside[0]) * scale))
    h = max(1, round((inside[3] - inside[1]) * scale))
    part = image.resize((w, h), Image.Resampling.BILINEAR, box=inside, reducing_gap=3.0)
    canvas = Image.new("RGB", (INPUT, INPUT))
    canvas.paste(part, (round((inside[0] - x) * scale), round((inside[1] - y) * scale)))
    return np.asarray(canvas, np.float32) / 127.5 - 1.0
