"""SQLite specifics: a file written by an earlier pixdex is upgraded in place when opened.

``tests/data/sqlite-index-v1.db`` was written by pixdex at commit 60172d1 (schema 1: no
``label_phrases``, ``label_fts`` without the other number of each term's last word) with four
records: Dog 70, Hot Dog 95 (alias Hotdog), Person 60 (aliases Human, People, Child, Kid, Man,
Woman), Traffic Light 80.

``tests/data/sqlite-index-v2.db`` was written by pixdex at commit a163da6 (schema 2: no
``text_fts``) with four records as the Rekognition analyzer with DetectText and the local label
analyzer stored them: signs/stop.jpg (Stop Sign 96.9; text "STOP"), street/corner.jpg (Road 90;
text "GREENWICH ST", "VESEY ST"), dog.jpg (Dog 95; DetectText read nothing) and bread.jpg (Bread
90; no text analyzer ran).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pixdex.indexes.base import IndexUnavailable, SearchQuery
from pixdex.indexes.sqlite import SCHEMA_VERSION, SqliteIndex
from pixdex.records import Record

V1 = Path(__file__).parent / "data" / "sqlite-index-v1.db"
V2 = Path(__file__).parent / "data" / "sqlite-index-v2.db"


def keys(index: SqliteIndex, text: str) -> list[str]:
    return [h.record.key for h in index.search(SearchQuery(text=text)).hits]


def schema(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def test_a_version_1_file_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    shutil.copy(V1, path)
    assert schema(path) == "1"
    with sqlite3.connect(path) as db:
        before = {key: doc for key, doc in db.execute("SELECT key, doc FROM records")}
    index = SqliteIndex(path)
    try:
        assert schema(path) == SCHEMA_VERSION == "3"
        # the new semantics on the old records, without re-analyzing anything
        assert keys(index, "dog") == ["dog.jpg", "hotdog.jpg"]
        assert keys(index, "hot dog") == ["hotdog.jpg"]
        for word in ("people", "children", "men", "women", "kids"):
            assert keys(index, word) == ["kids.jpg"], word
        assert keys(index, "traffic lights") == ["street/lights.jpg"]
        # the records themselves are untouched
        for key, doc in before.items():
            stored = index.get("photos", key)
            assert stored is not None
            assert stored.to_json() == Record.model_validate_json(doc).to_json()
        assert index.stats().records == 4
    finally:
        index.close()
    # opening again changes nothing
    index = SqliteIndex(path)
    assert keys(index, "children") == ["kids.jpg"]
    index.close()


def test_a_version_2_file_gets_its_stored_text_searchable_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    shutil.copy(V2, path)
    assert schema(path) == "2"
    with sqlite3.connect(path) as db:
        before = {key: doc for key, doc in db.execute("SELECT key, doc FROM records")}
    index = SqliteIndex(path)
    try:
        assert schema(path) == SCHEMA_VERSION == "3"
        # the text Rekognition read, found like the local analyzer's: below label matches
        assert keys(index, "vesey") == ["street/corner.jpg"]
        assert keys(index, "greenwich st") == ["street/corner.jpg"]
        assert keys(index, "stop") == ["signs/stop.jpg"]
        assert [h.score for h in index.search(SearchQuery(text="vesey")).hits] == [0.0]
        assert keys(index, "dog") == ["dog.jpg"] and keys(index, "bread") == ["bread.jpg"]
        for key, doc in before.items():  # the records themselves are untouched
            stored = index.get("photos", key)
            assert stored is not None
            assert stored.to_json() == Record.model_validate_json(doc).to_json()
        # later writes keep text and records in step: an update drops the old text
        stop = index.get("photos", "signs/stop.jpg")
        assert index.upsert([stop.model_copy(update={"TextDetections": []})]) == []
        assert keys(index, "stop") == ["signs/stop.jpg"]  # still its label, Stop Sign
        assert index.search(SearchQuery(text="stop")).hits[0].score == 96.9
        assert index.delete("photos", ["street/corner.jpg"]) == 1
        assert keys(index, "vesey") == []
    finally:
        index.close()
    index = SqliteIndex(path)  # opening again changes nothing
    assert schema(path) == "3" and keys(index, "greenwich") == []
    index.close()


def test_an_older_file_gets_the_facet_index_once_and_facets_count_from_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "index.db"
    shutil.copy(V2, path)
    with caplog.at_level("WARNING", logger="pixdex.indexes.sqlite"):
        index = SqliteIndex(path)
    assert "indexing" in caplog.text and "faster facets" in caplog.text
    try:
        result = index.search(SearchQuery(min_confidence=55, facets=50))
        expected: dict[str, int] = {}
        for hit in index.search(SearchQuery(min_confidence=0, limit=100, facets=0)).hits:
            for name in {lb.Name for lb in hit.record.Labels if lb.Confidence >= 55}:
                expected[name] = expected.get(name, 0) + 1
        assert dict(result.facets) == expected and expected
        # the facets' counting reads the covering index alone, never the table
        plan = " ".join(
            row[-1]
            for row in index._db.execute(  # noqa: SLF001 - the plan of the facets' query shape
                "EXPLAIN QUERY PLAN SELECT lt.name, COUNT(DISTINCT lt.rid) FROM label_terms lt"
                " WHERE lt.name IS NOT NULL AND lt.confidence >= 55"
                " AND lt.rid IN (SELECT rid FROM records) GROUP BY lt.name"
            )
        )
        assert "COVERING INDEX label_terms_named_rid" in plan, plan
    finally:
        index.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="pixdex.indexes.sqlite"):
        SqliteIndex(path).close()  # built once: nothing to say the second time
    assert "faster facets" not in caplog.text


def test_a_file_from_a_newer_pixdex_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    shutil.copy(V1, path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexUnavailable, match="schema 99, newer than this pixdex"):
        SqliteIndex(path)
    assert schema(path) == "99"


def test_schema_comments_may_hold_semicolons() -> None:
    from pixdex.indexes.sqlite import _statements

    script = "CREATE TABLE a (x INT); -- one; two\nCREATE TABLE b (y INT) -- why; not\n;"
    assert [s.strip() for s in _statements(script)] == [
        "CREATE TABLE a (x INT)",
        "CREATE TABLE b (y INT)",
    ]
