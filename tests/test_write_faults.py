"""Every write whole or absent, under a fault at each of its steps in turn.

Each test runs a write once without a fault to count its steps (SQL statements for SQLite), then
once per step with that step failing, and checks after each: every record is entirely its old
version or entirely its new one (or absent), the ones reported as not written are exactly the
old ones, the index's own check is clean, and label, free-text, facet and in-memory searches
agree with the stored records (``_faults.agreement``). A half-written record (its label terms
written, its free-text rows not) is what a missing savepoint leaves; these tests find it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _faults import InjectedFault, agreement, faults_in, stored

from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Record

BUCKET = "/photos"
KEYS = ["a/0001.jpg", "a/0002.jpg", "b/0003.jpg"]
TERMS = ["dog", "animal", "cat", "pet", "stop", "tree", "plant"]


def record(key: str, *labels: tuple[str, float, list[str]], text: str | None = None) -> Record:
    fields: dict = {
        "bucket": BUCKET,
        "key": key,
        "Labels": [
            {"Name": name, "Confidence": conf, "Parents": [{"Name": p} for p in parents]}
            for name, conf, parents in labels
        ],
        "analyzers": {"test": "1"},
        "fingerprint": f"fp-{key}",
    }
    if text is not None:
        box = {"Width": 0.1, "Height": 0.1, "Left": 0.1, "Top": 0.1}
        fields["TextDetections"] = [
            {
                "DetectedText": text,
                "Type": "LINE",
                "Id": 0,
                "Confidence": 99.0,
                "Geometry": {"BoundingBox": box, "Polygon": []},
            }
        ]
    return Record(**fields)


OLD = [record(k, ("Dog", 90.0, ["Animal", "Pet"])) for k in KEYS]
NEW = [
    record(KEYS[0], ("Cat", 80.0, ["Animal", "Pet"]), text="STOP"),
    record(KEYS[1], ("Tree", 70.0, ["Plant"])),
    OLD[2],  # unchanged, written again
    record("c/0004.jpg", ("Cat", 60.0, ["Animal"]), ("Tree", 55.0, ["Plant"])),
]
ALL_KEYS = KEYS + ["c/0004.jpg"]


def fresh(path: Path, memory: bool = False) -> SqliteIndex:
    index = SqliteIndex(path, memory_search=memory)
    assert index.upsert(OLD) == []
    return index


def steps(tmp_path: Path, write) -> int:
    """How many write steps ``write(index)`` takes with no fault."""
    index = fresh(tmp_path / "count.db")
    with faults_in(index, None) as conn:
        write(index)
    index.close()
    assert conn.writes > 5
    return conn.writes


def test_an_upsert_is_whole_or_absent_per_record_at_every_step(tmp_path: Path) -> None:
    def write(index: SqliteIndex) -> set[str]:
        try:
            return {e.key for e in index.upsert(NEW)}
        except sqlite3.Error:  # BEGIN or COMMIT failed: the whole batch is not written
            return {r.key for r in NEW}

    total = steps(tmp_path, write)
    old = {r.key: r.to_json() for r in OLD}
    new = {r.key: r.to_json() for r in NEW}
    for step in range(1, total + 1):
        index = fresh(tmp_path / f"upsert-{step}.db", memory=True)
        with faults_in(index, step) as conn:
            failed = write(index)
        assert conn.fired, step
        now = stored(index, BUCKET, ALL_KEYS)
        for key in ALL_KEYS:
            if key in failed and key != KEYS[2]:  # KEYS[2]'s new version equals its old
                assert now[key] == old.get(key), (step, conn.fired, key)
            else:
                assert now[key] == new[key], (step, conn.fired, key)
        agreement(index, [doc for doc in now.values() if doc], TERMS)
        assert index.memory_ready(30)  # the in-memory copy of pixdex serve agrees as well
        agreement(index, [doc for doc in now.values() if doc], TERMS)
        # what failed is written by the next attempt, and then everything agrees
        assert index.upsert([r for r in NEW if r.key in failed]) == []
        assert stored(index, BUCKET, ALL_KEYS) == new
        agreement(index, NEW, TERMS)
        index.close()


def test_a_delete_is_whole_or_absent_at_every_step(tmp_path: Path) -> None:
    def write(index: SqliteIndex) -> bool:
        try:
            index.delete(BUCKET, KEYS[:2])
        except sqlite3.Error:
            return False
        return True

    total = steps(tmp_path, write)
    for step in range(1, total + 1):
        index = fresh(tmp_path / f"delete-{step}.db")
        with faults_in(index, step):
            deleted = write(index)
        now = stored(index, BUCKET, KEYS)
        assert deleted is False, step  # one transaction: any failed step fails the delete
        assert now == {r.key: r.to_json() for r in OLD}
        agreement(index, OLD, TERMS)
        index.close()


def test_a_failed_commit_is_rolled_back_and_the_next_batch_is_not_swept_into_it(
    tmp_path: Path,
) -> None:
    """A COMMIT that fails must end its transaction: else the next batch would be written
    into it and committed together with what was reported as not written."""
    index = fresh(tmp_path / "commit.db")
    total = steps(tmp_path, lambda ix: ix.upsert(NEW[:1]))
    with faults_in(index, total), pytest.raises(InjectedFault, match="COMMIT"):
        index.upsert(NEW[:1])
    assert not index._db.in_transaction
    assert index.upsert(NEW[1:2]) == []
    now = stored(index, BUCKET, KEYS)
    assert now[KEYS[0]] == OLD[0].to_json()  # reported as not written: still the old one
    assert now[KEYS[1]] == NEW[1].to_json()
    agreement(index, [doc for doc in now.values() if doc], TERMS)


def test_failures_are_recorded_whole_or_not_at_all(tmp_path: Path) -> None:
    from pixdex.records import Failure

    failures = [Failure(bucket=BUCKET, key=f"bad/{i}.jpg", reason="truncated") for i in range(3)]
    index = fresh(tmp_path / "failures.db")
    with faults_in(index, 2), pytest.raises(InjectedFault):
        index.record_failures(failures)
    assert index.failures() == []
    index.record_failures(failures)
    assert [f.key for f in index.failures()] == [f.key for f in failures]


def test_a_fault_while_the_in_memory_copy_catches_up_never_leaves_it_half_updated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pixdex serve's copy of the labels fails half-way through taking in a write: that search is
    answered in SQL, and the next one from a copy loaded whole again — never from a copy that
    holds the new records without their labels."""
    from pixdex.indexes import sqlite_memory

    index = fresh(tmp_path / "memory.db", memory=True)
    assert index.memory_ready(30)
    memory = index._memory
    assert memory is not None
    real = sqlite_memory.MemorySearch._reindex
    calls = {"n": 0}

    def fails_once(self: sqlite_memory.MemorySearch) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("injected while catching up")
        real(self)

    monkeypatch.setattr(sqlite_memory.MemorySearch, "_reindex", fails_once)
    assert index.upsert(NEW) == []
    before = memory.searches
    agreement(index, NEW, TERMS)  # the first of these searches met the fault
    assert calls["n"] >= 2 and memory.searches > before
    # the copy itself answers again, exactly as SQL does
    from pixdex.indexes.base import SearchQuery

    for term in TERMS:
        query = SearchQuery(text=term, facets=20)
        assert memory.search(query) == index._search_sql(query), term


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_a_model_cache_write_that_fails_leaves_no_file_and_the_next_run_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    import os

    from pixdex.models import cache

    target = tmp_path / "models" / "m.onnx"
    payload = b"x" * 100_000

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device (injected)")

    with monkeypatch.context() as patch:
        if step == "write":
            real_fdopen = os.fdopen

            def fdopen(fd, *args, **kwargs):
                fh = real_fdopen(fd, *args, **kwargs)
                patch.setattr(fh, "write", fail)
                return fh

            patch.setattr(cache.os, "fdopen", fdopen)
        else:
            patch.setattr(cache.os, step, fail)
        with pytest.raises(OSError, match="injected"):
            cache.cached_model(target, lambda: payload)
    assert list(target.parent.iterdir()) == []  # no model, no temporary file
    assert cache.cached_model(target, lambda: payload).read_bytes() == payload


def test_a_thumbnail_cache_write_that_fails_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixdex.api import thumbs

    disk = tmp_path / "thumbs"
    store = thumbs.ThumbnailCache(disk)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(thumbs.os, "replace", fail)
        store.put("ab-128", b"\xff\xd8jpeg")  # logged, not raised: the gallery still answers
    assert [p for p in disk.rglob("*") if p.is_file()] == []
    assert thumbs.ThumbnailCache(disk).get("ab-128") is None  # a restart finds nothing half
    store.put("ab-128", b"\xff\xd8jpeg")
    assert thumbs.ThumbnailCache(disk).get("ab-128") == (b"\xff\xd8jpeg", "disk")
