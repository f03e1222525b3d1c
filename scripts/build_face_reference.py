#!/usr/bin/env python3
"""Reference outputs of pixdex's face models from their ORIGINAL runtimes.

    .venv/bin/python scripts/build_face_reference.py   # → tests/data/face_reference.json

- Detectors: for a few coco128 photos with people, pixdex letterboxes the whole photo
  (``FaceDetector.preprocess``, 192 px for full range, 128 px for short range) and the
  TensorFlow Lite interpreter runs MediaPipe's ``face_detection_full_range.tflite`` /
  ``face_detection_short_range.tflite`` (from the pinned wheels) on exactly that tensor;
  pixdex's own decoding turns the raw outputs into faces. The fixture keeps the largest raw
  logits (anchor, logit) — held to the ONNX graphs — and the decoded faces (box, score,
  keypoints) — held to pixdex's decoding of the ONNX outputs.
- Face Mesh: for every face found, pixdex cuts its 192 px crop (``faces.mesh_crop``) and the
  interpreter runs MediaPipe's ``face_landmark.tflite`` on it: the presence logit and every
  13th landmark coordinate are kept.
- Descriptor: each of those faces is aligned by pixdex (``faces.align``) into a 150 px chip, and
  face-api's own ``FaceRecognitionNet`` (TF.js 4.22.0, WebAssembly backend, in Node) computes its
  128-d descriptor — held to the rebuilt ONNX ResNet. The chips' sha256 are kept too, so a test
  can tell an alignment change from a network change.

Needs ``node``/``npm`` (TF.js is installed into the dev cache as by
``scripts/build_detector_reference.py``), the packages of ``scripts/build_faces.py`` and
``../shared/data/coco128``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "src"))

import build_detector_reference  # noqa: E402  (TF.js in the dev cache)
import build_faces  # noqa: E402

from pixdex.imaging import decode  # noqa: E402
from pixdex.models.faces import (  # noqa: E402
    FULL_RANGE,
    MESH_SIZE,
    SHORT_RANGE,
    FaceDetector,
    align,
    mesh_crop,
)

FIXTURE = REPO / "tests" / "data" / "face_reference.json"
RUNNER = REPO / "scripts" / "tfjs" / "run_face_api.js"
COCO = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data" / "coco128"
#: photos with clearly visible faces of several sizes (checked by eye)
PHOTOS = [
    "000000000113.jpg",
    "000000000165.jpg",
    "000000000241.jpg",
    "000000000308.jpg",
    "000000000370.jpg",
    "000000000536.jpg",
]
TOP_RAW = 20
MIN_SCORE = 0.5

TFLITE = r"""
import json, sys
import numpy as np
import tensorflow as tf
job = json.loads(sys.argv[1])
it = tf.lite.Interpreter(model_path=job["model"])
it.allocate_tensors()
inp = it.get_input_details()[0]["index"]
outs = {d["name"]: d["index"] for d in it.get_output_details()}
names = job["names"]
for src, dst in job["pairs"]:
    x = np.load(src)
    it.set_tensor(inp, x)
    it.invoke()
    np.savez(dst, **{k: it.get_tensor(outs[v]) for k, v in names.items()})
