"""Build an ONNX model once and keep it in the user's cache directory.

The file name carries the weights' sha256 and the builder version, so new weights or a changed
graph builder never reuse a stale file. Files are written to a temporary name in the same
directory and renamed into place: concurrent first runs (several workers, several processes)
each build, and the last rename wins with an identical, complete file; nobody ever reads a
half-written model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx

from pixdex.config import default_cache_dir


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def models_dir(cache_dir: Path | None) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "models"


def cached_model(
    path: Path, build: Callable[[], onnx.ModelProto | bytes], *, rebuild: bool = False
) -> Path:
    """``path`` if it exists (and ``rebuild`` is false), else ``build()`` written atomically."""
    if path.is_file() and not rebuild:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build()
    data = model if isinstance(model, bytes) else model.SerializeToString()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared by several users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
