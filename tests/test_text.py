"""The text analyzer on real photos: words drawn onto coco128 photos with a real font, the
coco128 photos with legible text (hand-annotated in data/coco128_text.json), text-free ones,
EXIF-rotated files; `pixdex detect-text`; and adding text to an index without re-running the
other analyzers (`pixdex reindex --reanalyze`)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _tools import missing
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from pixdex.analyzers.text import TextAnalyzer, WordFilter
from pixdex.cli import app
from pixdex.imaging import decode
from pixdex.records import Label, Record

FIXTURE = json.loads((Path(__file__).parent / "data" / "coco128_text.json").read_text())
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")  # Debian fonts-dejavu-core
runner = CliRunner()


@pytest.fixture(scope="module")
def analyzer() -> TextAnalyzer:
    return TextAnalyzer()


def font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        missing(f"needs {FONT}: apt-get install fonts-dejavu-core")
    return ImageFont.truetype(str(FONT), size)


def jpeg(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, **save)
    return out.getvalue()


def with_words(photo: Path, words: list[tuple[str, tuple[int, int], int]]) -> Image.Image:
    """``photo`` with each (word, (x, y), size) drawn white on a dark plate, like a sign."""
    image = Image.open(photo).convert("RGB")
    draw = ImageDraw.Draw(image)
    for word, (x, y), size in words:
        left, top, right, bottom = draw.textbbox((x, y), word, font=font(size))
        draw.rectangle((left - 8, top - 8, right + 8, bottom + 8), fill=(20, 40, 90))
        draw.text((x, y), word, font=font(size), fill=(250, 250, 250))
    return image


def texts(partial: dict, kind: str) -> list[str]:
    return [d.DetectedText for d in partial["TextDetections"] if d.Type == kind]


def test_rendered_words_are_read_where_they_are(analyzer: TextAnalyzer, coco_dir: Path):
    photo = coco_dir / "images" / FIXTURE["text_free"][0]
    image = with_words(photo, [("PARKING", (40, 60), 40), ("Bakery", (300, 300), 32)])
    partial = analyzer.analyze([decode(jpeg(image))])[0]
    found = partial["TextDetections"]
    assert {w.lower() for w in texts(partial, "WORD")} == {"parking", "bakery"}
    assert partial["TextModelVersion"] == analyzer.engine.version
    # LINEs first (Ids 0…), then WORDs whose ParentId is their line's Id
    lines = [d for d in found if d.Type == "LINE"]
    assert [d.Id for d in found] == list(range(len(found)))
    assert found[: len(lines)] == lines
    for word in found[len(lines) :]:
        assert word.ParentId in {line.Id for line in lines}
        assert 80 <= word.Confidence <= 100
    # geometry: ratios of the image, the box around the drawn word
    parking = next(d for d in found if d.DetectedText.lower() == "parking")
    box = parking.Geometry.BoundingBox
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((40, 60), "PARKING", font=font(40))
    w, h = image.size
    assert abs(box.Left - left / w) < 0.03 and abs(box.Top - top / h) < 0.04
    assert (
        abs(box.Width - (right - left) / w) < 0.05 and abs(box.Height - (bottom - top) / h) < 0.05
    )
    assert len(parking.Geometry.Polygon) == 4
    assert all(0 <= p.X <= 1 and 0 <= p.Y <= 1 for p in parking.Geometry.Polygon)


def test_words_of_a_line_get_their_own_boxes(analyzer: TextAnalyzer, coco_dir: Path):
    photo = coco_dir / "images" / FIXTURE["text_free"][1]
    image = with_words(photo, [("FRESH BREAD DAILY", (30, 120), 40)])
    partial = analyzer.analyze([decode(jpeg(image))])[0]
    assert texts(partial, "LINE") == ["FRESH BREAD DAILY"]
    words = [d for d in partial["TextDetections"] if d.Type == "WORD"]
    assert [w.DetectedText for w in words] == ["FRESH", "BREAD", "DAILY"]
    lefts = [w.Geometry.BoundingBox.Left for w in words]
    assert lefts == sorted(lefts)
    for a, b in zip(words, words[1:], strict=False):  # side by side, not on top of each other
        ab = a.Geometry.BoundingBox
        assert ab.Left + ab.Width <= b.Geometry.BoundingBox.Left + 0.01


def test_real_text_and_text_free_photos(analyzer: TextAnalyzer, coco_dir: Path):
    images = coco_dir / "images"
    names = ["000000000151.jpg", "000000000094.jpg", *FIXTURE["text_free"][:4]]
    partials = analyzer.analyze([decode((images / n).read_bytes()) for n in names])
    assert "STOP" in texts(partials[0], "WORD")  # a small stop sign
    assert {"PEACE", "WAY"} <= set(texts(partials[1], "WORD"))
    assert [p["TextDetections"] for p in partials[2:]] == [[], [], [], []]


def test_boxes_are_fractions_of_the_upright_image(analyzer: TextAnalyzer, coco_dir: Path):
    """A file stored on its side with EXIF orientation 6 gives the same boxes as the upright
    file: the analyzer sees the image after the orientation is applied."""
    upright = with_words(coco_dir / "images" / FIXTURE["text_free"][2], [("EXIT", (60, 80), 48)])
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    a = analyzer.analyze([decode(jpeg(upright))])[0]["TextDetections"]
    b = analyzer.analyze([decode(jpeg(stored, exif=exif.tobytes()))])[0]["TextDetections"]
    assert [d.DetectedText for d in a] == [d.DetectedText for d in b] == ["EXIT", "EXIT"]
    box_a, box_b = a[0].Geometry.BoundingBox, b[0].Geometry.BoundingBox
    for field in ("Left", "Top", "Width", "Height"):
        assert abs(getattr(box_a, field) - getattr(box_b, field)) < 0.01


def test_word_filter(analyzer: TextAnalyzer, coco_dir: Path):
    image = with_words(
        coco_dir / "images" / FIXTURE["text_free"][3],
        [("OPEN", (20, 20), 48), ("bus", (400, 380), 20)],
    )
    found = analyzer.analyze([decode(jpeg(image))])[0]["TextDetections"]
    assert {d.DetectedText for d in found if d.Type == "WORD"} == {"OPEN", "bus"}
    big = WordFilter(min_height=0.09).apply(found)
    assert {d.DetectedText for d in big} == {"OPEN"}  # its LINE and its WORD
    right = WordFilter(regions=((0.5, 0.5, 0.5, 0.5),)).apply(found)
    assert {d.DetectedText for d in right} == {"bus"}
    assert WordFilter(min_confidence=100.1).apply(found) == []


def test_a_photo_reads_the_same_alone_and_in_a_batch(analyzer: TextAnalyzer, coco_dir: Path):
    """What is read in a photo does not depend on the photos analyzed with it (the recognizer
    runs only crops of one width together: padding a short word to a long line's width changed
    what was read), so `pixdex detect-text`, DetectText and the index agree."""
    images = coco_dir / "images"
    short = with_words(images / FIXTURE["text_free"][4], [("7", (50, 50), 40)])
    long = with_words(images / FIXTURE["text_free"][5], [("WELCOME TO THE HARBOUR", (20, 90), 36)])
    photos = [decode(jpeg(short)), decode((images / "000000000094.jpg").read_bytes())]
    photos.append(decode(jpeg(long)))
    together = analyzer.analyze(photos)
    for photo, found in zip(photos, together, strict=True):
        assert analyzer.analyze([photo])[0]["TextDetections"] == found["TextDetections"]
    assert texts(together[0], "WORD") == ["7"]
    assert texts(together[2], "LINE") == ["WELCOME TO THE HARBOUR"]


def test_pipeline_runs_the_text_models_on_one_thread_per_batch():
    """With several batches analyzed at once (the default), each text model session uses one
    thread; with one batch at a time, all cores; a `threads` setting wins."""
    from pixdex.config import Settings
    from pixdex.models.sessions import available_cores

    def threads(**settings: int) -> tuple[int, int]:
        engine = TextAnalyzer.from_settings(Settings(**settings)).engine
        return (
            engine._det.get_session_options().intra_op_num_threads,
            engine._rec.get_session_options().intra_op_num_threads,
        )

    assert threads(analysis_workers=2) == (1, 1)
    assert threads(analysis_workers=1) == (available_cores(), available_cores())
    assert threads(analysis_workers=2, threads=3) == (3, 3)


def test_detector_input_is_imagenet_normalised_bgr(analyzer: TextAnalyzer, coco_dir: Path):
    """The lookup-table normalisation gives exactly PaddleOCR's (x - mean) / std on BGR."""
    image = Image.open(coco_dir / "images" / "000000000094.jpg").convert("RGB")
    x = np.asarray(image, np.float32)[:, :, ::-1]
    mean = np.array((0.485, 0.456, 0.406), np.float32) * 255.0
    scale = 1.0 / (np.array((0.229, 0.224, 0.225), np.float32) * 255.0)
    want = ((x - mean) * scale).transpose(2, 0, 1)[None]
    assert np.array_equal(analyzer.engine._normalise(image), want)