print(f"tensorflow {tf.__version__} tflite interpreter: {len(job['pairs'])} input(s)")
"""


#: the tflite output names of each network
OUTPUTS = {
    "full": {"boxes": "reshaped_regressor_face_4", "scores": "reshaped_classifier_face_4"},
    "short": {"boxes": "regressors", "scores": "classificators"},
    "mesh": {"landmarks": "conv2d_21", "presence": "conv2d_31"},
}


def run_tflite(model: Path, net: str, tensors: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix="pixdex-tflite-") as tmp:
        pairs = []
        for i, t in enumerate(tensors):
            np.save(Path(tmp, f"in{i}.npy"), t[None].astype(np.float32))
            pairs.append([str(Path(tmp, f"in{i}.npy")), str(Path(tmp, f"out{i}.npz"))])
        python = build_faces.build_detectors.ensure_venv()
        job = json.dumps({"model": str(model), "pairs": pairs, "names": OUTPUTS[net]})
        subprocess.run([str(python), "-c", TFLITE, job], check=True)
        return [dict(np.load(dst)) for _, dst in pairs]


def run_face_api(package: Path, chips: list[np.ndarray]) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="pixdex-faceapi-") as tmp:
        args = []
        for i, chip in enumerate(chips):
            src, dst = Path(tmp, f"chip{i}.bin"), Path(tmp, f"desc{i}.bin")
            np.ascontiguousarray(chip, np.float32).tofile(src)
            args += [str(src), str(dst)]
        node_modules = build_detector_reference.tfjs_dir() / "node_modules"
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        subprocess.run(["node", str(RUNNER), str(package), *args], check=True, env=env)
        return [np.fromfile(Path(tmp, f"desc{i}.bin"), np.float32) for i in range(len(chips))]


def detector_reference(detector, net, tflite: Path, images) -> list[dict]:
    prepared = [detector.preprocess(img, net.size) for img in images]
    raw = run_tflite(tflite, net.key, [t for t, *_ in prepared])
    photos = []
    for name, (_, scale, px, py), out in zip(PHOTOS, prepared, raw, strict=True):
        logits = out["scores"][0, :, 0]
        top = np.argsort(-logits)[:TOP_RAW]
        scores, boxes, kps = detector.decode(out["boxes"][0], logits, MIN_SCORE, net.anchors)
        faces = []
        pad = np.array([px, py], np.float32)
        for i in build_faces_nms(boxes, scores):
            box = ((boxes[i].reshape(2, 2) - pad) / scale).reshape(-1)
            k = (kps[i] - pad) / scale
            faces.append(
                {
                    "score": round(float(scores[i]), 5),
                    "box": [round(float(v), 2) for v in box],
                    "keypoints": [[round(float(v), 2) for v in p] for p in k],
                }
            )
        photos.append(
            {
                "photo": name,
                "top_raw": [[int(a), round(float(logits[a]), 5)] for a in top],
                "faces": faces,
            }
        )
    return photos


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pixdex-face-ref-"))
    detector = FaceDetector(threads=1)
    images = [decode((COCO / "images" / name).read_bytes()).image for name in PHOTOS]
    fixture: dict = {
        "about": __doc__.split("\n\n")[0].strip()
        + " Regenerate with scripts/build_face_reference.py.",
        "detectors": {},
    }
    for key, net in (("detector", FULL_RANGE), ("short_detector", SHORT_RANGE)):
        spec = build_faces.MODELS[key]
        tflite = build_faces.fetch(spec["package"], work) / spec["model"]
        fixture["detectors"][net.key] = {
            "file": spec["output"],
            "runtime": "tensorflow-cpu 2.20.0 tf.lite.Interpreter",
            "size": net.size,
            "min_score": MIN_SCORE,
            "photos": detector_reference(detector, net, tflite, images),
        }

    # Face Mesh on the crops of the detections (pixdex's crop, TF Lite's network)
    found = [(name, img, f) for name, img in zip(PHOTOS, images, strict=True)
             for f in detector.detect(img)]  # fmt: skip
    crops = []
    for _, img, f in found:
        m, _ = mesh_crop(f.box, f.keypoints)
        crop = cv2.warpAffine(np.asarray(img), m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)  # fmt: skip
        crops.append(crop.astype(np.float32) / 255)
    spec = build_faces.MODELS["landmarks"]
    tflite = build_faces.fetch(spec["package"], work) / spec["model"]
    meshes = run_tflite(tflite, "mesh", crops)
    fixture["mesh"] = {
        "file": spec["output"],
        "runtime": "tensorflow-cpu 2.20.0 tf.lite.Interpreter",
        "faces": [
            {
                "photo": name,
                "box": [round(v, 2) for v in f.box],
                "crop_sha256": hashlib.sha256(crop.tobytes()).hexdigest(),
                "presence_logit": round(float(out["presence"].reshape(-1)[0]), 5),
                "landmarks": [round(float(v), 4) for v in out["landmarks"].reshape(-1)[::13]],
            }
            for (name, _, f), crop, out in zip(found, crops, meshes, strict=True)
        ],
        "landmarks_every": 13,
    }

    chips = [(name, f, align(img, f)) for name, img, f in found if f.width >= 24]
    face_api = build_faces.fetch(build_faces.FACE_API, work) / "package"
    descriptors = run_face_api(face_api, [c for *_, c in chips])
    fixture["descriptor"] = {
        "file": build_faces.MODELS["descriptor"]["output"],
        "runtime": build_detector_reference.TFJS + [build_faces.FACE_API["npm"]],
        "faces": [
            {
                "photo": name,
                "box": [round(v, 2) for v in face.box],
                "chip_sha256": hashlib.sha256(chip.tobytes()).hexdigest(),
                "descriptor": [round(float(v), 7) for v in d],
            }
            for (name, face, chip), d in zip(chips, descriptors, strict=True)
        ],
    }
    # the hand-checked coco128 face boxes (bench/eval_faces.py) live in the same file: keep them
    if FIXTURE.exists():
        old = json.loads(FIXTURE.read_text())
        if "coco128_faces" in old:
            fixture["coco128_faces"] = old["coco128_faces"]
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(REPO)}: {len(PHOTOS)} photos, {len(chips)} descriptors")
    return 0


def build_faces_nms(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    from pixdex.models.faces import NMS_IOU, nms

    return nms(boxes, scores, NMS_IOU)


if __name__ == "__main__":
    sys.exit(main())
