"""Face detection, landmarks, pose, quality and a descriptor per face, on ONNX Runtime.

Four networks ship as float32 ONNX files in ``pixdex/models/faces`` (package data), made by
``scripts/build_faces.py`` from registry packages (pinned versions, sha256 of inputs and outputs
in ``MANIFEST.json``, licences beside the weights). Nothing is downloaded at run time.

- :class:`FaceDetector` — MediaPipe BlazeFace *full range* (192 px) on the whole photo
  letterboxed (optionally on overlapping tiles too), BlazeFace *short range* (128 px) for faces
  that fill the photo, then MediaPipe Face Mesh (468 points) on each candidate's crop: the
  mesh gives the landmarks and a face-presence probability that confirms or rejects weak
  detections. Each :class:`Face` has a box, a score, five landmarks and the mesh.
- :class:`FaceEmbedder` — dlib's ResNet face descriptor (128-d, public domain) rebuilt from the
  face-api weights. Each face is aligned first (:func:`align`): a similarity transform maps its
  eye centres, nose tip and mouth centre onto dlib's mean-face template for a 150 px chip with
  0.25 padding (what dlib's ``get_face_chip_details(shape, 150, 0.25)`` builds); descriptors
  are L2-normalised, so a dot product is their cosine similarity.

:func:`pose` (roll/yaw/pitch, degrees, from the mesh) and :func:`quality` (brightness and
sharpness, 0–100, pixel statistics) follow Rekognition's ranges. :func:`similarity` maps the
cosine similarity of two descriptors to a Rekognition-style 0–100 ``Similarity`` and
:data:`MATCH_COSINE` is the same-person threshold; both fitted, see ``docs/faces-models.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from pixdex.models.sessions import session_options

DETECTOR_FILE = "blazeface_full_range_192.onnx"
SHORT_DETECTOR_FILE = "blazeface_short_range_128.onnx"
MESH_FILE = "facemesh_468_192.onnx"
DESCRIPTOR_FILE = "dlib_resnet_face_descriptor_128.onnx"

#: names of the five landmarks, in the order of :attr:`Face.landmarks`; "left"/"right" as seen
#: in the image (``eye_left`` has the smaller x in an upright frontal face), like Rekognition's
LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")

#: a detection scoring at least this is a face (fitted on the fit half of coco128,
#: docs/faces-models.md) …
DEFAULT_THRESHOLD = 0.6
#: … and one scoring at least this is a face too when Face Mesh finds a face in its crop
#: (presence ≥ MESH_PRESENCE): the mesh rejects most of BlazeFace's confident mistakes
MESH_FLOOR = 0.3
MESH_PRESENCE = 0.5
#: without Face Mesh (``FaceDetector(mesh=False)``), the threshold fitted the same way
NO_MESH_THRESHOLD = 0.4
#: boxes overlapping more than this are one face (within a view, and across tiles)
NMS_IOU = 0.3
#: a short-range detection counts only for a face this large (box side / shorter image side)
SHORT_MIN_SIDE = 0.4
#: … and scoring at least this
SHORT_MIN_SCORE = 0.7
#: MediaPipe's own score clipping before the sigmoid
_SCORE_CLIP = 100.0


def models_dir() -> Path:
    return Path(str(resources.files("pixdex.models") / "faces"))


@cache
def manifest() -> dict[str, dict]:
    """``MANIFEST.json``: per model file, where it came from and its sha256."""
    return json.loads((models_dir() / "MANIFEST.json").read_text())["models"]


def _load(filename: str, key: str, threads: int, path: Path | None):
    path = Path(path) if path is not None else models_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"face model missing: {path} (reinstall pixdex)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    session = ort.InferenceSession(
        str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    return path, f"{key}:{digest[:12]}", session


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in pixels of the image given to :meth:`FaceDetector.detect`.

    ``box`` is (x0, y0, x1, y1) (BlazeFace's); ``score`` BlazeFace's confidence (0–1);
    ``landmarks`` (5, 2) in :data:`LANDMARKS` order. With Face Mesh (the default) the landmarks
    come from its 468 points (``mesh``, (468, 3): x, y in pixels, z depth in the same scale,
    smaller = nearer) — eye centres, nose tip, mouth corners — and ``presence`` is its face
    probability for the crop. Without it, eyes and nose are BlazeFace's keypoints and the mouth
    corners an estimate (:func:`_five_points`). ``keypoints`` are BlazeFace's six: right eye,
    left eye (the person's), nose tip, mouth centre, right ear, left ear."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)
    keypoints: np.ndarray = field(repr=False)
    mesh: np.ndarray | None = field(default=None, repr=False)
    presence: float | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


#: Face Mesh indices: the contours of the person's right eye (image left in a frontal face) and
#: left eye, the nose tip, the mouth corners (person's right, left), the inner lips (upper,
#: lower), the outer eye corners (right, left), forehead and chin
MESH_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MESH_NOSE_TIP = 1
MESH_MOUTH = (61, 291)
MESH_LIPS = (13, 14)
MESH_EYE_CORNERS = (33, 263)
MESH_FOREHEAD_CHIN = (10, 152)
#: the crop Face Mesh sees: a square 1.5× the detection box, turned so the eyes are level
MESH_SIZE = 192
MESH_SCALE = 1.5


def mesh_points(mesh: np.ndarray) -> np.ndarray:
    """(4, 2): the person's right eye centre, left eye centre, nose tip, mouth centre — the
    points :func:`align` maps onto dlib's template — from a Face Mesh."""
    return np.stack(
        [
            mesh[list(MESH_RIGHT_EYE), :2].mean(0),
            mesh[list(MESH_LEFT_EYE), :2].mean(0),
            mesh[MESH_NOSE_TIP, :2],
            mesh[list(MESH_LIPS), :2].mean(0),
        ]
    ).astype(np.float32)


