"""Text in photos: LINEs and WORDs with confidence and geometry, in DetectText's shape.

The OCR models (``pixdex.models.ocr``) read lines; this analyzer turns them into Rekognition's
``TextDetections`` (docs/text.md): a LINE per region read, a WORD per space-separated part of it
with its own box (placed from where its characters sat in the recognizer's output), geometry as
ratios of the upright image. What it keeps is decided by measured floors
(``bench/eval_text.py``): a line or word below ``min_confidence`` is dropped, and so is anything
without a letter or digit — on photos without text, what a recognizer "reads" in a texture is
short and unsure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixdex.imaging import DEFAULT_MAX_PIXELS, DecodedImage, decode
from pixdex.models.ocr import GATE_SIDE, OcrEngine, OcrModels, ReadText
from pixdex.records import BoundingBox, Geometry, Point, TextDetection

if TYPE_CHECKING:
    from pixdex.config import Settings

#: Rekognition's DetectText returns at most 100 words per image; so does this analyzer
MAX_WORDS = 100
#: Floors, 0–100, measured on rendered words and hand-annotated coco128 photos (docs/text.md)
MIN_CONFIDENCE = 80.0
#: longer side the detector sees (photos are downscaled to it, never enlarged)
DET_SIDE = 640
CALIBRATION_VERSION = "2"


class TextAnalyzer:
    """Detect text regions, read them, and emit DetectText's LINEs and WORDs."""

    name = "text"
    #: the record fields this analyzer alone writes: it can be re-run (or added to an index)
    #: without re-running the others (``pipeline.Reanalyzer``)
    fields = ("TextDetections", "TextModelVersion")

    def __init__(
        self,
        *,
        threads: int = 0,
        det_side: int = DET_SIDE,
        gate_side: int = GATE_SIDE,
        min_confidence: float = MIN_CONFIDENCE,
        models: OcrModels | None = None,
    ) -> None:
        self.engine = OcrEngine(models, threads=threads, det_side=det_side, gate_side=gate_side)
        self.min_confidence = min_confidence
        # the recognizer crops from the decoded image: keep it at least as detailed as the
        # detector's view of a 4:3 photo (JPEG draft mode may shrink it down to this)
        self.min_side = self.engine.det_side * 3 // 4
        self.version = f"{self.engine.version}+v{CALIBRATION_VERSION}+min{min_confidence:g}"

    @classmethod
    def from_settings(cls, settings: Settings) -> TextAnalyzer:
        """The analyzer a pipeline runs, its sessions on ``settings.session_threads`` threads
        (one per batch when several are analyzed at once: a second thread per model only adds
        hand-over work; docs/benchmarks.md, "What made it cheaper, and what did not")."""
        return cls(threads=settings.session_threads)

    # --- the Analyzer contract ------------------------------------------------------------------
    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        if not images:
            return []
        work = [(img.image, self.engine.detect(img.image)) for img in images]
        reads = self.engine.recognize_many(work) if any(r for _, r in work) else [[] for _ in work]
        return [
            {
                "TextDetections": self.detections(lines, img.image.width, img.image.height),
                "TextModelVersion": self.engine.version,
            }
            for img, lines in zip(images, reads, strict=True)
        ]

    # --- pieces ---------------------------------------------------------------------------------
    def detections(self, lines: Sequence[ReadText], width: int, height: int) -> list[TextDetection]:
        """LINEs (top to bottom, left to right), then their WORDs, as DetectText numbers them."""
        kept: list[tuple[ReadText, list[tuple[str, float, np.ndarray]]]] = []
        budget = MAX_WORDS
        for line in _reading_order(lines):
            words = [w for w in _words(line) if self._keep(w[0], w[1])]
            if not words or budget <= 0:
                continue
            words = words[:budget]
            budget -= len(words)
            kept.append((line, words))
        out: list[TextDetection] = []
        for i, (_, words) in enumerate(kept):
            text = " ".join(w[0] for w in words)
            confidence = float(np.mean([w[1] for w in words]))
            quad = _span(words)
            out.append(_detection(text, "LINE", i, None, confidence, quad, width, height))
        for i, (_, words) in enumerate(kept):
            for text, confidence, quad in words:
                out.append(_detection(text, "WORD", len(out), i, confidence, quad, width, height))
        return out

    def _keep(self, text: str, confidence: float) -> bool:
        return confidence >= self.min_confidence and any(c.isalnum() for c in text)


def _reading_order(lines: Sequence[ReadText]) -> list[ReadText]:
    """Rows top to bottom (a line whose vertical centre falls within a row's first line joins
    that row), each row left to right."""
    rows: list[list[ReadText]] = []
    for line in sorted(lines, key=lambda r: float(r.region.quad[:, 1].min())):
        ys = line.region.quad[:, 1]
        centre = float(ys.min() + ys.max()) / 2
        for row in rows:
            first = row[0].region.quad[:, 1]
            if first.min() <= centre <= first.max():
                row.append(line)
                break
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda r: r.region.quad[:, 0].min())]


