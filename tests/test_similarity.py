"""Similar photos and duplicates (pixdex.similarity) on real coco128 photos, and the graph's extra
outputs leaving the logits untouched."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image, ImageEnhance, ImageOps

from pixdex import similarity as sim
from pixdex.imaging import decode
from pixdex.models.classifier import Classifier, onnx_model_path, weights_file
from pixdex.models.efficientnet import BUILDER_VERSION, OUTPUT_NAME, build_model
from pixdex.models.pth import read_state_dict
from pixdex.models.sessions import session_options

N_PHOTOS = 40


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier(cache_dir=tmp_path_factory.mktemp("cache"), threads=1)


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _run(clf: Classifier, blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings through int8 storage, thumbnails) as pixdex index would compute them."""
    x = np.stack([clf.preprocess(decode(b, min_side=clf.min_side).image) for b in blobs])
    pred = clf.predict_with_features(x)
    proj = sim.load_projection(clf.name)
    emb = sim.decode_embeddings([sim.encode_embedding(v) for v in proj(pred.features_max)])
    return emb, pred.thumbnails


@pytest.fixture(scope="module")
def photos(coco_images: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in coco_images[:N_PHOTOS]]


@pytest.fixture(scope="module")
def originals(clf: Classifier, photos: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    return _run(clf, photos)


def _edits(data: bytes) -> list[bytes]:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    crop = img.crop((w // 20, h // 16, w - w // 14, h - h // 20))
    mirrored = ImageOps.mirror(img)
    darker = ImageEnhance.Brightness(img).enhance(0.8)
    small = img.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    everything = ImageOps.mirror(crop)
    everything = ImageEnhance.Brightness(everything).enhance(1.2)
    everything = everything.resize((everything.width // 2, everything.height // 2))
    return [_jpeg(crop), _jpeg(img, 35), _jpeg(mirrored), _jpeg(darker), _jpeg(small),
            _jpeg(everything, 40)]  # fmt: skip


def test_logits_unchanged_by_the_feature_outputs(clf: Classifier, photos: list[bytes]) -> None:
    full = build_model(read_state_dict(weights_file(clf.name)), clf.input_size, clf.name)
    assert [o.name for o in full.graph.output] == [OUTPUT_NAME, "features", "features_max"]
    alone = onnx.ModelProto()
    alone.CopyFrom(full)
    del alone.graph.output[1:]  # the float graph with the logits as its only output
    max_nodes = [n for n in alone.graph.node if n.name in ("pool_max", "flatten_max")]
    for node in max_nodes:
        alone.graph.node.remove(node)
    onnx.checker.check_model(alone)
    x = np.stack([clf.preprocess(decode(b, min_side=clf.min_side).image) for b in photos[:8]])
    ref = ort.InferenceSession(alone.SerializeToString(), session_options(1))
    expected = ref.run(None, {"input": x})[0]
    pred = clf.predict_with_features(x)
    assert np.abs(pred.logits - expected).max() == 0.0
    assert np.abs(clf.predict(x) - expected).max() == 0.0
    assert pred.features.shape == pred.features_max.shape == (8, 1280)
    assert (pred.features_max >= pred.features).all()  # max pool >= average pool
    assert pred.thumbnails.shape == (8, 8, 8, 3) and pred.thumbnails.dtype == np.uint8


def test_projection_matches_the_model(clf: Classifier) -> None:
    _, digest = onnx_model_path(clf.name)
    proj = sim.load_projection(clf.name, digest, BUILDER_VERSION)
    assert proj.matrix.shape == (1280, sim.EMBEDDING_DIM)
    with pytest.raises(sim.ProjectionUnavailable, match="other weights"):
        sim.load_projection(clf.name, "0" * 64)
    with pytest.raises(sim.ProjectionUnavailable, match="another graph"):
        sim.load_projection(clf.name, digest, BUILDER_VERSION - 1)
    with pytest.raises(sim.ProjectionUnavailable):
        sim.load_projection("efficientnet-lite2")


def test_edited_copies_find_their_original_first(
    clf: Classifier, photos: list[bytes], originals: tuple[np.ndarray, np.ndarray]
) -> None:
    emb, _ = originals
    sources = [0, 7, 19, 33]
    copies, _ = _run(clf, [e for i in sources for e in _edits(photos[i])])
    corpus = np.concatenate([emb, copies])
    for j, vec in enumerate(copies):
        idx, scores = sim.top_k(corpus, vec, k=3, exclude=len(emb) + j)
        source = sources[j // 6]
        # the original, or another copy of it
        assert idx[0] == source or (idx[0] >= len(emb) and (idx[0] - len(emb)) // 6 == j // 6)
        assert scores[0] >= scores[1] >= scores[2]


def test_duplicates_group_copies_and_nothing_else(
    clf: Classifier, photos: list[bytes], originals: tuple[np.ndarray, np.ndarray]
) -> None:
    emb, thumbs = originals
    img = Image.open(io.BytesIO(photos[3])).convert("RGB")
    resized = img.resize((img.width * 2 // 5, img.height * 2 // 5), Image.Resampling.LANCZOS)
    frame = ImageEnhance.Brightness(
        img.rotate(1.0, Image.Resampling.BICUBIC).crop(
            (img.width // 16, img.height // 20, img.width * 15 // 16, img.height * 19 // 20)
        )
    ).enhance(1.05)
    every = _edits(photos[11])[-1]  # cropped, mirrored, brighter, halved, JPEG 40
    e2, t2 = _run(clf, [_jpeg(resized), _jpeg(frame, 85), every])
    groups = sim.duplicate_groups(np.concatenate([emb, e2]), np.concatenate([thumbs, t2]))
    n = len(emb)
    assert groups == [[3, n, n + 1], [11, n + 2]]
    # the originals alone: 40 different photos, no group
    assert sim.duplicate_groups(emb, thumbs) == []


def test_storage_round_trip(originals: tuple[np.ndarray, np.ndarray]) -> None:
    emb, thumbs = originals
    blob = sim.encode_embedding(emb[0])
    assert len(blob) == sim.EMBEDDING_DIM
    back = sim.decode_embeddings([blob])[0]
    assert float(back @ emb[0]) > 0.9999
    assert sim.decode_embeddings([]).shape == (0, sim.EMBEDDING_DIM)
    tb = sim.encode_thumbnail(thumbs[0])
    assert len(tb) == sim.THUMB_BYTES and (sim.decode_thumbnails([tb])[0] == thumbs[0]).all()
    with pytest.raises(ValueError):
        sim.encode_thumbnail(thumbs[0].astype(np.float32))
    # mirror-aware: a thumbnail and its mirror image, brightened, correlate fully
    mirrored = np.clip(thumbs[:1, :, ::-1].astype(int) * 1.1, 0, 255).astype(np.uint8)
    assert sim.thumbnail_similarity(thumbs[:1], mirrored)[0] > 0.98


def test_top_k_and_neighbours_on_random_vectors() -> None:
    rng = np.random.default_rng(0)
    x = sim.normalize(rng.normal(size=(3000, 32)))
    idx, scores = sim.top_k(x, x[5], k=4, exclude=5)
    full = x @ x[5]
    full[5] = -np.inf
    assert list(idx) == list(np.argsort(-full)[:4]) and np.all(np.diff(scores) <= 0)
    assert len(sim.top_k(x[:1], x[0], exclude=0)[0]) == 0
    # the int8 matrix as stored: the same nearest, cosines within quantisation error
    m8 = sim.int8_matrix([sim.encode_embedding(v) for v in x])
    idx8, scores8 = sim.top_k(m8, x[5], k=4, exclude=5, norms=sim.row_norms(m8))
    assert idx8[0] == idx[0] and np.allclose(scores8, full[idx8], atol=0.02)
    # 1,500 photos and a near copy of each: bucketed neighbours find every copy, like exact ones
    y = sim.normalize(np.concatenate([x[:1500], x[:1500] + 0.05 * rng.normal(size=(1500, 32))]))
    exact = sim.neighbours(y, 10)
    bucketed = sim.neighbours(y, 10, exact_limit=0)
    partner = np.concatenate([np.arange(1500, 3000), np.arange(1500)])
    assert exact[0].shape == bucketed[0].shape == (3000, 10)
    assert (exact[0][:, 0] == partner).all() and (bucketed[0][:, 0] == partner).all()
    assert (bucketed[1][:, :-1] >= bucketed[1][:, 1:]).all()
    assert np.allclose(bucketed[1][:, 0], exact[1][:, 0])
    one = sim.neighbours(x[:1], 10)
    assert one[0].shape == (1, 0)


def test_keep_order() -> None:
    big = sim.Copy(4000, 3000, 2_000_000)
    small = sim.Copy(2000, 1500, 900_000)
    heavier = sim.Copy(4000, 3000, 2_500_000, timestamp=20.0)
    older = sim.Copy(4000, 3000, 2_500_000, timestamp=10.0)
    order, why = sim.keep_order([small, big])
    assert order == [1, 0] and why.startswith("most pixels: 4000x3000")
    order, why = sim.keep_order([big, heavier])
    assert order == [1, 0] and why.startswith("same pixels, largest file")
    order, why = sim.keep_order([heavier, older, small])
    assert order == [1, 0, 2] and "oldest" in why
    assert sim.keep_order([big]) == ([0], "the only copy")
