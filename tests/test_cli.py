"""The pixdex command as a user runs it, on the sample photos shipped in the repo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixdex.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
runner = CliRunner()


def run(*args: str):
    # a wide terminal: rich wraps tables and long lines at 80 columns otherwise
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "index.db"
    result = run("index", str(SAMPLES), "--index", str(db), "--quiet")
    assert result.exit_code == 0, result.output
    return db


def test_detect_labels_prints_rekognition_json():
    result = run("detect-labels", str(SAMPLES / "000000000042.jpg"))  # a dog
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert set(response) == {"Labels", "LabelModelVersion"}
    labels = response["Labels"]
    assert labels and all(
        set(lb) == {"Name", "Confidence", "Instances", "Parents", "Aliases", "Categories"}
        for lb in labels
    )
    assert all(lb["Confidence"] >= 55 for lb in labels)
    assert [lb["Confidence"] for lb in labels] == sorted(
        (lb["Confidence"] for lb in labels), reverse=True
    )
    assert "Dog" in {lb["Name"] for lb in labels}


def test_detect_labels_min_confidence_below_the_default_finds_weaker_labels():
    """The analyzers keep labels down to store_min_confidence (20), so a MinConfidence under 55
    answers more, and the default still answers only labels ≥ 55."""
    photo = str(SAMPLES / "000000000042.jpg")
    default = json.loads(run("detect-labels", photo).stdout)["Labels"]
    low = json.loads(run("detect-labels", photo, "--min-confidence", "20").stdout)["Labels"]
    assert all(lb["Confidence"] >= 55 for lb in default)
    assert all(lb["Confidence"] >= 20 for lb in low)
    assert any(20 <= lb["Confidence"] < 55 for lb in low)
    assert [lb for lb in low if lb["Confidence"] >= 55] == default
    for label in low:  # instances follow the floor too
        assert all(i["Confidence"] >= 20 for i in label["Instances"])


def test_detect_labels_options_and_several_files(tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    files = [str(SAMPLES / "000000000042.jpg"), str(bad), str(SAMPLES / "000000000071.jpg")]
    result = run("detect-labels", *files, "--max-labels", "3", "--min-confidence", "10")
    assert result.exit_code == 1  # one of them failed, the others were still answered
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["Image"] for line in lines] == [files[0], files[2]]
    assert all(1 <= len(line["Labels"]) <= 3 for line in lines)
    assert "bad.jpg" in result.stderr and "not an image" in result.stderr


def test_index_then_search(indexed: Path):
    result = run("search", "dog", "--index", str(indexed), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["min_confidence"] == 55  # the default: the min_confidence setting
    keys = [hit["key"] for hit in payload["hits"]]
    assert "000000000042.jpg" in keys
    assert payload["hits"][0]["score"] >= payload["hits"][-1]["score"]
    assert any(f["name"] == "Dog" for f in payload["facets"])

    result = run(
        "search", "--label", "Vehicle", "--min-confidence", "50", "--index", str(indexed), "--json"
    )
    payload = json.loads(result.stdout)
    assert payload["total"] >= 1
    for hit in payload["hits"]:
        terms = {t["Name"] for lb in hit["Labels"] for t in [lb, *lb["Parents"], *lb["Aliases"]]}
        assert "Vehicle" in terms

    human = run("search", "dog", "--index", str(indexed))
    assert "000000000042" in human.stdout  # a narrow terminal folds the path


def test_search_defaults_to_the_min_confidence_setting_and_finds_weaker_labels_below_it(
    indexed: Path,
):
    """Labels are stored down to store_min_confidence (20); search shows what DetectLabels would
    (≥ min_confidence, 55) unless asked for less."""
    every = json.loads(
        run("search", "--prefix", "0", "--min-confidence", "0", "--limit", "100",
            "--index", str(indexed), "--json").stdout
    )  # fmt: skip
    assert every["min_confidence"] == 0 and every["total"] == 8
    stored = [(lb["Confidence"], lb["Name"], h["key"]) for h in every["hits"] for lb in h["Labels"]]
    assert min(c for c, _, _ in stored) >= 10  # the floor for the best-3 guesses
    best = {}
    for c, name, _ in stored:
        best[name] = max(best.get(name, 0), c)
    # a label that no photo has at 55 or more, but some photo has at 20 or more
    weak = sorted((c, n, k) for c, n, k in stored if 20 <= c < 55 and best[n] < 55)
    assert weak, stored
    confidence, name, key = weak[-1]
    default = run("search", "--label", name, "--index", str(indexed))
    assert default.exit_code == 0
    assert "no matches with confidence ≥ 55" in default.stderr
    assert "--min-confidence 0" in default.stderr
    low = json.loads(
        run("search", "--label", name, "--min-confidence", str(int(confidence)),
            "--index", str(indexed), "--json").stdout
    )  # fmt: skip
    assert key in [h["key"] for h in low["hits"]]
    assert low["hits"][0]["score"] == pytest.approx(confidence)


def test_reindex_is_a_no_op_and_stats_report(indexed: Path):
    result = run("index", str(SAMPLES), "--index", str(indexed), "--quiet")
    assert result.exit_code == 0
    assert "unchanged" in result.stderr and "8" in result.stderr
    stats = json.loads(run("stats", "--index", str(indexed), "--json").stdout)
    assert stats["records"] == 8 and stats["failures"] == 0
    assert stats["location"] == str(indexed)
    assert stats["model_versions"][0]["count"] == 8
    assert stats["top_labels"]


def test_failures_are_listed_and_exit_code_says_so(tmp_path: Path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(SAMPLES / "000000000042.jpg", folder)
    (folder / "zero.jpg").write_bytes(b"")
    db = tmp_path / "index.db"
    result = run("index", str(folder), "--index", str(db), "--quiet")
    assert result.exit_code == 1
    assert "zero.jpg: empty file (0 bytes)" in result.stderr
    listed = run("stats", "--failures", "--index", str(db))
    assert "zero.jpg: empty file (0 bytes)" in listed.stdout


def test_unusable_index_or_source_is_one_clear_line(tmp_path: Path):
    result = run("search", "dog", "--index", "ftp://nowhere/x")
    assert result.exit_code == 3
    assert "unknown index URL" in result.stderr
    result = run("index", str(tmp_path / "missing"), "--index", str(tmp_path / "i.db"))
    assert result.exit_code == 3
    assert "not a folder" in result.stderr
    assert run("search").exit_code == 2


def test_bad_settings_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A bad value from an env var or a broken config file: exit 2, which setting and why."""
    monkeypatch.setenv("PIXDEX_DETECTOR", "bogus")
    result = run("stats", "--index", str(tmp_path / "i.db"))
    assert result.exit_code == 2
    assert "detector = 'bogus'" in result.stderr and "PIXDEX_DETECTOR" in result.stderr
    monkeypatch.delenv("PIXDEX_DETECTOR")
    config = tmp_path / "config.toml"
    config.write_text("model = \n")
    monkeypatch.setenv("PIXDEX_CONFIG", str(config))
    result = run("search", "dog", "--index", str(tmp_path / "i.db"))
    assert result.exit_code == 2
    assert f"config file {config} is not valid TOML" in result.stderr
    assert not (tmp_path / "i.db").exists()  # nothing was opened or created
