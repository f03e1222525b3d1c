"""PP-OCR text detection and recognition on ONNX Runtime, driven by pixdex's own code.

The models are PaddleOCR's PP-OCRv6 *tiny* detector and *small* recognizer (Apache-2.0), shipped
as package data in ``pixdex/models/text`` (copied unchanged from a PyPI wheel; provenance and
checksums in that folder's README): nothing is downloaded at run time. Why these, and why not a
packaged OCR library's own pipeline, was decided by measurement (docs/text.md). What is kept of
PaddleOCR is its published inference recipe:

- **detection** (DBNet): the photo, downscaled so its longer side is at most ``det_side`` and both
  sides are multiples of 32, in BGR, normalised; the model returns a per-pixel text probability.
  Pixels above ``DB_THRESH`` form regions; a region whose mean probability is below
  ``BOX_THRESH`` is dropped; the rest become minimum-area rectangles grown by ``UNCLIP_RATIO``
  (DB predicts a shrunk text kernel) and mapped back to the photo's pixels; a region narrower
  than ``MIN_TEXT_SIDE`` px of the detector's input is not read (pixdex's own rule: such
  regions never held a correct word, only junk; docs/text.md);
- **recognition** (SVTR + CTC): each region is cut out of the *decoded* photo (not the detector's
  downscaled copy) by a perspective warp, so rotated text comes out level, scaled to 48 px high,
  batched only with crops of the same width (no padding), and greedily CTC-decoded. A
  character's confidence is its softmax probability; a line's, their mean.

A photo without text costs one detector run: recognition runs only on detected regions.
OpenCV (the headless build) does the contour and warp work, as in PaddleOCR's own code.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from pixdex.errors import ModelError
from pixdex.models.sessions import session_options

#: PaddleOCR's NormalizeImage applies ImageNet's RGB statistics, in that order, to BGR arrays
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, slots=True)
class OcrModels:
    """A detector and a recognizer: ONNX files, the recognizer's character list (one per line;
    None = in the model's metadata, as some exports keep it) and the detector's normalisation."""

    det: Path
    rec: Path
    charset: Path | None
    det_mean: tuple[float, float, float] = IMAGENET_MEAN
    det_std: tuple[float, float, float] = IMAGENET_STD
    name: str = "custom"

    @classmethod
    def default(cls) -> OcrModels:
        """PP-OCRv6 tiny detection + small recognition, from ``pixdex/models/text``."""
        folder = Path(str(resources.files("pixdex.models") / "text"))
        models = cls(
            folder / "PP-OCRv6_tiny_det.onnx",
            folder / "PP-OCRv6_small_rec.onnx",
            folder / "ppocrv6_dict.txt",
            name="ppocrv6",
        )
        for path in (models.det, models.rec, models.charset):
            if path is None or not path.is_file():
                raise ModelError(f"{path} is missing: reinstall pixdex")
        return models


#: DB post-processing, PaddleOCR's defaults for PP-OCR detection
DB_THRESH = 0.3
BOX_THRESH = 0.6
UNCLIP_RATIO = 1.5
MIN_BOX_SIDE = 3
#: a region narrower than this (px of the detector's input, after unclipping) is not read
MIN_TEXT_SIDE = 10
DILATE = False
MAX_CANDIDATES = 200
#: recognizer input height; a crop's width is at most MAX_REC_RATIO × that; up to REC_BATCH
#: crops of the same input width share a run
REC_HEIGHT = 48
MAX_REC_RATIO = 25.0
REC_BATCH = 8
#: the gate: the detector at this longer side first (0 = none, the default: every photo pays
#: for the gate and it loses small text; docs/benchmarks.md, "What made it cheaper, and what did
#: not"); a photo whose map there stays below GATE_THRESH everywhere has no text
GATE_SIDE = 0
GATE_THRESH = 0.1


@dataclass(slots=True)
class TextRegion:
    """A detected text region: its quadrilateral in photo pixels and the detector's mean
    probability over it. Corners run clockwise from the top-left as the text reads (after
    ``recognize``; the detector's own order is top-left first in image axes)."""

    quad: np.ndarray  # (4, 2) float32
    score: float


@dataclass(slots=True)
class ReadText:
    """What the recognizer read in one region: the text, per-character probabilities, and each
    character's centre as a fraction (0–1) of the way along the region's reading direction."""

    region: TextRegion
    text: str
    char_probs: list[float] = field(default_factory=list)
    char_pos: list[float] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        return float(np.mean(self.char_probs)) if self.char_probs else 0.0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def latin(char: str) -> bool:
    """Characters of Latin-script text: ASCII, Latin-1 and Latin Extended letters, and the
    common signs (the scripts Rekognition's DetectText reads)."""
    return len(char) == 1 and (ord(char) < 0x250 or char in "€£¥°–—‘’“”…")


class OcrEngine:
    """``detect`` text regions in a photo, ``recognize`` what they say.

    ``latin_only`` restricts the recognizer to Latin-script characters: the PP-OCR recognizers
    also know thousands of Chinese characters, and on photos without text those are what
    textures (foliage, fur, brick) most often look like to it.
    """

    def __init__(
        self,
        models: OcrModels | None = None,
        *,
        threads: int = 0,
        det_side: int = 640,
        gate_side: int = GATE_SIDE,
        gate_thresh: float = GATE_THRESH,
        latin_only: bool = True,
    ) -> None:
        models = models or OcrModels.default()
        opts = session_options(threads)
        cpu = ["CPUExecutionProvider"]
        try:
            self._det = ort.InferenceSession(str(models.det), sess_options=opts, providers=cpu)
            self._rec = ort.InferenceSession(str(models.rec), sess_options=opts, providers=cpu)
        except Exception as exc:  # noqa: BLE001 - a damaged or truncated model file
            raise ModelError(f"cannot load the text models ({models.name}): {exc}") from exc
        self._det_input = self._det.get_inputs()[0].name
        self._rec_input = self._rec.get_inputs()[0].name
        if models.charset is None:
            chars = self._rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        else:
            chars = models.charset.read_text("utf-8").splitlines()
        # CTC classes: 0 = blank, then the character list, then the space
        self.charset = ["", *chars, " "]
        classes = self._rec.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.charset):
            raise ModelError(f"{models.rec}: {classes} classes but {len(self.charset)} characters")
        self._allowed: np.ndarray | None = None
        if latin_only:
            self._allowed = np.array([i == 0 or latin(c) for i, c in enumerate(self.charset)])
        self.det_side = det_side
        self.gate_side = gate_side
        self.gate_thresh = gate_thresh
        mean = np.array(models.det_mean, np.float32) * 255.0
        scale = 1.0 / (np.array(models.det_std, np.float32) * 255.0)
        levels = np.arange(256, dtype=np.float32)
        self._luts = [((levels - mean[k]) * scale[k]).reshape(1, 256) for k in range(3)]
        self.version = (
            f"{models.name}:det.{_digest(models.det)}+rec.{_digest(models.rec)}"
            f"+{det_side}px"
            + (f"+gate{gate_side}@{gate_thresh:g}" if gate_side else "")
            + ("+latin" if latin_only else "")
        )

    # --- detection ------------------------------------------------------------------------------
    def detect(self, image: Image.Image) -> list[TextRegion]:
        """Text regions in ``image`` (RGB), quadrilaterals in its pixels, best first.

        With a gate (``gate_side``), the detector first sees the photo at that smaller side (a
        quarter of the pixels at 320 vs 640). Where that map stays below ``gate_thresh``
        everywhere, the photo is taken to have no text the full detector would find; otherwise
        the full detector runs on the whole photo. Off by default: it lost small text and saved
        little (docs/text.md). Running the full detector only on the parts the gate marked does
        not work: a crop's map differs from the photo's even inside it, with a 96 px margin
        and with the whole photo's squeeze-excitation values fed in (the deep features see far
        beyond any margin)."""
        small = self.detector_view(image)
        size = small.size
        gate = _det_size(image.size, self.gate_side) if self.gate_side else size
        if gate[0] * gate[1] * 2 <= size[0] * size[1]:  # the gate pays off
            hint = self._run_det(self._normalise(small.resize(gate, Image.Resampling.BILINEAR)))
            if float(hint.max()) < self.gate_thresh:
                return []
        return self.regions(self._run_det(self._normalise(small)), image.size)

    def detector_view(self, image: Image.Image) -> Image.Image:
        """``image`` as the detector sees it: its longer side at most ``det_side`` px."""
        size = _det_size(image.size, self.det_side)
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)

    def _normalise(self, image: Image.Image) -> np.ndarray:
        """(1, 3, H, W) float32 BGR input, normalised (a lookup table per channel: the same
        values as ``(x - mean) / std`` in float32, several times faster)."""
        import cv2

        planes = cv2.split(np.asarray(image))
        out = np.empty((1, 3, image.height, image.width), np.float32)
        for k in range(3):  # model channel k is BGR: RGB plane 2 - k
            cv2.LUT(planes[2 - k], self._luts[k], dst=out[0, k])
        return out

    def _run_det(self, x: np.ndarray) -> np.ndarray:
        return self._det.run(None, {self._det_input: x})[0][0, 0]

    def regions(
        self,
        prob: np.ndarray,
        size: tuple[int, int],
        *,
        thresh: float = DB_THRESH,
        box_thresh: float = BOX_THRESH,
        unclip: float = UNCLIP_RATIO,
        dilate: bool = DILATE,
    ) -> list[TextRegion]:
        """DB post-processing: probability map -> quadrilaterals in pixels of a ``size`` image."""
        import cv2

        mask = (prob > thresh).astype(np.uint8)
        if not mask.any():
            return []
        if dilate:
            mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        width, height = size
        sx, sy = width / prob.shape[1], height / prob.shape[0]
        regions: list[TextRegion] = []
        for contour in contours[:MAX_CANDIDATES]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < MIN_BOX_SIDE:
                continue
            score = _mean_inside(prob, contour.reshape(-1, 2))
            if score < box_thresh:
                continue
            (cx, cy), (rw, rh), angle = rect
            grow = rw * rh * unclip / (2 * (rw + rh))  # DB's unclip, closed form for a box
            rw, rh = rw + 2 * grow, rh + 2 * grow
            if min(rw, rh) < MIN_TEXT_SIDE:
                continue
            quad = _order(cv2.boxPoints(((cx, cy), (rw, rh), angle)))
            quad[:, 0] = np.clip(quad[:, 0] * sx, 0, width)
            quad[:, 1] = np.clip(quad[:, 1] * sy, 0, height)
            regions.append(TextRegion(quad.astype(np.float32), score))
        regions.sort(key=lambda r: -r.score)
        return regions

    # --- recognition ----------------------------------------------------------------------------
    def recognize(self, image: Image.Image, regions: Sequence[TextRegion]) -> list[ReadText]:
        """Read each region of ``image`` (the full-resolution RGB photo), in order."""
        return self.recognize_many([(image, list(regions))])[0]

    def recognize_many(
        self, work: Sequence[tuple[Image.Image, list[TextRegion]]]
    ) -> list[list[ReadText]]:
        """``recognize`` for several photos at once. A region's ``quad`` is turned to reading
        order.

        Only crops of the same input width share a recognizer run: padding a crop to a wider
        one's width costs as much as the padding's pixels (the recognizer's time is linear in
        its input width, and batching itself saves nothing on the CPU; docs/benchmarks.md, "What
        made it cheaper, and what did not") and changes what is read, since the recognizer
        attends over the whole padded line. So a photo's text does not depend on which other
        photos share its batch."""
        crops: list[np.ndarray] = []
        owners: list[tuple[int, TextRegion]] = []
        for n, (image, regions) in enumerate(work):
            if not regions:
                continue
            rgb = np.asarray(image.convert("RGB"))
            for region in regions:
                crop, turned = _crop(rgb, region.quad)
                if turned:  # read bottom-up along the right edge: reading order starts at p1
                    region.quad = region.quad[[1, 2, 3, 0]]
                crops.append(crop)
                owners.append((n, region))
        results: list[list[ReadText]] = [[] for _ in work]
        read: list[ReadText | None] = [None] * len(crops)
        widths = [_rec_width(crop) for crop in crops]
        order = sorted(range(len(crops)), key=lambda i: widths[i])
        start = 0
        while start < len(order):
            width = widths[order[start]]
            end = start + 1
            while end < len(order) and end - start < REC_BATCH and widths[order[end]] == width:
                end += 1
            ids = order[start:end]
            batch, used = _rec_batch([crops[i] for i in ids], width)
            probs = self._rec.run(None, {self._rec_input: batch})[0]
            for i, p, w in zip(ids, probs, used, strict=True):
                read[i] = self._decode(owners[i][1], p, w / width)
            start = end
        for (n, _), text in zip(owners, read, strict=True):
            assert text is not None
            results[n].append(text)
        return results

    def _decode(self, region: TextRegion, probs: np.ndarray, used: float) -> ReadText:
        """Greedy CTC: best class per time step, repeats merged, blanks dropped. ``used`` is the
        share of the padded input width the crop occupied (to place characters along it)."""
        if self._allowed is not None:
            probs = np.where(self._allowed, probs, 0.0)
        best = probs.argmax(axis=1)
        steps = len(best)
        text: list[str] = []
        char_probs: list[float] = []
        char_pos: list[float] = []
        previous = 0
        for t, cls in enumerate(best):
            if cls != 0 and cls != previous:
                text.append(self.charset[cls])
                char_probs.append(float(probs[t, cls]))
                char_pos.append(min(1.0, (t + 0.5) / steps / used))
            previous = cls
        return ReadText(region, "".join(text), char_probs, char_pos)


