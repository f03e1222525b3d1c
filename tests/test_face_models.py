"""The shipped face models reproduce their original runtimes, and the wrapper behaves on real
photos.

The reference (tests/data/face_reference.json) is made by scripts/build_face_reference.py: the
TensorFlow Lite interpreter runs MediaPipe's BlazeFace and Face Mesh .tflite files, and
face-api's own TF.js code runs dlib's ResNet descriptor, on the very tensors, crops and chips
pixdex makes. Measured on this machine (AVX-512): logits within 1e-5, decoded boxes within
0.005 px, Face Mesh points within 2e-4 px of its 192 px crop, descriptors within 5e-6 of the
reference; the tolerances below leave ~100× room for other CPUs' kernels (AVX2-only CPUs are
checked under ``qemu-x86_64 -cpu Haswell``, see docs/faces-models.md)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter

from pixdex.imaging import decode
from pixdex.models import faces as F

FIXTURE = json.loads((Path(__file__).parent / "data" / "face_reference.json").read_text())
SHARED = Path(os.environ.get("PIXDEX_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "data" / "coco128" / "images"

needs_coco = pytest.mark.skipif(not IMAGES.is_dir(), reason=f"needs {IMAGES}")

LOGIT_TOL = 1e-3
BOX_TOL = 0.1  # px in the photo
SCORE_TOL = 1e-4
DESCRIPTOR_TOL = 1e-3
MESH_TOL = 0.02  # px in the 192 px crop
PRESENCE_TOL = 0.05


@pytest.fixture(scope="module")
def detector() -> F.FaceDetector:
    return F.FaceDetector(threads=1)


@pytest.fixture(scope="module")
def embedder() -> F.FaceEmbedder:
    return F.FaceEmbedder(threads=1)


def photo(name: str) -> Image.Image:
    return decode((IMAGES / name).read_bytes()).image


def test_manifest_matches_the_shipped_files():
    folder = F.models_dir()
    models = F.manifest()
    assert set(models) == {F.DETECTOR_FILE, F.SHORT_DETECTOR_FILE, F.MESH_FILE, F.DESCRIPTOR_FILE}
    for name, entry in models.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
        for licence in entry["licenses"]:
            assert (folder / licence).stat().st_size > 500, licence


@needs_coco
@pytest.mark.parametrize("net", [F.FULL_RANGE, F.SHORT_RANGE], ids=lambda n: n.key)
def test_detectors_match_tflite(net, detector):
    ref = FIXTURE["detectors"][net.key]
    assert ref["file"] == net.filename and ref["size"] == net.size
    for entry in ref["photos"]:
        tensor, scale, px, py = detector.preprocess(photo(entry["photo"]), net.size)
        boxes, logits = detector.outputs(net.key, tensor[None])
        for anchor, value in entry["top_raw"]:
            assert logits[0, anchor] == pytest.approx(value, abs=LOGIT_TOL), entry["photo"]
        scores, found, _ = detector.decode(boxes[0], logits[0], ref["min_score"], net.anchors)
        keep = F.nms(found, scores, F.NMS_IOU)
        assert len(keep) == len(entry["faces"]), entry["photo"]
        for i, face in zip(keep, entry["faces"], strict=True):
            box = (found[i].reshape(2, 2) - [px, py]) / scale
            assert np.abs(box.reshape(-1) - face["box"]).max() <= BOX_TOL
            assert scores[i] == pytest.approx(face["score"], abs=SCORE_TOL)


@needs_coco
def test_mesh_matches_tflite(detector):
    """Face Mesh on pixdex's crop of each face gives TF Lite's landmarks and presence."""
    ref = FIXTURE["mesh"]
    assert ref["file"] == F.MESH_FILE
    found: dict[str, list[F.Face]] = {}
    for entry in ref["faces"]:
        if entry["photo"] not in found:
            found[entry["photo"]] = detector.detect(photo(entry["photo"]))
        face = min(
            found[entry["photo"]], key=lambda f: np.abs(np.subtract(f.box, entry["box"])).max()
        )
        assert np.abs(np.subtract(face.box, entry["box"])).max() <= BOX_TOL
        m, _ = F.mesh_crop(face.box, face.keypoints)
        crop = cv2.warpAffine(np.asarray(photo(entry["photo"])), m, (192, 192),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)  # fmt: skip
        points, logit = detector.sessions["mesh"].run(
            ["landmarks", "presence"], {"image": crop.astype(np.float32)[None] / 255}
        )
        every = ref["landmarks_every"]
        assert np.abs(points.reshape(-1)[::every] - entry["landmarks"]).max() <= MESH_TOL
        # the presence logit is the most kernel-sensitive output: within 1e-5 on AVX-512, up to
        # 0.012 on AVX2 (qemu Haswell); what matters is its sign (the decision, below)
        assert logit.reshape(-1)[0] == pytest.approx(entry["presence_logit"], abs=PRESENCE_TOL)
        assert (face.presence >= F.MESH_PRESENCE) == (entry["presence_logit"] >= 0)


def test_reference_is_not_trivial():
    full = FIXTURE["detectors"]["full"]["photos"]
    assert sum(len(p["faces"]) for p in full) >= 10
    assert len(FIXTURE["descriptor"]["faces"]) >= 10


@needs_coco
def test_descriptor_matches_face_api(detector, embedder):
    """The rebuilt ResNet gives face-api's descriptors on the same photos' aligned faces."""
    by_photo: dict[str, list[F.Face]] = {}
    for entry in FIXTURE["descriptor"]["faces"]:
        if entry["photo"] not in by_photo:
            by_photo[entry["photo"]] = detector.detect(photo(entry["photo"]))
        faces = by_photo[entry["photo"]]
        boxes = np.array([f.box for f in faces], np.float32)
        j = int(np.abs(boxes - entry["box"]).max(axis=1).argmin())
        assert np.abs(boxes[j] - entry["box"]).max() <= BOX_TOL
        chip = F.align(photo(entry["photo"]), faces[j])
        ours = embedder.descriptors(chip[None])[0]
        ref = np.array(entry["descriptor"], np.float32)
        assert np.abs(ours - ref).max() <= DESCRIPTOR_TOL
        cos = ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref)
        assert cos > 0.99999


#: hand-checked (tests/data/face_reference.json ``coco128_faces``): every face ≥ 64 px in these
#: photos, and how many faces the default detector returns in each (all of them real faces)
FOUND = {
    "000000000036.jpg": 1,
    "000000000110.jpg": 2,
    "000000000165.jpg": 2,
    "000000000294.jpg": 1,
    "000000000370.jpg": 1,
    "000000000428.jpg": 1,
    "000000000459.jpg": 1,
}


@needs_coco
@pytest.mark.parametrize("name", sorted(FOUND))
def test_faces_found_in_coco128(name, detector):
    faces = detector.detect(photo(name))
    assert len(faces) == FOUND[name]
    labels = FIXTURE["coco128_faces"][name]["faces"]
    big = np.array([b for b in labels if max(b[2] - b[0], b[3] - b[1]) >= 64], np.float32)
    iou = F.pairwise_iou(big, np.array([f.box for f in faces], np.float32))
    assert (iou.max(axis=1) >= 0.5).all()
    for face in faces:
        assert 0 < face.score <= 1
        x0, y0, x1, y1 = face.box
        # the eyes and the nose tip lie inside the box
        inside = (face.landmarks[:3, 0] >= x0) & (face.landmarks[:3, 0] <= x1)
        inside &= (face.landmarks[:3, 1] >= y0) & (face.landmarks[:3, 1] <= y1)
        assert inside.all()
        assert face.landmarks[0, 0] < face.landmarks[1, 0]  # eye_left is the image-left one
        assert face.landmarks[3, 0] < face.landmarks[4, 0]


@needs_coco
def test_no_faces_in_photos_without_people(detector):
    """62 of the 67 coco128 photos without people get no face at the default threshold (food,
    animals, vehicles…); a few of them here."""
    for name in ["000000000025.jpg", "000000000030.jpg", "000000000042.jpg", "000000000072.jpg"]:
        assert detector.detect(photo(name)) == [], name


@needs_coco
def test_same_person_closer_than_different_people(detector, embedder):
    """The man in 000000000113 found in the whole photo and in a crop of it, rescaled, is one
    person; he and the woman beside him are two."""
    image = photo("000000000113.jpg")
    man, woman = sorted(detector.detect(image), key=lambda f: f.box[0])
    crop = image.crop((20, 20, 200, 260)).resize((270, 360), Image.Resampling.BICUBIC)
    (man_again,) = detector.detect(crop)
    a = embedder.embed(image, [man, woman])
    b = embedder.embed(crop, [man_again])[0]
    assert a[0] @ b > F.MATCH_COSINE > a[0] @ a[1]
    assert a[0] @ b > a[1] @ b
    assert F.similarity(a[:1], b[None])[0, 0] > F.similarity(a[:1], a[1:])[0, 0]


@needs_coco
def test_embeddings_are_normalised(detector, embedder):
    image = photo("000000000536.jpg")
    faces = detector.detect(image)
    d = embedder.embed(image, faces)
    assert d.shape == (len(faces), 128) and d.dtype == np.float32
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    assert embedder.embed(image, []).shape == (0, 128)


@needs_coco
def test_bad_input_is_handled(detector, embedder):
    assert detector.detect(Image.new("RGB", (1, 1))) == []
    assert detector.detect(Image.new("RGB", (7, 3), (128, 128, 128))) == []
    image = photo("000000000113.jpg")
    rgb = detector.detect(image)
    for mode in ("L", "RGBA", "P", "CMYK"):
        converted = detector.detect(image.convert(mode))
        assert len(converted) == len(rgb), mode
        assert embedder.embed(image.convert(mode), converted).shape == (len(rgb), 128)
    # a face at the photo's edge still aligns (the chip is padded by replication)
    edge = image.crop((70, 60, 300, 400))
    faces = detector.detect(edge)
    assert embedder.embed(edge, faces).shape == (len(faces), 128)


@needs_coco
def test_quality_and_pose(detector):
    image = photo("000000000113.jpg")
    face = detector.detect(image)[0]
    q = F.quality(image, face)
    assert 0 <= q["brightness"] <= 100 and 0 <= q["sharpness"] <= 100
    blurred = image.filter(ImageFilter.GaussianBlur(4))
    assert F.quality(blurred, face)["sharpness"] < q["sharpness"] - 20
    darker = image.point(lambda v: v // 3)
    assert F.quality(darker, face)["brightness"] < q["brightness"] / 2
    p = F.pose(face)
    assert set(p) == {"roll", "yaw", "pitch"}
    assert all(-90 <= v <= 90 for v in p.values())
    assert face.mesh is not None and face.mesh.shape == (468, 3) and face.presence > 0.5


@needs_coco
def test_pose_follows_rotation_and_mirroring(detector):
    """Rotating a face by ±20° shows in the roll; mirroring it flips the sign of the yaw
    (measured on 5 coco128 faces: roll changes of 18.6–20.7° for 20° rotations of faces within
    ±5° of level, yaw within 3° of its mirror's negative — docs/faces-models.md)."""
    image = photo("000000000459.jpg")
    before = F.pose(max(detector.detect(image), key=lambda f: f.width))
    for angle in (-20, 20):
        rotated = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        face = max(detector.detect(rotated), key=lambda f: f.width)
        # PIL turns counter-clockwise for a positive angle: the eye line's angle drops
        assert F.pose(face)["roll"] - before["roll"] == pytest.approx(-angle, abs=3)
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    after = F.pose(max(detector.detect(mirrored), key=lambda f: f.width))
    assert after["yaw"] == pytest.approx(-before["yaw"], abs=3)
    assert after["roll"] == pytest.approx(-before["roll"], abs=3)


def test_similarity_mapping():
    cos = np.array([0.5, F.MATCH_COSINE, F.SIMILARITY_80_COSINE, 0.99])
    s = F.similarity_from_cosine(cos)
    assert np.all(np.diff(s) > 0) and s.min() >= 0 and s.max() <= 100
    assert s[2] == pytest.approx(80, abs=0.01)


def test_versions_name_the_weights(detector, embedder):
    assert detector.version.startswith("blazeface:") and "+" in detector.version
    assert embedder.version.startswith("dlib-resnet:") and len(embedder.version) == 24


@needs_coco
def test_without_mesh(embedder):
    """``mesh=False``: BlazeFace's keypoints, estimated mouth corners, no presence."""
    plain = F.FaceDetector(threads=1, mesh=False)
    assert plain.threshold == F.NO_MESH_THRESHOLD and "mesh" not in plain.sessions
    image = photo("000000000113.jpg")
    faces = plain.detect(image)
    assert len(faces) == 2
    for face in faces:
        assert face.mesh is None and face.presence is None
        assert face.landmarks.shape == (5, 2)
        assert set(F.pose(face)) == {"roll", "yaw", "pitch"}
    d = embedder.embed(image, faces)
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)


@needs_coco
def test_a_second_box_on_one_face_is_dropped(detector):
    """Two boxes on one face that overlap too little for NMS give the same mesh: one is kept."""
    image = photo("000000000113.jpg")
    face = detector.detect(image)[0]
    x0, y0, x1, y1 = face.box
    shift = 0.35 * (x1 - x0)
    moved, _ = detector.run_mesh(image, (x0 + shift, y0, x1 + shift, y1), face.keypoints)
    other = detector.detect(image)[1]
    assert F._same_mesh(face.mesh, moved)
    assert not F._same_mesh(face.mesh, other.mesh)
    assert not F._same_mesh(face.mesh, None)
