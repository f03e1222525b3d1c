"""SQLite specifics: a file written by an earlier pixdex is upgraded in place when opened.

``tests/data/sqlite-index-v1.db`` was written by pixdex at commit 60172d1 (schema 1: no
``label_phrases``, ``label_fts`` without the other number of each term's last word) with four
records: Dog 70, Hot Dog 95 (alias Hotdog), Person 60 (aliases Human, People, Child, Kid, Man,
Woman), Traffic Light 80.
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
        assert schema(path) == SCHEMA_VERSION == "2"
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


def test_a_file_from_a_newer_pixdex_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    shutil.copy(V1, path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexUnavailable, match="schema 99, newer than this pixdex"):
        SqliteIndex(path)
    assert schema(path) == "99"