def _mesh_landmarks(mesh: np.ndarray) -> np.ndarray:
    """Rekognition's five landmarks (image-left first) from a Face Mesh."""
    right_eye, left_eye, nose, _ = mesh_points(mesh)
    mouth_r, mouth_l = mesh[MESH_MOUTH[0], :2], mesh[MESH_MOUTH[1], :2]
    eyes = (right_eye, left_eye) if right_eye[0] <= left_eye[0] else (left_eye, right_eye)
    mouth = (mouth_r, mouth_l) if mouth_r[0] <= mouth_l[0] else (mouth_l, mouth_r)
    return np.stack([*eyes, nose, *mouth]).astype(np.float32)


def mesh_crop(box, keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """The 2×3 affine that maps the image onto Face Mesh's 192 px crop of a detection
    (MediaPipe's face_landmark_front: the box's centre, a square 1.5× its longer side, rotated
    so the eye keypoints are level), and the crop's side in image pixels."""
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float64)
    side = MESH_SCALE * max(x1 - x0, y1 - y0, 1.0)
    right_eye, left_eye = keypoints[0].astype(np.float64), keypoints[1].astype(np.float64)
    angle = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
    scale = MESH_SIZE / side
    c, s = math.cos(-angle) * scale, math.sin(-angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = MESH_SIZE / 2 - m[:, :2] @ centre
    return m, side


def _anchors(size: int, layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres in input pixels, MediaPipe's SsdAnchorsCalculator with fixed anchor size
    and offset 0.5: per (stride, anchors per cell) layer, row-major cells, repeated anchors."""
    out = []
    for stride, per_cell in layers:
        cells = (np.arange(math.ceil(size / stride), dtype=np.float32) + 0.5) * stride
        ys, xs = np.meshgrid(cells, cells, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out)


@dataclass(frozen=True)
class _Net:
    """One BlazeFace variant: its file, input side and anchors."""

    key: str
    filename: str
    size: int
    anchors: np.ndarray = field(repr=False)


#: full range: 192 px, one anchor per 4 px cell (2304) — faces small in the view
FULL_RANGE = _Net("full", DETECTOR_FILE, 192, _anchors(192, ((4, 1),)))
#: short range: 128 px, 16×16×2 + 8×8×6 anchors (896) — faces filling much of the view
SHORT_RANGE = _Net("short", SHORT_DETECTOR_FILE, 128, _anchors(128, ((8, 2), (16, 6))))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        overlap = pairwise_iou(boxes[i : i + 1], boxes[rest])[0]
        order = rest[overlap <= iou]
    return np.array(keep, np.int64)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) → (N, M)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def tiles(width: int, height: int, cols: int, rows: int) -> list[tuple[int, int, int, int]]:
    """``cols``×``rows`` overlapping windows covering the image, each 1/cols (1/rows) of the
    side plus 25 % overlap, so a face cut by one window's edge is whole in its neighbour."""
    out = []
    tw = min(width, math.ceil(width / cols * 1.25)) if cols > 1 else width
    th = min(height, math.ceil(height / rows * 1.25)) if rows > 1 else height
    for gy in range(rows):
        for gx in range(cols):
            x0 = 0 if cols == 1 else round(gx * (width - tw) / (cols - 1))
            y0 = 0 if rows == 1 else round(gy * (height - th) / (rows - 1))
            out.append((x0, y0, x0 + tw, y0 + th))
    return out


class FaceDetector:
    """MediaPipe BlazeFace: the full-range network on the whole photo (and, optionally, on
    overlapping tiles), the short-range network on the whole photo; boxes merged by NMS.

    The full-range network finds faces that are small in its 192 px view but misses faces that
    fill much of it (portraits, selfies); the short-range one (128 px) is the opposite, and
    costs a quarter as much. ``tiles=(cols, rows)`` adds full-range views of that many
    overlapping windows, for photos whose shorter side is at least ``tile_min_side`` (more
    recall of small faces at ~5 ms per tile; off by default, see docs/faces-models.md).
    MediaPipe Face Mesh then runs on each candidate's crop: its landmarks become the face's,
    and its face-presence probability lets a weaker detection through (``MESH_FLOOR``) while
    it rejects most confident mistakes; ``mesh=False`` skips it (cheaper, coarser landmarks,
    more false faces).

    ``detect(image)`` → faces sorted by score. ``version`` names every network's digest."""

    key = "blazeface"

    def __init__(
        self,
        *,
        threads: int = 0,
        threshold: float | None = None,
        tiles: tuple[int, int] = (1, 1),
        tile_min_side: int = 320,
        short_range: bool = True,
        mesh: bool = True,
        models: Path | None = None,
    ) -> None:
        folder = Path(models) if models is not None else models_dir()
        self.path, full_version, full = _load(
            DETECTOR_FILE, "full", threads, folder / DETECTOR_FILE
        )
        self.sessions = {"full": full}
        versions = [full_version]
        if short_range:
            path = folder / SHORT_DETECTOR_FILE
            _, short_version, self.sessions["short"] = _load(
                SHORT_DETECTOR_FILE, "short", threads, path
            )
            versions.append(short_version)
        if mesh:
            path = folder / MESH_FILE
            _, mesh_version, self.sessions["mesh"] = _load(MESH_FILE, "mesh", threads, path)
            versions.append(mesh_version)
        self.version = f"{self.key}:" + "+".join(v.split(":", 1)[1] for v in versions)
        if threshold is None:
            threshold = DEFAULT_THRESHOLD if mesh else NO_MESH_THRESHOLD
        self.threshold = threshold
        self.tiles = tiles
        self.tile_min_side = tile_min_side

    # -- one view ---------------------------------------------------------------------------
    @staticmethod
    def preprocess(image: Image.Image, size: int = 192) -> tuple[np.ndarray, float, float, float]:
        """Letterbox ``image`` into size×size (aspect kept, centred, black padding), RGB in
        [-1, 1] as MediaPipe feeds it. Returns (tensor HWC, scale, pad_x, pad_y): a point
        ``p`` of the input maps back to ``(p - pad) / scale`` in ``image``."""
        w, h = image.size
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = image.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
        canvas = np.zeros((size, size, 3), np.float32)
        px, py = (size - nw) // 2, (size - nh) // 2
        canvas[py : py + nh, px : px + nw] = np.asarray(small, np.float32)
        return canvas * np.float32(1 / 127.5) - np.float32(1.0), scale, float(px), float(py)

    def outputs(self, net: str, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs of one network for (1, S, S, 3): boxes (1, A, 16), logits (1, A)."""
        boxes, scores = self.sessions[net].run(["boxes", "scores"], {"image": batch})
        return boxes, scores[..., 0]

    @staticmethod
    def decode(
        boxes: np.ndarray, logits: np.ndarray, floor: float, anchors: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One view's raw outputs → (scores (K,), boxes (K, 4), keypoints (K, 6, 2)) in input
        pixels for anchors scoring ≥ ``floor`` (MediaPipe's decoding: offsets from the anchor
        centre, sizes in input pixels, sigmoid of the clipped logit)."""
        anchors = FULL_RANGE.anchors if anchors is None else anchors
        # the sigmoid of the clipped logit, written with tanh (no overflow warning for -100)
        scores = 0.5 * (1 + np.tanh(np.clip(logits, -_SCORE_CLIP, _SCORE_CLIP) / 2))
        idx = np.nonzero(scores >= floor)[0]
        raw = boxes[idx]
        centre = raw[:, 0:2] + anchors[idx]
        half = raw[:, 2:4] / 2
        out = np.concatenate([centre - half, centre + half], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) + anchors[idx][:, None, :]
        return scores[idx].astype(np.float32), out.astype(np.float32), kps.astype(np.float32)

    def views(self, image: Image.Image) -> list[tuple[int, int, int, int]]:
        """The windows the full-range network looks at: the whole image, plus tiles."""
        w, h = image.size
        out = [(0, 0, w, h)]
        cols, rows = self.tiles
        if cols * rows > 1 and min(w, h) >= self.tile_min_side:
            out += tiles(w, h, cols, rows)
        return out

    def _run(
        self, net: _Net, image: Image.Image, window: tuple[int, int, int, int], floor: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One network on one window → (scores, boxes, keypoints) in image pixels."""
        x0, y0, x1, y1 = window
        view = image if window == (0, 0, *image.size) else image.crop(window)
        tensor, scale, px, py = self.preprocess(view, net.size)
        raw_boxes, raw_logits = self.outputs(net.key, tensor[None])
        scores, boxes, kps = self.decode(raw_boxes[0], raw_logits[0], floor, net.anchors)
        pad = np.array([px, py], np.float32)
        origin = np.array([x0, y0], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) - pad) / scale + origin).reshape(-1, 4)
        return scores, boxes, (kps - pad) / scale + origin

    def run_mesh(
        self, image: Image.Image | np.ndarray, box, keypoints: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Face Mesh on the crop of one detection → ((468, 3) points in image pixels, presence
        probability). ``image``: RGB, as a PIL image or an (H, W, 3) uint8 array."""
        m, side = mesh_crop(box, keypoints)
        crop = cv2.warpAffine(
            np.asarray(image), m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )  # fmt: skip
        tensor = crop.astype(np.float32)[None] * np.float32(1 / 255)
        points, logit = self.sessions["mesh"].run(["landmarks", "presence"], {"image": tensor})
        points = points.reshape(468, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(m)
        xy = points[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = points[:, 2:] * side / MESH_SIZE
        presence = 0.5 * (1 + math.tanh(float(logit.reshape(-1)[0]) / 2))
        return np.hstack([xy, z]).astype(np.float32), presence

    def detect(self, image: Image.Image, threshold: float | None = None) -> list[Face]:
        """Faces in ``image`` (any mode; converted to RGB), best first.

        Full-range detections (whole image and tiles) are merged by NMS; a short-range
        detection is added only where the full-range network found nothing (IoU < 0.3 with
        all its boxes), only for a face at least ``SHORT_MIN_SIDE`` of the image's shorter
        side and scoring at least ``SHORT_MIN_SCORE`` — on coco128 its smaller boxes were
        mostly false (docs/faces-models.md). With Face Mesh, a detection scoring at least
        ``threshold`` is kept, and one scoring at least ``MESH_FLOOR`` (or ``threshold`` if
        lower) when the mesh finds a face in its crop; every kept face gets the mesh's
        landmarks, and a box whose mesh coincides with a kept face's is dropped (a duplicate
        NMS did not catch)."""
        strict = self.threshold if threshold is None else threshold
        use_mesh = "mesh" in self.sessions
        floor = min(strict, MESH_FLOOR) if use_mesh else strict
        image = image if image.mode == "RGB" else image.convert("RGB")
        if image.width < 2 or image.height < 2:
            return []
        runs = [self._run(FULL_RANGE, image, w, floor) for w in self.views(image)]
        scores = np.concatenate([r[0] for r in runs])
        boxes = np.concatenate([r[1] for r in runs])
        kps = np.concatenate([r[2] for r in runs])
        keep = nms(boxes, scores, NMS_IOU)
        scores, boxes, kps = scores[keep], boxes[keep], kps[keep]
        if "short" in self.sessions:
            whole = (0, 0, image.width, image.height)
            s, b, k = self._run(SHORT_RANGE, image, whole, max(floor, SHORT_MIN_SCORE))
            side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
            big = side >= SHORT_MIN_SIDE * min(image.size)
            s, b, k = s[big], b[big], k[big]
            if len(s):
                keep = nms(b, s, NMS_IOU)
                s, b, k = s[keep], b[keep], k[keep]
                if len(boxes):
                    alone = pairwise_iou(b, boxes).max(axis=1) < NMS_IOU
                    s, b, k = s[alone], b[alone], k[alone]
                scores = np.concatenate([scores, s])
                boxes = np.concatenate([boxes, b])
                kps = np.concatenate([kps, k])
        faces: list[Face] = []
        pixels = None
        limit = np.array([image.width, image.height] * 2, np.float32)
        for i in np.argsort(-scores, kind="stable"):
            box = np.clip(boxes[i], 0, limit)
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            mesh, presence = None, None
            if use_mesh:
                if pixels is None:  # once per photo: np.asarray copies the whole image
                    pixels = np.asarray(image)
                mesh, presence = self.run_mesh(pixels, boxes[i], kps[i])
                if scores[i] < strict and presence < MESH_PRESENCE:
                    continue
            elif scores[i] < strict:
                continue
            if mesh is not None and any(_same_mesh(mesh, f.mesh) for f in faces):
                continue  # a second box on a face already kept: the meshes coincide
            landmarks = _mesh_landmarks(mesh) if mesh is not None else _five_points(kps[i])
            faces.append(
                Face(
                    box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    score=float(scores[i]),
                    landmarks=landmarks,
                    keypoints=kps[i],
                    mesh=mesh,
                    presence=presence,
                )
            )
        return faces


def _same_mesh(a: np.ndarray, b: np.ndarray | None) -> bool:
    """Two Face Meshes of one face: their eye midpoints closer than half the eye distance and
    their eye distances within a factor 1.5. (Two boxes on one face that overlap too little
    for NMS still give the same mesh, because the mesh's crop is 1.5× the box.)"""
    if b is None:
        return False
    pa, pb = mesh_points(a), mesh_points(b)
    da, db = np.hypot(*(pa[1] - pa[0])), np.hypot(*(pb[1] - pb[0]))
    if not (da > 0 and db > 0 and 1 / 1.5 <= da / db <= 1.5):
        return False
    mid = np.hypot(*((pa[0] + pa[1]) / 2 - (pb[0] + pb[1]) / 2))
    return bool(mid < 0.5 * max(da, db))


def _five_points(kps: np.ndarray) -> np.ndarray:
    """Rekognition's five landmarks from BlazeFace's six keypoints: the eyes (image-left first)
    and the nose tip as detected; the mouth corners at the detected mouth centre ± 0.42 × the
    eye vector (dlib's mean face: mouth width / eye-centre distance = 0.472 / 0.529 ≈ 0.89), so
    they follow the face's roll and size but are an estimate, not a detection."""
    right_eye, left_eye, nose, mouth = kps[0], kps[1], kps[2], kps[3]
    a, b = (right_eye, left_eye) if right_eye[0] <= left_eye[0] else (left_eye, right_eye)
    half = (b - a) * 0.445
    return np.stack([a, b, nose, mouth - half, mouth + half]).astype(np.float32)


# --- pose and quality ------------------------------------------------------------------------
def pose(face: Face) -> dict[str, float]:
    """Roll, yaw and pitch in degrees (Rekognition's ``Pose``).

    With a Face Mesh (the default): roll is the angle of the line through the outer eye
    corners in the image (positive = clockwise), yaw the angle of that line in depth (positive
    when the face turns towards the image's right), pitch the angle of the forehead–chin line in
    depth (positive when the face looks up). Without one, the same from BlazeFace's keypoints:
    yaw from the nose tip's offset between the eyes, pitch from its height between the eyes and
    the mouth — coarser. Accuracy in docs/faces-models.md (no pose ground truth was at hand:
    only rotations of real photos were checked)."""
    if face.mesh is not None:
        m = face.mesh.astype(np.float64)
        a, b = m[MESH_EYE_CORNERS[0]], m[MESH_EYE_CORNERS[1]]
        if a[0] > b[0]:
            a, b = b, a
        roll = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
        # undo the roll before reading depth angles
        c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
        d = b - a
        yaw = math.degrees(math.atan2(d[2], c * d[0] + s * d[1]))
        top, chin = m[MESH_FOREHEAD_CHIN[0]], m[MESH_FOREHEAD_CHIN[1]]
        v = chin - top
        pitch = math.degrees(math.atan2(-v[2], -s * v[0] + c * v[1]))
        return {"roll": round(roll, 2), "yaw": round(yaw, 2), "pitch": round(pitch, 2)}
    k = face.keypoints
    right_eye, left_eye, nose, mouth = k[0], k[1], k[2], k[3]
    a, b = (right_eye, left_eye) if right_eye[0] <= left_eye[0] else (left_eye, right_eye)
    eye_vec = b - a
    dist = float(np.hypot(*eye_vec)) or 1.0
    roll = math.degrees(math.atan2(float(eye_vec[1]), float(eye_vec[0])))
    c, s = eye_vec / dist
    mid = (a + b) / 2

    def local(p: np.ndarray) -> tuple[float, float]:
        d = p - mid
        return float(c * d[0] + s * d[1]), float(-s * d[0] + c * d[1])

    nx, ny = local(nose)
    _, my = local(mouth)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2 * nx / dist))))
    frac = ny / my if my > 1e-6 else 0.5
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, (0.5 - frac) * 2.5))))
    return {"roll": round(roll, 2), "yaw": round(yaw, 2), "pitch": round(pitch, 2)}


