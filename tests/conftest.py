"""Shared fixtures: the real data beside the repo, and real servers (loaded as plugins)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))

# Fixtures that fetch, start and stop real servers (Elasticsearch/OpenSearch, MinIO) live in their
# own modules beside this file.
pytest_plugins = [
    name
    for name in ("_servers", "_minio", "_rekognition_servers")
    if (REPO / "tests" / f"{name}.py").exists()
]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED} (set PIXDEX_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def coco_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "coco128"


@pytest.fixture(scope="session")
def coco_images(coco_dir: Path) -> list[Path]:
    return sorted((coco_dir / "images").glob("*.jpg"))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never read the developer's own config or write into their index; keep the model cache."""
    home = tmp_path_factory.getbasetemp() / "config"
    monkeypatch.setenv("PIXDEX_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("PIXDEX_INDEX", str(tmp_path_factory.getbasetemp() / "default-index.db"))


#: fixtures that start or need something beyond Python and ../shared: a server (MinIO,
#: Elasticsearch, OpenSearch, ElasticMQ, moto), Chromium, or root
INTEGRATION_FIXTURES = frozenset(
    {
        "minio", "minio_bin", "s3_env", "bucket", "elasticmq", "sqs_queue",
        "elasticsearch_server", "elasticsearch_url", "opensearch_server", "opensearch_url",
        "server_url", "server", "moto_server", "moto_bucket", "aws_bin", "pixdex_serve",
        "browser_page", "gallery", "text_gallery", "token_server", "small_disk",
    }
)  # fmt: skip
#: index backends of the contract suite that are servers
SERVER_BACKENDS = ("elasticsearch", "opensearch")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the integration tests (``-m "not integration"`` is the fast tier,
    ``scripts/test --fast``): by the fixtures they use, and the contract suite's server
    backends by their parameter."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        server = params.get("index_factory") in SERVER_BACKENDS
        if names & INTEGRATION_FIXTURES or server:
            item.add_marker(pytest.mark.integration)