def test_gate_skips_photos_without_text(coco_dir: Path):
    """With the optional gate (the detector at 320 px first), a photo whose small map shows
    nothing gets no regions, and a photo with a sign is still read."""
    gated = TextAnalyzer(gate_side=320)
    images = coco_dir / "images"
    free = decode((images / FIXTURE["text_free"][0]).read_bytes())
    sign = decode(jpeg(with_words(images / FIXTURE["text_free"][0], [("PARKING", (40, 60), 40)])))
    assert gated.engine.detect(free.image) == []
    assert texts(gated.analyze([sign])[0], "WORD") == ["PARKING"]
    assert "gate320" in gated.version


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def test_detect_text_cli(coco_dir: Path, tmp_path: Path):
    stop = coco_dir / "images" / "000000000151.jpg"
    result = run("detect-text", str(stop))
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert set(response) == {"TextDetections", "TextModelVersion"}
    line, word = response["TextDetections"]
    assert line["DetectedText"] == word["DetectedText"] == "STOP"
    assert line["Type"] == "LINE" and "ParentId" not in line and line["Id"] == 0
    assert word["Type"] == "WORD" and word["ParentId"] == 0 and word["Id"] == 1
    assert set(word["Geometry"]) == {"BoundingBox", "Polygon"}
    assert set(word["Geometry"]["BoundingBox"]) == {"Width", "Height", "Left", "Top"}
    assert [set(p) for p in word["Geometry"]["Polygon"]] == [{"X", "Y"}] * 4

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    result = run("detect-text", str(stop), str(bad), "--min-confidence", "99.9")
    assert result.exit_code == 1
    assert [json.loads(line)["Image"] for line in result.stdout.splitlines()] == [str(stop)]
    assert "notes.jpg" in result.stderr and "Traceback" not in result.output