def quality(image: Image.Image, face: Face) -> dict[str, float]:
    """Brightness and sharpness of the face, 0–100 (Rekognition's ``Quality``):

    - brightness: mean luma (ITU-R 601) of the face box, 0–255 mapped to 0–100;
    - sharpness: variance of the Laplacian of the face resized to 64×64 grey, mapped by
      ``100 · (1 − exp(−var / 300))``. On the 41 faces found in coco128: median 77, 10th/90th
      percentile 22/98; after a 2 px Gaussian blur of the photo, median 3.2."""
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    crop = image.crop((x0, y0, x1, y1)).convert("L")
    grey = np.asarray(crop, np.float32)
    brightness = float(grey.mean()) / 255 * 100 if grey.size else 0.0
    small = np.asarray(crop.resize((64, 64), Image.Resampling.BILINEAR), np.float32)
    var = float(cv2.Laplacian(small, cv2.CV_32F).var())
    sharpness = 100 * (1 - math.exp(-var / 300))
    return {"brightness": round(brightness, 2), "sharpness": round(sharpness, 2)}


# --- alignment and descriptor ----------------------------------------------------------------
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _template() -> np.ndarray:
    """Where the right eye, left eye (the person's), nose tip and mouth centre sit in dlib's
    150 px face chip with 0.25 padding: means of dlib's 68-point mean face shape (eye centres =
    mean of points 36–41 / 42–47, nose tip = 30, mouth centre = mean of 62 and 66), mapped as
    ``get_face_chip_details`` maps them: ``(padding + p) / (2·padding + 1) · size``."""
    right_eye = np.mean(
        [[0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852],
         [0.334606, 0.231733], [0.260918, 0.245099], [0.182743, 0.244077]], axis=0,
    )  # fmt: skip
    left_eye = np.mean(
        [[0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
         [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099]], axis=0,
    )  # fmt: skip
    nose = np.array([0.490127, 0.515625])
    mouth = np.mean([[0.490127, 0.785343], [0.490127, 0.831803]], axis=0)
    unit = np.stack([right_eye, left_eye, nose, mouth])
    return ((CHIP_PADDING + unit) / (2 * CHIP_PADDING + 1) * CHIP_SIZE).astype(np.float64)


TEMPLATE = _template()


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation; no reflection) that maps the
    points ``src`` onto ``dst`` with least squared error (Umeyama 1991, as dlib's
    ``find_similarity_transform``)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var) if var > 0 else 1.0
    t = md - scale * rot @ ms
    return np.hstack([scale * rot, t[:, None]])