def _words(line: ReadText) -> list[tuple[str, float, np.ndarray]]:
    """(text, confidence 0–100, quad) per space-separated word of a line; the word's quad spans
    its characters' positions along the line, half a character's pitch beyond either end."""
    chars = line.text
    if not chars.strip():
        return []
    pos = np.array(line.char_pos, np.float64)
    probs = np.array(line.char_probs, np.float64)
    pitch = float(np.median(np.diff(pos))) if len(pos) > 1 else 1.0
    quad = line.region.quad.astype(np.float64)
    out: list[tuple[str, float, np.ndarray]] = []
    start = None
    for i in range(len(chars) + 1):
        boundary = i == len(chars) or chars[i] == " "
        if boundary and start is not None:
            lo = max(0.0, pos[start] - pitch / 2) if len(chars) > 1 else 0.0
            hi = min(1.0, pos[i - 1] + pitch / 2) if len(chars) > 1 else 1.0
            if start == 0:
                lo = 0.0
            if i == len(chars):
                hi = 1.0
            out.append((chars[start:i], 100.0 * float(probs[start:i].mean()), _along(quad, lo, hi)))
            start = None
        elif not boundary and start is None:
            start = i
    return out


def _along(quad: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The part of a reading-order quad between fractions ``lo`` and ``hi`` of its length."""
    tl, tr, br, bl = quad
    return np.array(
        [tl + (tr - tl) * lo, tl + (tr - tl) * hi, bl + (br - bl) * hi, bl + (br - bl) * lo]
    )


def _span(words: list[tuple[str, float, np.ndarray]]) -> np.ndarray:
    """A line's quad from its first word's start to its last word's end."""
    first, last = words[0][2], words[-1][2]
    return np.array([first[0], last[1], last[2], first[3]])


def _detection(
    text: str,
    kind: str,
    ident: int,
    parent: int | None,
    confidence: float,
    quad: np.ndarray,
    width: int,
    height: int,
) -> TextDetection:
    xs = np.clip(quad[:, 0] / width, 0.0, 1.0)
    ys = np.clip(quad[:, 1] / height, 0.0, 1.0)
    box = BoundingBox(
        Width=round(float(xs.max() - xs.min()), 6),
        Height=round(float(ys.max() - ys.min()), 6),
        Left=round(float(xs.min()), 6),
        Top=round(float(ys.min()), 6),
    )
    polygon = [
        Point(X=round(float(x), 6), Y=round(float(y), 6)) for x, y in zip(xs, ys, strict=True)
    ]
    return TextDetection(
        DetectedText=text,
        Type=kind,  # type: ignore[arg-type]
        Id=ident,
        ParentId=parent,
        Confidence=round(min(confidence, 100.0), 3),
        Geometry=Geometry(BoundingBox=box, Polygon=polygon),
    )


@dataclass(frozen=True, slots=True)
class WordFilter:
    """DetectText's ``Filters``: words below ``min_confidence`` (0–100) or smaller than the
    given ratios of the image are dropped, and so is a word whose centre is outside every region
    of interest (``regions``: (left, top, width, height) ratios; empty = the whole image). A
    line whose words are all dropped goes too."""

    min_confidence: float = 0.0
    min_height: float = 0.0
    min_width: float = 0.0
    regions: tuple[tuple[float, float, float, float], ...] = ()

    def keep(self, word: TextDetection) -> bool:
        box = word.Geometry.BoundingBox
        if word.Confidence < self.min_confidence:
            return False
        if box.Height < self.min_height or box.Width < self.min_width:
            return False
        if not self.regions:
            return True
        cx, cy = box.Left + box.Width / 2, box.Top + box.Height / 2
        return any(x <= cx <= x + w and y <= cy <= y + h for x, y, w, h in self.regions)

    def apply(self, found: list[TextDetection]) -> list[TextDetection]:
        words = [d for d in found if d.Type == "WORD" and self.keep(d)]
        parents = {w.ParentId for w in words}
        return [d for d in found if d.Type == "LINE" and d.Id in parents] + words


class TextDetector:
    """DetectText for single images, outside any index: what ``pixdex detect-text`` and the
    Rekognition-compatible endpoint answer."""

    def __init__(self, settings: Settings, analyzer: TextAnalyzer | None = None) -> None:
        self.max_pixels = settings.max_pixels if settings else DEFAULT_MAX_PIXELS
        self.analyzer = analyzer or TextAnalyzer(threads=settings.threads)

    def detect_bytes(self, data: bytes, filters: WordFilter | None = None) -> dict[str, Any]:
        image = decode(data, min_side=self.analyzer.min_side, max_pixels=self.max_pixels)
        partial = self.analyzer.analyze([image])[0]
        found: list[TextDetection] = partial["TextDetections"]
        if filters is not None:
            found = filters.apply(found)
        return {
            "TextDetections": [d.to_json() for d in found],
            "TextModelVersion": partial["TextModelVersion"],
        }

    def detect_file(self, path: Path, filters: WordFilter | None = None) -> dict[str, Any]:
        return self.detect_bytes(Path(path).read_bytes(), filters)