def test_reindex_adds_text_without_rerunning_the_other_analyzers(coco_dir: Path, tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("000000000151.jpg", FIXTURE["text_free"][0]):
        shutil.copy(coco_dir / "images" / name, folder / name)
    db = str(tmp_path / "index.db")
    result = run("index", str(folder), "--index", db, "--no-text", "--no-objects", "--quiet")
    assert result.exit_code == 0, result.output

    from pixdex.indexes.sqlite import SqliteIndex

    index = SqliteIndex(db)
    before = {
        r.key: r
        for r in (index.get(str(folder), k) for k in sorted(p.name for p in folder.iterdir()))
        if r
    }
    assert all(r.TextDetections is None and "text" not in r.analyzers for r in before.values())
    # A label no model would give: if the label model ran again, it would be gone.
    marked = before["000000000151.jpg"].model_copy(
        update={"Labels": [Label(Name="Marker Label", Confidence=99.0)]}
    )
    index.upsert([marked])
    index.close()

    result = run("reindex", "--index", db, "--reanalyze", "--text", "--no-objects")
    assert result.exit_code == 0, result.output
    assert "re-analyzed 2 (2 by the new or changed analyzers only)" in result.stderr

    index = SqliteIndex(db)
    stop = index.get(str(folder), "000000000151.jpg")
    free = index.get(str(folder), FIXTURE["text_free"][0])
    assert stop is not None and free is not None
    assert [lb.Name for lb in stop.Labels] == ["Marker Label"]
    assert stop.text_lines() == ["STOP"] and free.TextDetections == []
    assert set(stop.analyzers) == set(before["000000000151.jpg"].analyzers) | {"text"}
    assert free.Labels == before[FIXTURE["text_free"][0]].Labels
    index.close()

    # the index is up to date now: a plain index run changes nothing, a reindex re-runs nothing
    result = run("index", str(folder), "--index", db, "--text", "--no-objects", "--quiet")
    assert result.exit_code == 0 and "unchanged" in result.stderr
    result = run("reindex", "--index", db, "--reanalyze", "--text", "--no-objects")
    assert result.exit_code == 0 and "re-analyzed 0" in result.stderr

    # turning text off again removes its fields, still without running anything else
    result = run("reindex", "--index", db, "--reanalyze", "--no-text", "--no-objects")
    assert result.exit_code == 0, result.output
    index = SqliteIndex(db)
    stop = index.get(str(folder), "000000000151.jpg")
    assert stop is not None and stop.TextDetections is None and "text" not in stop.analyzers
    assert [lb.Name for lb in stop.Labels] == ["Marker Label"]
    index.close()


def test_reindex_of_sqlite_needs_reanalyze(tmp_path: Path):
    result = run("reindex", "--index", str(tmp_path / "i.db"))
    assert result.exit_code == 2 and "--reanalyze" in result.stderr


def test_record_round_trip_keeps_text():
    record = Record(bucket="b", key="k", TextDetections=[], TextModelVersion="v")
    again = Record.model_validate_json(json.dumps(record.to_json()))
    assert again.TextDetections == [] and again.TextModelVersion == "v"
    assert Record(bucket="b", key="k").to_json().get("TextDetections") is None


def test_batches_analyzed_in_several_threads_read_the_same_text(coco_dir: Path, tmp_path: Path):
    """`analysis_workers` runs batches in parallel threads sharing one TextAnalyzer: the text read
    is the same as with one thread."""
    from pixdex.config import Settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import build_pipeline
    from pixdex.sources.local import LocalSource

    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["000000000151.jpg", "000000000094.jpg", *FIXTURE["text_free"][:2]]
    for name in names:
        shutil.copy(coco_dir / "images" / name, folder / name)
    read: dict[int, dict[str, list[dict]]] = {}
    for workers in (1, 3):
        settings = Settings(
            index=str(tmp_path / f"index-{workers}.db"),
            analyzer=["text"],
            batch_size=1,
            analysis_workers=workers,
        )
        index = SqliteIndex(settings.index)
        assert build_pipeline(settings, index).run(LocalSource(folder)).indexed == len(names)
        read[workers] = {
            name: [d.to_json() for d in index.get(str(folder), name).TextDetections]
            for name in names
        }
        index.close()
    assert read[3] == read[1]
    assert any(read[1].values())  # some text was read
