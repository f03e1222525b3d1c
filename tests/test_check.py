"""``pixdex check``: the fsck of an index — on SQLite files indexed from real photos.

The damage here is what a write that failed half-way left before each record had its own
savepoint: a record in ``records`` and ``label_terms`` but missing from ``label_fts`` and
``label_phrases`` (``--label`` found the photo, free text did not, and ``known()`` made the next
run skip it as unchanged), and other rows a crash or a hand edit can leave."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from _faults import agreement
from typer.testing import CliRunner

from pixdex.cli import app
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.sqlite import SqliteIndex

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TERMS = ["dog", "person", "animal", "car", "pizza"]
DOG = "000000000042.jpg"  # a dog photo among the samples


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("check") / "index.db"
    result = run("index", str(REPO / "samples"), "--index", str(db), "--quiet")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def db(indexed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index.db"
    for suffix in ("", "-wal", "-shm"):  # WAL mode: the last writes may be in the -wal file
        if Path(f"{indexed}{suffix}").exists():
            shutil.copy(f"{indexed}{suffix}", f"{copy}{suffix}")
    return copy


def half_write(db: Path, key: str) -> None:
    """The state the missing savepoint left: label terms written, their free-text rows not."""
    with sqlite3.connect(db) as conn:
        (rid,) = conn.execute("SELECT rid FROM records WHERE key = ?", (key,)).fetchone()
        conn.execute(
            "DELETE FROM label_fts WHERE rowid IN (SELECT tid FROM label_terms WHERE rid = ?)",
            (rid,),
        )
        conn.execute("DELETE FROM label_phrases WHERE rid = ?", (rid,))


def keys(index: SqliteIndex, query: SearchQuery) -> list[str]:
    return [h.record.key for h in index.search(query).hits]


def records(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        return [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM records")]


def test_a_clean_index_checks_clean(db: Path) -> None:
    result = run("check", "--index", str(db))
    assert result.exit_code == 0, result.output
    assert "checked 8 record(s)" in result.stderr and "clean" in result.stderr
    assert result.stdout == ""


def test_the_half_written_record_is_reported_and_repair_mends_it(db: Path) -> None:
    half_write(db, DOG)
    index = SqliteIndex(db)
    assert DOG in keys(index, SearchQuery(labels=("dog",)))
    assert DOG not in keys(index, SearchQuery(text="dog"))  # the bug as users met it
    index.close()

    result = run("check", "--index", str(db))
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert DOG in line and "free-text index (label_fts)" in line
    assert "label_phrases" in line
    assert "1 problem(s)" in result.stderr and "--repair" in result.stderr

    result = run("check", "--index", str(db), "--repair")
    assert result.exit_code == 0, result.output
    assert "repaired 1 record(s)" in result.stderr and "now clean" in result.stderr
    index = SqliteIndex(db)
    assert DOG in keys(index, SearchQuery(text="dog"))
    agreement(index, records(db), TERMS)
    index.close()
    assert run("check", "--index", str(db)).exit_code == 0


def test_every_kind_of_damage_is_found_and_mended(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        rids = [r for (r,) in conn.execute("SELECT rid FROM records ORDER BY rid")]
        conn.execute("DELETE FROM label_terms WHERE rid = ? AND name IS NOT NULL", (rids[0],))
        conn.execute("UPDATE label_terms SET confidence = 1 WHERE rid = ?", (rids[1],))
        conn.execute("DELETE FROM path_fts WHERE rowid = ?", (rids[2],))
        conn.execute("UPDATE records SET fingerprint = 'stale' WHERE rid = ?", (rids[3],))
        conn.execute("INSERT INTO label_phrases VALUES (999999, 'ghost', 50)")  # an orphan
        conn.execute("UPDATE records SET doc = '{\"broken' WHERE rid = ?", (rids[4],))
        (lost,) = conn.execute("SELECT key FROM records WHERE rid = ?", (rids[4],)).fetchone()
    report = SqliteIndex(db).check()
    # six records and rows damaged, and the label_fts rows of the deleted label terms orphaned
    assert len(report.problems) == 7, report.problems
    assert any("unreadable document" in p for p in report.problems)
    assert any("columns disagree with its document (fingerprint)" in p for p in report.problems)
    orphaned = [p.rsplit(": ", 1)[1] for p in report.problems if "no longer exist" in p]
    assert orphaned == [
        "label_phrases holds rows of records that no longer exist",
        "label_fts holds rows of records that no longer exist",
    ]

    index = SqliteIndex(db)
    mended = index.check(repair=True)
    assert (mended.repaired, mended.reanalyze) == (4, 1)
    assert index.check().clean
    agreement(index, records(db), TERMS)
    # the unreadable one is a failure now, and the next run analyzes it again
    assert [f.key for f in index.failures()] == [lost]
    index.close()
    result = run("index", str(REPO / "samples"), "--index", str(db), "--quiet")
    assert result.exit_code == 0, result.output
    assert "indexed (analyzed)  1" in result.stderr
    assert run("check", "--index", str(db)).exit_code == 0


def test_check_of_a_missing_index_is_one_line_and_exit_3(tmp_path: Path) -> None:
    result = run("check", "--index", str(tmp_path / "none.db"))
    assert result.exit_code == 3
    assert "no index at" in result.stderr


def test_check_json(db: Path) -> None:
    half_write(db, DOG)
    result = run("check", "--index", str(db), "--json", "--repair")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["clean"] is False and payload["repaired"] == 1 and payload["remaining"] == []
