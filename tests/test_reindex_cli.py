"""`pixdex reindex --reanalyze` after a "model upgrade", on a real Elasticsearch: every record gets
the new analyzers' output in a new index, the alias moves, nothing is lost."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from typer.testing import CliRunner

from pixdex.cli import app
from pixdex.indexes.base import SearchQuery
from pixdex.integrations.elastic import ElasticIndex

runner = CliRunner()
PHOTOS = ["000000000034.jpg", "000000000036.jpg", "000000000030.jpg"]  # zebra, person, vase


def run(*args: str):
    env = {"COLUMNS": "200", "PIXDEX_ELASTIC__REFRESH": "true"}
    return runner.invoke(app, list(args), catch_exceptions=False, env=env)


def test_reanalyze_swaps_in_a_fully_reanalyzed_index(
    elasticsearch_url: str, coco_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(coco_dir / "images" / name, folder / name)
    url = f"es+{elasticsearch_url}/reindex-{uuid.uuid4().hex[:8]}"

    # "old model": no object detector
    result = run("index", str(folder), "--index", url, "--no-objects", "--quiet")
    assert result.exit_code == 0, result.output
    index = ElasticIndex.from_url(url)
    try:
        before = index.search(SearchQuery(labels=["Person"])).total
        old_concrete = index.concrete
        assert before == 0

        result = run("reindex", "--index", url, "--reanalyze", "--objects")
        assert result.exit_code == 0, result.output
        assert "re-analyzed 3; kept 0" in result.stderr

        index.close()
        index = ElasticIndex.from_url(url)
        assert index.concrete != old_concrete
        hits = index.search(SearchQuery(labels=["Person"])).hits
        assert [h.record.key for h in hits] == ["000000000036.jpg"]
        assert index.search(SearchQuery(labels=["Zebra"])).hits[0].record.key == PHOTOS[0]
        for name in PHOTOS:
            record = index.get(str(folder.resolve()), name)
            assert record is not None and "objects" in record.analyzers

        # The photos are gone from disk: reindexing keeps the old records, says so, exit 1.
        shutil.rmtree(folder)
        result = run("reindex", "--index", url, "--reanalyze", "--no-objects")
        assert result.exit_code == 1, result.output
        assert "kept 3 old record(s)" in result.stderr
        index.close()
        index = ElasticIndex.from_url(url)
        assert index.search(SearchQuery(labels=["Person"])).total == 1
    finally:
        index.drop()
        index.close()


def test_reindex_refuses_sqlite(tmp_path: Path) -> None:
    result = run("reindex", "--index", str(tmp_path / "i.db"))
    assert result.exit_code == 2
    assert "es+" in result.stderr
