"""Tools beyond Python that integration tests need, and what happens when one is missing.

Locally a test whose tool is missing is skipped with one line saying what to install; under
``scripts/test`` (and so CI), which installs them all, ``PIXDEX_TEST_ALL=1`` makes that a
failure instead: a suite that passes by skipping half of itself would prove nothing.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: tool → how to get it
INSTALL = {
    "java": "Java 17: apt-get install openjdk-17-jre-headless",
    "mvn": "Maven: apt-get install maven",
    "go": "Go >= 1.24 (builds MinIO), or MINIO_BIN",
    "chromium": "Chromium: apt-get install chromium",
    "qemu-x86_64": "qemu-user: apt-get install qemu-user",
}


def everything_required() -> bool:
    return os.environ.get("PIXDEX_TEST_ALL") == "1"


def missing(reason: str) -> None:
    """Skip (locally) or fail (``scripts/test``) the current test for ``reason``."""
    if everything_required():
        pytest.fail(f"{reason} (scripts/test installs it)")
    pytest.skip(reason)


def require(*tools: str) -> None:
    """``missing`` unless every tool is on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            missing(f"needs {INSTALL.get(tool, tool)}")
