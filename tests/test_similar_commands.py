"""``pixdex similar``, ``pixdex duplicates`` and their HTTP routes as users call them, over a
folder indexed by the real pipeline: coco128 photos plus edited copies of two of them (a small
re-encoded one and a mirrored one), and a photo indexed before embeddings existed."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from _http import LocalClient
from PIL import Image
from typer.testing import CliRunner

from pixdex.api.app import create_app
from pixdex.cli import app
from pixdex.config import load_settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.pipeline import build_pipeline
from pixdex.records import Label, Record
from pixdex.sources.local import LocalSource

ORIGINALS = ("000000000009.jpg", "000000000025.jpg")
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _edit(source: Path, folder: Path) -> dict[str, list[str]]:
    """Copies of each original in ``folder``: half size at JPEG quality 40, and mirrored."""
    copies: dict[str, list[str]] = {}
    for name in ORIGINALS:
        photo = Image.open(source / name).convert("RGB")
        small, mirror = f"copy-small-{name}", f"copy-mirror-{name}"
        photo.resize((photo.width // 2, photo.height // 2)).save(folder / small, quality=40)
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / mirror, quality=92)
        copies[name] = [small, mirror]
    return copies


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, coco_images: list[Path]):
    tmp = tmp_path_factory.mktemp("similar-commands")
    folder = tmp / "photos"
    folder.mkdir()
    for path in coco_images[:12]:
        shutil.copy(path, folder / path.name)
    copies = _edit(folder, folder)
    settings = load_settings(index=str(tmp / "index.db"), cache_dir=tmp / "cache", objects=False)
    index = SqliteIndex(settings.index)
    summary = build_pipeline(settings, index).run(LocalSource(folder))
    assert summary.ok and summary.indexed == 16
    # a photo indexed by a version without embeddings: labels only
    assert (
        index.upsert(
            [Record(bucket="old", key="legacy.jpg", Labels=[Label(Name="Cat", Confidence=90.0)])]
        )
        == []
    )
    yield settings, index, folder, copies
    index.close()


def test_similar_finds_the_original_of_an_indexed_copy_first(library) -> None:
    settings, _, folder, copies = library
    for original, edited in copies.items():
        for copy in edited:
            result = run("similar", str(folder / copy), "--index", str(settings.index), "--json")
            assert result.exit_code == 0, result.output
            hits = json.loads(result.stdout)["hits"]
            keys = [h["key"] for h in hits]
            assert copy not in keys  # a photo is not its own neighbour
            assert keys[0] in {original, *edited}, keys[:3]
            assert original in keys[:2]
            assert [h["Similarity"] for h in hits] == sorted(
                (h["Similarity"] for h in hits), reverse=True
            )
            assert all("embedding" not in h for h in hits)


def test_similar_by_key_and_by_a_file_outside_the_index(library, tmp_path: Path) -> None:
    settings, _, folder, _ = library
    by_key = run("similar", ORIGINALS[0], "--index", str(settings.index), "--json", "--limit", "3")
    assert by_key.exit_code == 0, by_key.output
    assert len(json.loads(by_key.stdout)["hits"]) == 3

    outside = tmp_path / "cropped.jpg"  # an unindexed crop: analyzed on the spot, nothing stored
    photo = Image.open(folder / ORIGINALS[1])
    photo.crop((20, 20, photo.width - 20, photo.height - 20)).save(outside, quality=60)
    both = run("similar", str(outside), ORIGINALS[0], "--index", str(settings.index), "--json")
    assert both.exit_code == 0, both.output
    lines = [json.loads(line) for line in both.stdout.splitlines()]
    assert [line["Image"] for line in lines] == [str(outside), ORIGINALS[0]]
    assert lines[0]["hits"][0]["key"] == ORIGINALS[1]
    assert ORIGINALS[0] not in {h["key"] for h in lines[1]["hits"]}
    table = run("similar", ORIGINALS[0], "--index", str(settings.index))
    assert table.exit_code == 0 and "copy-small-" + ORIGINALS[0] in table.stdout


def test_similar_refuses_what_it_cannot_answer_in_one_line(library, tmp_path: Path) -> None:
    settings, _, _, _ = library
    missing = run("similar", "no/such/photo.jpg", "--index", str(settings.index))
    assert missing.exit_code == 1
    assert "neither an indexed photo" in missing.output
    assert "Traceback" not in missing.output and len(missing.output.strip().splitlines()) == 1

    legacy = run("similar", "legacy.jpg", "--index", str(settings.index))
    assert legacy.exit_code == 1 and "pixdex index" in legacy.output  # says how to add one

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    bad = run("similar", str(broken), "--index", str(settings.index))
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_duplicates_groups_each_original_with_its_copies(library) -> None:
    settings, _, _, copies = library
    result = run("duplicates", "--index", str(settings.index), "--json")
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)["groups"]
    found = {frozenset(p["key"] for p in g["photos"]): g for g in groups}
    for original, edited in copies.items():
        group = found[frozenset({original, *edited})]  # each original with its copies, no other
        keep = group["photos"][0]
        assert keep["key"] == original  # the most pixels
        assert keep["Similarity"] == 100 and group["reason"]
    assert len(groups) == len(copies)

    # the closest copies only: mirrored ones are less alike than re-encoded ones
    strict = json.loads(
        run(
            "duplicates", "--index", str(settings.index), "--json", "--min-similarity", "99.5"
        ).stdout
    )["groups"]
    assert all(len(g["photos"]) < 3 for g in strict)
    text = run("duplicates", "--index", str(settings.index))
    assert text.exit_code == 0 and "keep the first" in text.stdout


def test_duplicates_on_an_index_without_copies(tmp_path: Path, coco_images: list[Path]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in coco_images[20:24]:
        shutil.copy(path, folder / path.name)
    db = tmp_path / "index.db"
    assert run("index", str(folder), "--index", str(db), "--quiet").exit_code == 0
    result = run("duplicates", "--index", str(db))
    assert result.exit_code == 0 and "no duplicates found" in result.output


def test_http_routes(library) -> None:
    settings, index, folder, copies = library
    original = ORIGINALS[0]
    with LocalClient(create_app(settings, index)) as client:
        record = index.get(str(folder.resolve()), copies[original][0])
        assert record is not None
        like = client.get("/api/similar", params={"id": record.id, "limit": 5})
        assert like.status_code == 200, like.text
        hits = like.json()["hits"]
        assert len(hits) == 5 and original in {h["key"] for h in hits[:2]}
        assert all("Similarity" in h and "embedding" not in h for h in hits)

        photo = io.BytesIO()
        Image.open(folder / original).convert("RGB").rotate(3).save(photo, "JPEG", quality=70)
        by_photo = client.post(
            "/api/similar", content=photo.getvalue(), headers={"Content-Type": "image/jpeg"}
        )
        assert by_photo.status_code == 200, by_photo.text
        assert by_photo.json()["hits"][0]["key"] == original
        assert index.stats().records == 17  # nothing stored

        bad = client.post(
            "/api/similar", content=b"GIF89a broken", headers={"Content-Type": "image/gif"}
        )
        assert bad.status_code == 400 and bad.json()["message"]
        assert client.get("/api/similar", params={"id": "0" * 40}).status_code == 404
        legacy = index.get("old", "legacy.jpg")
        assert legacy is not None
        no_embedding = client.get("/api/similar", params={"id": legacy.id})
        assert no_embedding.status_code == 409 and "pixdex index" in no_embedding.json()["message"]
        assert client.get("/api/similar", params={"id": record.id, "limit": 0}).status_code == 400

        groups = client.get("/api/duplicates").json()["groups"]
        assert {frozenset(p["key"] for p in g["photos"]) for g in groups} == {
            frozenset({o, *c}) for o, c in copies.items()
        }
        assert client.get("/api/duplicates", params={"min_similarity": 101}).status_code == 400
