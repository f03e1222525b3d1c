"""A small core and integrations as extras: what ``pip install pixdex`` brings, what the core
imports, and what a user who asks for an integration that is not installed is told."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "pixdex"
SAMPLES = REPO / "samples"
#: what only the integrations may need
CLIENTS = {"boto3", "botocore", "elasticsearch", "opensearch-py", "opensearchpy", "s3transfer"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _core_requirements(dist: str) -> list[str]:
    return [r for r in metadata.requires(dist) or [] if "extra ==" not in r]


def test_the_core_install_pulls_in_no_cloud_sdk_or_search_client() -> None:
    """pixdex's own requirements and theirs, all the way down, as installed here."""
    seen: set[str] = set()
    todo = [_name(r) for r in _core_requirements("pixdex")]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_name(r) for r in _core_requirements(name)]
        except metadata.PackageNotFoundError:
            continue  # an optional marker's package not installed here
    assert "onnxruntime" in seen and "fastapi" in seen  # the walk found the core
    assert not seen & CLIENTS, seen & CLIENTS
    extras = {r for r in metadata.requires("pixdex") or [] if "extra ==" in r}
    for extra, client in (("s3", "boto3"), ("elastic", "elasticsearch"), ("rekognition", "boto3")):
        assert any(_name(r) == client and f'extra == "{extra}"' in r for r in extras), extra


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "pixdex.integrations":
                names += [f"pixdex.integrations.{alias.name}" for alias in node.names]
    return names


def test_no_core_module_imports_an_integration() -> None:
    """The core reaches integrations through ``integrations.require``/``load`` only."""
    allowed = {"require", "load", "installed"}
    offenders = []
    for path in SRC.rglob("*.py"):
        if "integrations" in path.relative_to(SRC).parts:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            sub = name.removeprefix("pixdex.integrations.")
            if top in {"boto3", "botocore", "elasticsearch", "opensearchpy"} or (
                name.startswith("pixdex.integrations.") and sub not in allowed
            ):
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert offenders == []


_WITHOUT_EXTRAS = """
import sys
for name in ("boto3", "botocore", "elasticsearch", "opensearchpy", "s3transfer"):
    sys.modules[name] = None  # as if not installed: importing it raises ImportError
from pixdex.cli import run
sys.argv = ["pixdex", *sys.argv[1:]]
run()
"""


def without_extras(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIXDEX_INDEX": str(tmp / "index.db"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["index", "s3://photos/2024/"], "s3"),
        (["index", str(SAMPLES), "--index", "es+http://127.0.0.1:9200/photos"], "elastic"),
        (["search", "dog", "--index", "opensearch+https://search.example/photos"], "elastic"),
        (["index", str(SAMPLES), "--analyzer", "rekognition"], "rekognition"),
        (["worker", "--sqs-queue-url", "http://127.0.0.1:9324/queue/q"], "s3"),
    ],
)
def test_an_integration_that_is_not_installed_is_one_line_and_exit_2(
    args: list[str], extra: str, tmp_path: Path
) -> None:
    done = without_extras(*args, tmp=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"needs the {extra} extra: pip install 'pixdex[{extra}]'" in lines[0]


def test_the_core_alone_indexes_and_searches_a_folder(tmp_path: Path) -> None:
    done = without_extras("index", str(SAMPLES), "--quiet", "--no-objects", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "indexed (analyzed)  8" in done.stderr
    found = without_extras("search", "dog", "--json", tmp=tmp_path)
    assert found.returncode == 0, found.stderr
    assert '"000000000042.jpg"' in found.stdout


def test_the_api_answers_501_with_the_pip_command_for_a_missing_integration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server with only the core, holding a record of a photo in S3: asking for that photo
    is a 501 naming the extra, not a 500."""
    from _http import LocalClient

    from pixdex.api.app import create_app
    from pixdex.config import load_settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.records import Record

    index = SqliteIndex(tmp_path / "index.db")
    record = Record(bucket="photos", key="a.jpg", uri="s3://photos/a.jpg", format="JPEG")
    assert index.upsert([record]) == []
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    client = LocalClient(create_app(load_settings(index=index.location), index))
    answer = client.get(f"/api/images/{record.id}/file")
    assert answer.status_code == 501
    assert "pip install 'pixdex[s3]'" in answer.json()["message"]
    assert answer.json()["error"] == "not_installed"
