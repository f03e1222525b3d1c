"""pixdex keeps ONNX Runtime's usage telemetry off: a self-hosted photo index must not collect
facts about the machine for a third party (ONNX Runtime 1.32 on Linux queues device id, OS, CPU,
memory and process name in ``~/.cache/Microsoft/DeveloperTools`` for upload)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "src" / "pixdex" / "models" / "detectors" / "nanodet_g_coco_int8.onnx"


def _telemetry_files(home: Path, code: str, **env: str) -> list[Path]:
    """Run ``code`` with ``home`` as HOME; the files ONNX Runtime's telemetry left there."""
    environ = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    environ.update(HOME=str(home), **env)
    subprocess.run([sys.executable, "-c", code], check=True, env=environ, timeout=120)
    return sorted(p for p in (home / ".cache" / "Microsoft").rglob("*") if p.is_file())


RUN = (
    "import numpy as np\n"
    "s = ort.InferenceSession({model!r}, providers=['CPUExecutionProvider'])\n"
    "s.run(None, {{'image': np.zeros((1, 3, 416, 416), np.float32)}})\n"
)


def test_onnx_runtime_telemetry_stays_off(tmp_path: Path) -> None:
    plain = _telemetry_files(
        tmp_path / "plain", "import onnxruntime as ort\n" + RUN.format(model=str(MODEL))
    )
    if not plain:
        pytest.skip("this onnxruntime writes no telemetry: nothing to keep off")
    # through pixdex: its package sets ORT_DISABLE_TELEMETRY before anything imports onnxruntime
    ours = _telemetry_files(
        tmp_path / "pixdex",
        "import pixdex.models.sessions\nimport onnxruntime as ort\n" + RUN.format(model=str(MODEL)),
    )
    assert ours == [], ours
    # a user who wants it can still opt in
    opted = _telemetry_files(
        tmp_path / "opted",
        "import pixdex.models.sessions\nimport onnxruntime as ort\n" + RUN.format(model=str(MODEL)),
        ORT_DISABLE_TELEMETRY="0",
    )
    assert opted, "ORT_DISABLE_TELEMETRY=0 should leave the choice to ONNX Runtime"