def _det_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """The detector's input size for an image of ``size``: longer side at most ``side`` (never
    enlarged), both sides multiples of 32 (the detector's stride)."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def _order(points: np.ndarray) -> np.ndarray:
    """Box corners as top-left, top-right, bottom-right, bottom-left (PaddleOCR's order)."""
    pts = sorted(points.tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def _mean_inside(prob: np.ndarray, polygon: np.ndarray) -> float:
    """Mean probability inside ``polygon`` (DB's box score, 'slow' mode: the region's own
    outline, so a slanted line's box is not diluted by the background in its corners)."""
    import cv2

    h, w = prob.shape
    x0, y0 = np.clip(polygon.min(0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(polygon.max(0), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(polygon - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _crop(rgb: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, bool]:
    """The quadrilateral cut out and warped upright (BGR), and whether it was turned: a tall
    region is read as vertical text, turned a quarter anticlockwise (as PaddleOCR does)."""
    import cv2

    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        rgb, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    turned = h / w >= 1.5
    if turned:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop[:, :, ::-1]), turned


def _scaled_width(crop: np.ndarray) -> int:
    """The crop's width once scaled to REC_HEIGHT (its ratio capped at MAX_REC_RATIO)."""
    ratio = min(crop.shape[1] / crop.shape[0], MAX_REC_RATIO)
    return max(1, int(math.ceil(REC_HEIGHT * ratio)))


def _rec_width(crop: np.ndarray) -> int:
    """The recognizer's input width for a crop: its scaled width, at least 2 × REC_HEIGHT,
    rounded up to a multiple of 8."""
    width = max(_scaled_width(crop), REC_HEIGHT * 2)
    return int(math.ceil(width / 8) * 8)


def _rec_batch(crops: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, list[int]]:
    """Crops scaled to REC_HEIGHT, normalised to -1…1, right-padded with 0 to ``width``; and the
    width each crop itself took."""
    import cv2

    batch = np.zeros((len(crops), 3, REC_HEIGHT, width), np.float32)
    used: list[int] = []
    for i, crop in enumerate(crops):
        w = min(width, _scaled_width(crop))
        resized = cv2.resize(crop, (w, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
        batch[i, :, :, :w] = (resized.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0
        used.append(w)
    return batch, used