def align(image: Image.Image | np.ndarray, face: Face) -> np.ndarray:
    """The 150×150 RGB uint8 chip dlib's descriptor expects for ``face`` (bilinear; a face much
    larger than the chip is first shrunk with area averaging, as dlib's pyramid does).
    ``image``: a PIL image (any mode) or an (H, W, 3) RGB uint8 array."""
    if isinstance(image, Image.Image):
        image = image if image.mode == "RGB" else image.convert("RGB")
    rgb = np.asarray(image)
    pts = (mesh_points(face.mesh) if face.mesh is not None else face.keypoints[:4]).astype(
        np.float64
    )
    m = similarity_transform(pts, TEMPLATE)  # image → chip
    scale = math.hypot(m[0, 0], m[1, 0])
    if scale < 0.5:  # the face is > 2× the chip: shrink the neighbourhood first
        factor = int(1 / scale / 1.5) or 1
        if factor > 1:
            inv = cv2.invertAffineTransform(m)
            corners = np.array([[0, 0, 1], [CHIP_SIZE, 0, 1], [0, CHIP_SIZE, 1],
                                [CHIP_SIZE, CHIP_SIZE, 1]], np.float64) @ inv.T  # fmt: skip
            x0, y0 = np.floor(corners.min(0)).astype(int) - 2
            x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, rgb.shape[1]), min(y1, rgb.shape[0])
            if x1 - x0 >= factor and y1 - y0 >= factor:
                region = rgb[y0:y1, x0:x1]
                sw, sh = (x1 - x0) // factor, (y1 - y0) // factor
                region = cv2.resize(
                    region[: sh * factor, : sw * factor], (sw, sh), interpolation=cv2.INTER_AREA
                )
                # chip = m · (factor · q + offset + (factor - 1) / 2) for q in the small region
                shift = np.array([x0 + (factor - 1) / 2, y0 + (factor - 1) / 2])
                m = np.hstack([m[:, :2] * factor, (m[:, :2] @ shift + m[:, 2])[:, None]])
                rgb = np.ascontiguousarray(region)
    return cv2.warpAffine(
        rgb, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


class FaceEmbedder:
    """dlib's ResNet face descriptor: ``embed(image, faces)`` → (n, 128) float32, L2-normalised
    (cosine similarity = dot product). ``embed_chips`` takes aligned chips directly."""

    key = "dlib-resnet"
    dim = 128

    def __init__(self, *, threads: int = 0, path: Path | None = None) -> None:
        self.path, self.version, self.session = _load(DESCRIPTOR_FILE, self.key, threads, path)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """Raw (un-normalised) descriptors of (n, 150, 150, 3) chips, RGB 0–255."""
        return self.session.run(["descriptor"], {"image": chips.astype(np.float32)})[0]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        d = self.descriptors(np.asarray(chips))
        return (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def embed(self, image: Image.Image, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # once
        return self.embed_chips(np.stack([align(rgb, f) for f in faces]))


# --- Rekognition-style similarity ------------------------------------------------------------
#: cosine similarity from which two faces are taken to be the same person (verification and
#: grouping; the accuracy-optimal threshold on the fit identities, docs/faces-models.md — close
#: to dlib's own 0.6 Euclidean distance, which is cosine ≈ 0.911 for these descriptors)
MATCH_COSINE = 0.913
#: the logistic mapping of cosine similarity to a 0–100 Similarity: 50 at ``_MID`` (estimated
#: false-match rate 1 %), 80 at cosine 0.954 (0.1 %); fitted on coco128 impostor pairs
_MID = 0.930
_SLOPE = 58.3
#: the cosine at Similarity 80 (Rekognition's default CompareFaces threshold)
SIMILARITY_80_COSINE = _MID + math.log(4) / _SLOPE


def similarity_from_cosine(cos: np.ndarray | float) -> np.ndarray:
    """Rekognition-style ``Similarity`` (0–100) of a cosine similarity."""
    c = np.asarray(cos, np.float64)
    return (100 / (1 + np.exp(-_SLOPE * (c - _MID)))).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rekognition-style ``Similarity`` (0–100) of L2-normalised descriptors ``a`` (n, d) and
    ``b`` (m, d) → (n, m)."""
    return similarity_from_cosine(np.atleast_2d(a) @ np.atleast_2d(b).T)
