"""One contract suite, every index backend: the ``index_factory`` fixture is parametrized over
them, and each test gets fresh, empty indexes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pixdex.indexes.base import Index

#: "sqlite-memory": SQLite answering label and text searches from its in-memory copy of the
#: labels, as ``pixdex serve`` does (``indexes.sqlite_memory``)
BACKENDS = ["sqlite", "sqlite-memory", "elasticsearch", "opensearch"]


@pytest.fixture(params=BACKENDS)
def index_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Index]]:
    created: list[Index] = []

    def make() -> Index:
        name = f"pixdex-test-{uuid.uuid4().hex[:12]}"
        if request.param.startswith("sqlite"):
            from pixdex.indexes.sqlite import SqliteIndex

            memory = request.param == "sqlite-memory"
            index: Index = SqliteIndex(tmp_path / f"{name}.db", memory_search=memory)
        else:
            from pixdex.config import load_settings
            from pixdex.integrations.elastic import ElasticIndex

            url = request.getfixturevalue(f"{request.param}_url")  # http://127.0.0.1:PORT
            scheme = "es" if request.param == "elasticsearch" else "opensearch"
            settings = load_settings(elastic={"refresh": "true"})
            index = ElasticIndex.from_url(f"{scheme}+{url}/{name}", settings)
        created.append(index)
        return index

    yield make
    for index in created:
        drop = getattr(index, "drop", None)
        if drop is not None:
            drop()
        index.close()


@pytest.fixture
def index(index_factory: Callable[[], Index]) -> Index:
    return index_factory()
