"""The CLI as a new user meets it: bad arguments are one line and exit 2, a server that cannot be
reached is one line and exit 3 (no traceback without --verbose), read-only commands create
nothing, help shows no ``<bool>``, and the summary says what really happened to each file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _serve import free_port
from typer.testing import CliRunner

from pixdex.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point's code path (``python -m pixdex``), stderr as a user sees it."""
    return subprocess.run(
        [sys.executable, "-m", "pixdex", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["search", "dog", "--min-confidence", "500"], "--min-confidence"),
        (["search", "dog", "--min-confidence", "-5"], "--min-confidence"),
        (["search", "--label", "dog", "--since", "last tuesday"], "--since: not an ISO 8601"),
        (["search", "--label", "dog", "--until", "2024-13-45"], "--until: not an ISO 8601"),
        (["search", "🐶🐱"], "no searchable word"),
        (["search", " ".join(["word"] * 64)], "at most 24 words"),
        (["serve", "--port", "0"], "--port"),
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--host", "0.0.0.0"], "API token"),
        (["index", "x", "--endpoint-url", "ftp://minio:9000"], "not an http(s)://host"),
        (["index", "x", "--endpoint-url", "http://minio:ninethousand"], "not a usable URL"),
        (["index", "x", "--workers", "0"], "workers"),
        (["detect-labels", "x.jpg", "--max-labels", "0"], "max_labels"),
        (["worker", "--sqs-queue-url", "queue-please"], "--sqs-queue-url"),
        (["worker", "--sqs-queue-url", "http://q", "--visibility-timeout", "-1"], "visibility"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], mentions: str, tmp_path: Path):
    result = run(*args, env={"PIXDEX_INDEX": str(tmp_path / "i.db")})
    assert result.exit_code == 2, result.output
    assert mentions in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "i.db").exists()


def test_bad_settings_from_the_environment_are_exit_2(tmp_path: Path):
    result = run("index", str(SAMPLES), env={"PIXDEX_MIN_CONFIDENCE": "500"})
    assert result.exit_code == 2 and "min_confidence = '500'" in result.output


@pytest.mark.parametrize(
    "index",
    [
        "es+http://127.0.0.1:notaport/photos",
        "opensearch+http://127.0.0.1:{port}/photos",
        "es+http://127.0.0.1:{port}/photos",
    ],
)
def test_unusable_index_urls_are_one_line_and_exit_3(index: str):
    env = {"PIXDEX_ELASTIC__RETRIES": "1", "PIXDEX_ELASTIC__BACKOFF": "0.01"}
    done = process("search", "dog", "--index", index.format(port=free_port()), env=env)
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:")
    assert len(lines) <= 3, done.stderr  # one message (wrapped at most), no logged traceback
    assert "Traceback" not in done.stderr and ":pw@" not in done.stderr


def test_options_in_an_index_url_are_refused_with_the_settings_to_use():
    done = process("search", "dog", "--index", "es+http://user:pw@127.0.0.1:9200/photos?shards=2")
    assert done.returncode == 2, done.stderr
    assert "index URLs carry no options (shards → PIXDEX_ELASTIC__SHARDS)" in done.stderr
    assert "[elastic] section" in done.stderr and ":pw@" not in done.stderr


@pytest.mark.parametrize("command", [["search", "dog"], ["stats"], ["stats", "--failures"]])
def test_read_only_commands_create_nothing(command: list[str], tmp_path: Path):
    missing = tmp_path / "nowhere" / "deeper" / "index.db"
    result = run(*command, "--index", str(missing))
    assert result.exit_code == 3
    assert "no index at" in result.output and "pixdex index" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_help_shows_no_bool_placeholders():
    for command in ([], ["index"], ["search"], ["serve"], ["detect-labels"], ["watch"]):
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "<bool>" not in result.output, command


def test_summary_says_what_happened_to_each_file(tmp_path: Path):
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.md"))
    db = tmp_path / "index.db"
    first = run("index", str(folder), "--index", str(db), "--quiet", "--no-objects")
    assert first.exit_code == 0, first.output
    photos = sorted(folder.glob("*.jpg"))
    photos[0].touch()  # same content, new mtime: read and hashed, not analyzed
    os.utime(photos[0], (1, 1))
    photos[1].unlink()  # gone: mentioned, kept without --prune
    second = run("index", str(folder), "--index", str(db), "--quiet", "--no-objects")
    assert second.exit_code == 0, second.output
    assert re.search(r"indexed \(analyzed\)\s+0\s", second.output)
    assert "1 read again: touched, same content, not re-analyzed" in second.output
    assert re.search(r"gone from the source\s+1 \(still indexed; --prune removes", second.output)
    forced = run("index", str(folder), "--index", str(db), "--quiet", "--no-objects", "--force")
    assert forced.exit_code == 0
    assert re.search(rf"indexed \(analyzed\)\s+{len(photos) - 1}\s", forced.output)  # all again


def test_unexpected_errors_are_one_line_unless_verbose(tmp_path: Path):
    """A folder that cannot be listed by os.walk would be exit 3; an unexpected failure in the
    middle of the CLI (here: an index file that is a directory of garbage) stays one line."""
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not SQLite" * 100)
    done = process("stats", "--index", str(bad))
    assert done.returncode in (1, 3), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") <= 3
    verbose = process("--verbose", "stats", "--index", str(bad))
    assert verbose.returncode == done.returncode
