"""SQLite specifics: the layout comes from named migrations applied once each; files of a
pre-release or a newer pixdex are refused with one line; facets read a covering index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pixdex.errors import IndexUnavailable
from pixdex.indexes import sqlite_schema
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.migrations import Migrations
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Label, Record


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [n for (n,) in db.execute("SELECT name FROM pixdex_migrations ORDER BY rowid")]


def test_a_new_file_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    assert applied(path) == sqlite_schema.MIGRATIONS.names == ["m001_initial"]
    SqliteIndex(path).close()  # opening again changes nothing
    assert applied(path) == ["m001_initial"]


def test_a_later_migration_is_applied_to_an_existing_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index.db"
    index = SqliteIndex(path)
    index.upsert([Record(bucket="b", key="dog.jpg", Labels=[Label(Name="Dog", Confidence=90)])])
    index.close()
    later = Migrations("SQLite")
    for step in sqlite_schema.MIGRATIONS:
        later(step.apply)
    calls: list[int] = []

    @later
    def m002_example(db: sqlite3.Connection) -> None:
        calls.append(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        db.execute("CREATE INDEX records_fingerprint ON records (fingerprint)")

    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", later)
    index = SqliteIndex(path)
    assert [h.record.key for h in index.search(SearchQuery(text="dog")).hits] == ["dog.jpg"]
    index.close()
    SqliteIndex(path).close()
    assert calls == [1]  # applied once, to the file as it was
    assert applied(path) == ["m001_initial", "m002_example"]


def test_a_file_from_a_newer_pixdex_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO pixdex_migrations VALUES ('m099_future', 'later')")
    with pytest.raises(IndexUnavailable, match="newer pixdex .*m099_future.*upgrade pixdex"):
        SqliteIndex(path)


def test_a_file_from_a_pre_release_pixdex_is_refused_with_how_to_rebuild_it(
    tmp_path: Path,
) -> None:
    """Before the first release, files carried a ``meta.schema_version`` and no migrations."""
    path = tmp_path / "index.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
        db.execute("CREATE TABLE records (rid INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    with pytest.raises(IndexUnavailable, match="pre-release pixdex.*rebuild it"):
        SqliteIndex(path)
    with sqlite3.connect(path) as db:  # and left as it was
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "records"}


def test_facets_count_from_the_covering_index(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.db")
    records = [
        Record(
            bucket="b",
            key=f"{i}.jpg",
            Labels=[Label(Name="Dog", Confidence=90), Label(Name="Cat", Confidence=40 + i)],
        )
        for i in range(30)
    ]
    assert index.upsert(records) == []
    try:
        result = index.search(SearchQuery(min_confidence=55, facets=50))
        assert dict(result.facets) == {"Dog": 30, "Cat": 15}
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


def test_schema_comments_may_hold_semicolons() -> None:
    script = "CREATE TABLE a (x INT); -- one; two\nCREATE TABLE b (y INT) -- why; not\n;"
    assert [s.strip() for s in sqlite_schema._statements(script)] == [
        "CREATE TABLE a (x INT)",
        "CREATE TABLE b (y INT)",
    ]
