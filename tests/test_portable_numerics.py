"""The shipped models answer the same on every x86-64 CPU.

ONNX Runtime picks its kernels by what the CPU offers, and int8 ones differ most: without VNNI
(AVX2 only: AMD EPYC before Zen 4, older Intel) the default u8 x s8 kernels add pairs of
products in 16 bits and saturate — NanoDet's scores then moved by up to 0.1 on AMD machines. Here
the same outputs are computed twice, natively (this CPU, whatever it is) and as an AVX2-only CPU
(``qemu-x86_64 -cpu Haswell``: no AVX-512, no VNNI), and compared:

- int8 NanoDet: identical, bit for bit (``sessions.session_options`` asks for exact integer
  arithmetic on such CPUs, ``session.x64quantprecision``);
- float models (SSDLite, the classifier, the text detector): float kernels differ in the order
  they add, so within a few 1e-5 of each other;
- the opt-in int8 classifier: its float stages feed its int8 ones, so a float difference can
  move an activation across a rounding step: logits within the measured bound below.

Slow under emulation (a minute or two): in the full suite only; the fast tier skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tools import require

pytestmark = pytest.mark.integration

QEMU = shutil.which("qemu-x86_64")
REPO = Path(__file__).resolve().parents[1]

#: largest difference allowed between the two CPUs, per output (measured: see the module doc)
TOLERANCE = {
    "nanodet": 0.0,
    "ssdlite": 1e-4,
    "classifier": 1e-3,
    "text": 1e-4,
    "classifier_int8": 0.5,
}

_OUTPUTS = r"""
import sys
from pathlib import Path
import numpy as np
from pixdex.imaging import decode
from pixdex.models.classifier import Classifier
from pixdex.models.detectors import NanoDet, SsdLite
from pixdex.models.ocr import OcrEngine

out_file, cache, *photos = sys.argv[1:]
images = [decode(Path(p).read_bytes()).image for p in photos]
out = {}
nanodet, ssdlite = NanoDet(threads=1), SsdLite(threads=1)
for i, image in enumerate(images):
    x, _ = nanodet.preprocess(image)
    for name, value in nanodet.outputs(x[None]).items():
        out[f"nanodet|{i}|{name}"] = value
    for name, value in ssdlite.outputs(ssdlite.preprocess(image)[None]).items():
        out[f"ssdlite|{i}|{name}"] = value
for key, quantized in (("classifier", False), ("classifier_int8", True)):
    model = Classifier("efficientnet-lite0", cache_dir=cache, threads=1, quantized=quantized)
    out[key] = model.predict(np.stack([model.preprocess(im) for im in images]))
ocr = OcrEngine(threads=1)
view = ocr.detector_view(images[0])
out["text|0"] = ocr._run_det(ocr._normalise(view))
np.savez(out_file, **out)
"""


def outputs(tmp: Path, photos: list[Path], cache: Path, prefix: list[str]) -> dict[str, np.ndarray]:
    target = tmp / f"{'native' if not prefix else 'avx2'}.npz"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _OUTPUTS, str(target), str(cache), *map(str, photos)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(target) as data:
        return {k: data[k] for k in data.files}


def test_every_model_answers_the_same_on_an_avx2_only_cpu(
    tmp_path: Path, coco_images: list[Path]
) -> None:
    require("qemu-x86_64")
    photos = [coco_images[i] for i in (0, 5, 11)]
    cache = tmp_path / "cache"  # one int8 classifier built once, used by both runs
    native = outputs(tmp_path, photos, cache, [])
    avx2 = outputs(tmp_path, photos, cache, [str(QEMU), "-cpu", "Haswell"])
    assert native.keys() == avx2.keys()
    for key in native:
        limit = TOLERANCE[key.split("|")[0]]
        worst = float(np.abs(native[key] - avx2[key]).max())
        assert worst <= limit, f"{key}: the two CPUs differ by {worst:.3g} (limit {limit:g})"
