"""The Rekognition analyzer against real servers that speak Rekognition's protocol: ``pixdex
serve`` (its compatible endpoint, answering with the local analyzers), moto's server mode (S3 and
Rekognition in one process) and a scripted server that records what it receives.

What is asserted is what crossed the wire (Bytes vs S3Object, the request's settings, images
within Rekognition's limits) and what landed in the index. Faults (throttling, errors, rate) are
in test_rekognition_faults.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from _minio import aws_record
from _rekognition_servers import AWS_ENV, Process, ScriptedRekognition
from botocore.config import Config
from PIL import Image

from pixdex.analyzers.detect import LabelDetector
from pixdex.config import Settings
from pixdex.indexes.base import SearchQuery
from pixdex.integrations.rekognition.analyzer import RekognitionAnalyzer
from pixdex.integrations.s3 import lambda_handler
from pixdex.pipeline import build_pipeline
from pixdex.records import Label
from pixdex.sources import open_source

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def photos(tmp_path: Path, coco_images: list[Path]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in coco_images[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def settings_for(tmp_path: Path, endpoint: str, **overrides) -> Settings:
    rekognition = {"endpoint_url": endpoint, "region": "us-east-1"}
    rekognition.update(overrides.pop("rekognition", {}))
    overrides.setdefault("analyzer", ["rekognition"])
    return Settings(index=str(tmp_path / "index.db"), rekognition=rekognition, **overrides)


def index_with(settings: Settings, location: str):
    pipeline = build_pipeline(settings)
    return pipeline, pipeline.run(open_source(location, settings))


def s3_client(moto: Process):
    return boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def object_gets(moto: Process, bucket: str) -> list[str]:
    """Object downloads in moto's request log (listing is ``GET /bucket?list-type=2``)."""
    return [line for line in moto.log_text().splitlines() if f'"GET /{bucket}/' in line]


# --- pixdex serve: the same photos labelled by both backends -----------------------------------
def test_cli_index_through_pixdex_serve_stores_its_answer(
    pixdex_serve: Process, photos: Path, tmp_path: Path
):
    """`pixdex index --analyzer rekognition` (a real CLI process) against `pixdex serve`: every
    record holds exactly what DetectLabels answered — here the local analyzers' answer."""
    env = {
        **os.environ,
        "PIXDEX_REKOGNITION__ENDPOINT_URL": f"{pixdex_serve.url}/rekognition",
        "PIXDEX_REKOGNITION__REGION": "us-east-1",
    }
    db = tmp_path / "cli.db"
    done = subprocess.run(
        [str(BIN / "pixdex"), "index", str(photos), "--index", str(db), "--analyzer", "rekognition"]
        + ["--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "calls 4, throttled 0, retried 0, failed 0" in done.stderr

    from pixdex.indexes.sqlite import SqliteIndex

    index = SqliteIndex(db)
    detector = LabelDetector(Settings())
    for path in sorted(photos.iterdir()):
        record = index.get(str(photos.resolve()), path.name)
        assert record is not None
        expected = detector.detect_bytes(path.read_bytes())
        assert [lb.to_json() for lb in record.Labels] == expected["Labels"]
        assert record.LabelModelVersion == expected["LabelModelVersion"]
        assert record.analyzers == {"rekognition": "detectlabels+general_labels+min55+max50"}
        assert record.to_json()["rekognition"] == {"image": "Bytes"}
        assert (record.width, record.height, record.format) == (*Image.open(path).size, "JPEG")
    index.close()


# --- moto: S3Object, nothing downloaded ------------------------------------------------------
@pytest.fixture
def moto_bucket(moto_server: Process, coco_images: list[Path], request) -> str:
    name = "photos-" + request.node.name.lower().replace("_", "-")[:40]
    client = s3_client(moto_server)
    client.create_bucket(Bucket=name)
    for path in coco_images[:3]:
        client.put_object(Bucket=name, Key=f"in/{path.name}", Body=path.read_bytes())
    return name


def test_s3_source_goes_by_s3object_without_a_download(
    moto_server: Process, moto_bucket: str, tmp_path: Path
):
    settings = settings_for(tmp_path, moto_server.url, s3={"endpoint_url": moto_server.url})
    pipeline, summary = index_with(settings, f"s3://{moto_bucket}/in/")
    assert (summary.indexed, summary.failed) == (3, 0)
    assert object_gets(moto_server, moto_bucket) == []  # not one object was read
    canned = boto3.client(
        "rekognition", endpoint_url=moto_server.url, region_name="us-east-1"
    ).detect_labels(Image={"S3Object": {"Bucket": moto_bucket, "Name": "in/x.jpg"}})
    expected = [Label.model_validate(lb).to_json() for lb in canned["Labels"]]
    known = pipeline.index.known(moto_bucket, "in/")
    assert len(known) == 3
    for key in known:
        record = pipeline.index.get(moto_bucket, key)
        doc = record.to_json()
        assert doc["rekognition"] == {"image": "S3Object"}
        assert doc["Labels"] == expected
        assert record.LabelModelVersion == canned["LabelModelVersion"]
        assert record.content_sha256 is None and record.width is None  # never read here
        assert record.etag and record.fingerprint == record.etag
    # A rerun skips by ETag: no call, no read.
    analyzer = pipeline.remote_analyzers[0]
    assert pipeline.run(open_source(f"s3://{moto_bucket}/in/", settings)).unchanged == 3
    assert analyzer.usage["calls"] == 3


def test_mixed_with_exif_reads_the_objects_but_still_sends_s3object(
    moto_server: Process, moto_bucket: str, tmp_path: Path
):
    settings = settings_for(
        tmp_path,
        moto_server.url,
        analyzer=["rekognition", "exif"],
        s3={"endpoint_url": moto_server.url},
    )
    pipeline, summary = index_with(settings, f"s3://{moto_bucket}/in/")
    assert (summary.indexed, summary.failed) == (3, 0)
    assert len(object_gets(moto_server, moto_bucket)) == 3  # EXIF needs the bytes
    record = pipeline.index.get(moto_bucket, next(iter(pipeline.index.known(moto_bucket))))
    assert set(record.analyzers) == {"rekognition", "exif"}
    assert record.to_json()["rekognition"] == {"image": "S3Object"}
    assert record.content_sha256 and record.width and record.Labels


def test_lambda_with_rekognition_indexes_an_event_by_s3object(
    moto_server: Process, moto_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The Lambda configured as the SAM template does (PIXDEX_ANALYZER=rekognition)."""
    monkeypatch.setenv("PIXDEX_ANALYZER", "rekognition")
    monkeypatch.setenv("PIXDEX_S3__ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("PIXDEX_REKOGNITION__ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("PIXDEX_INDEX", str(tmp_path / "lambda.db"))
    client = s3_client(moto_server)
    key = "in/new upload.jpg"
    data = next(iter(Path(__file__).parent.parent.glob("samples/*.jpg"))).read_bytes()
    etag = client.put_object(Bucket=moto_bucket, Key=key, Body=data)["ETag"].strip('"')
    lambda_handler.reset()
    try:
        result = lambda_handler.handler(
            {"Records": [aws_record(moto_bucket, key, size=len(data), etag=etag)]}, None
        )
        assert result["indexed"] == 1 and result["failed"] == 0 and result["retry"] == 0
        record = lambda_handler._get_applier().pipeline.index.get(moto_bucket, key)
        assert record is not None and record.Labels
        assert record.to_json()["rekognition"] == {"image": "S3Object"}
    finally:
        lambda_handler.reset()
    assert object_gets(moto_server, moto_bucket) == []


# --- what crosses the wire ---------------------------------------------------------------------
def test_bytes_request_carries_the_settings_and_the_file_unchanged(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    settings = settings_for(
        tmp_path,
        scripted.url,
        min_confidence=70,
        max_labels=12,
        rekognition={
            "features": "GENERAL_LABELS,IMAGE_PROPERTIES",
            "include_categories": "Animals and Pets,Vehicles and Automotive",
            "exclude_labels": ["Person"],
        },
    )
    pipeline, summary = index_with(settings, str(photos))
    assert (summary.indexed, summary.failed) == (4, 0)
    calls = scripted.calls("DetectLabels")
    assert len(calls) == 4 and not scripted.calls("DetectText")
    sent = sorted(c.image_bytes for c in calls)
    assert sent == sorted(p.read_bytes() for p in photos.iterdir())  # JPEGs go as they are
    body = calls[0].body
    assert set(body["Image"]) == {"Bytes"}
    assert body["MinConfidence"] == 70 and body["MaxLabels"] == 12
    assert body["Features"] == ["GENERAL_LABELS", "IMAGE_PROPERTIES"]
    assert body["Settings"] == {
        "GeneralLabels": {
            "LabelExclusionFilters": ["Person"],
            "LabelCategoryInclusionFilters": ["Animals and Pets", "Vehicles and Automotive"],
        }
    }
    record = pipeline.index.get(str(photos.resolve()), sorted(os.listdir(photos))[0])
    assert [lb.Name for lb in record.Labels] == ["Scripted"]
    assert record.LabelModelVersion == "scripted-1"
    version = record.analyzers["rekognition"]
    assert version.startswith("detectlabels+general_labels+image_properties+min70+max12+filters.")


def test_s3object_names_bucket_key_and_version(
    scripted: ScriptedRekognition, moto_server: Process, moto_bucket: str, tmp_path: Path
):
    """An event names a version: Rekognition is asked for exactly that version."""
    client = s3_client(moto_server)
    client.put_bucket_versioning(Bucket=moto_bucket, VersioningConfiguration={"Status": "Enabled"})
    data = next(Path(__file__).parent.parent.glob("samples/*.jpg")).read_bytes()
    version = client.put_object(Bucket=moto_bucket, Key="in/v.jpg", Body=data)["VersionId"]
    settings = settings_for(
        tmp_path,
        scripted.url,
        s3={"endpoint_url": moto_server.url},
        rekognition={"s3object": "always"},
    )
    pipeline = build_pipeline(settings)
    source = open_source(f"s3://{moto_bucket}/in/", settings)
    summary = pipeline.process(source, [source.head("in/v.jpg")])
    assert summary.indexed == 1
    (call,) = scripted.calls()
    assert call.body["Image"] == {
        "S3Object": {"Bucket": moto_bucket, "Name": "in/v.jpg", "Version": version}
    }
    assert pipeline.index.get(moto_bucket, "in/v.jpg").version_id == version


def test_detect_text_lands_beside_the_labels(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    settings = settings_for(tmp_path, scripted.url, rekognition={"text": True})
    pipeline, summary = index_with(settings, str(photos))
    assert summary.indexed == 4
    assert len(scripted.calls("DetectText")) == 4
    text_call = scripted.calls("DetectText")[0]
    assert set(text_call.body) == {"Image"} and "Bytes" in text_call.body["Image"]
    record = pipeline.index.get(str(photos.resolve()), sorted(os.listdir(photos))[0]).to_json()
    assert record["TextDetections"][0]["DetectedText"] == "STOP"
    assert record["TextDetections"][0]["Geometry"]["Polygon"][0] == {"X": 0.4, "Y": 0.3}
    assert record["TextModelVersion"] == "3.0"
    assert record["analyzers"]["rekognition"].endswith("+detecttext")
    assert pipeline.remote_analyzers[0].usage["calls"] == 8
    # Rekognition's text is searchable like the local analyzer's (docs/text.md)
    hits = pipeline.index.search(SearchQuery(text="stop")).hits
    assert len(hits) == 4 and all(h.score == 0.0 for h in hits)
    pipeline.index.close()


def test_rekognition_text_wins_over_the_local_text_analyzer_and_reindex_keeps_it(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`rekognition` (with DetectText) beside the local `text` analyzer: both read, and the
    record keeps Rekognition's text (remote answers merge last, docs/rekognition.md). Adding or
    dropping `text` later with `reindex --reanalyze` re-runs both rather than letting the local
    reader replace Rekognition's text, or wiping it as the gone analyzer's."""
    from typer.testing import CliRunner

    from pixdex.cli import app
    from pixdex.indexes.sqlite import SqliteIndex

    db = str(tmp_path / "index.db")
    monkeypatch.setenv("PIXDEX_REKOGNITION__ENDPOINT_URL", scripted.url)
    monkeypatch.setenv("PIXDEX_REKOGNITION__TEXT", "true")
    runner = CliRunner()

    def texts() -> list[tuple[list[str], str | None, list[str]]]:
        index = SqliteIndex(db)
        try:
            records = [index.get(str(photos.resolve()), p.name) for p in sorted(photos.iterdir())]
            return [(r.text_lines(), r.TextModelVersion, sorted(r.analyzers)) for r in records]
        finally:
            index.close()

    rekognition_only = [(["STOP"], "3.0", ["rekognition"])] * 4
    both = [(["STOP"], "3.0", ["rekognition", "text"])] * 4
    done = runner.invoke(app, ["index", str(photos), "--index", db, "--analyzer", "rekognition"])
    assert done.exit_code == 0, done.output
    assert texts() == rekognition_only

    done = runner.invoke(
        app, ["reindex", "--index", db, "--reanalyze", "--analyzer", "rekognition,text"]
    )
    assert done.exit_code == 0, done.output
    assert "re-analyzed 4; kept 0" in done.stderr  # every analyzer, not "by the new … only"
    assert len(scripted.calls("DetectText")) == 8
    assert texts() == both

    done = runner.invoke(
        app, ["reindex", "--index", db, "--reanalyze", "--analyzer", "rekognition"]
    )
    assert done.exit_code == 0, done.output
    assert len(scripted.calls("DetectText")) == 12
    assert texts() == rekognition_only


# --- Rekognition's limits ----------------------------------------------------------------------
def _jpeg(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def test_only_what_exceeds_the_limits_is_converted_and_the_record_says_so(
    scripted: ScriptedRekognition, coco_images: list[Path], tmp_path: Path
):
    import numpy as np

    folder = tmp_path / "limits"
    folder.mkdir()
    photo = Image.open(coco_images[0]).convert("RGB")
    shutil.copy(coco_images[0], folder / "as-is.jpg")
    photo.save(folder / "webp.webp", "WEBP")
    photo.resize((10_050, 120)).save(folder / "wide.png")  # over 10,000 px, 1.2 Mpx
    noise = np.random.default_rng(0).integers(0, 256, (1800, 1800, 3), dtype=np.uint8)
    (folder / "big.jpg").write_bytes(_jpeg(Image.fromarray(noise), quality=100))
    assert (folder / "big.jpg").stat().st_size > 5 * 1024 * 1024
    photo.resize((60, 60)).save(folder / "tiny.jpg")
    (folder / "text.jpg").write_text("not an image")

    pipeline, summary = index_with(settings_for(tmp_path, scripted.url), str(folder))
    assert (summary.indexed, summary.failed) == (4, 2)
    reasons = {f.key: f.reason for f in summary.failures}
    assert reasons["tiny.jpg"] == "image is 60x60 px; Rekognition needs at least 80 px a side"
    assert reasons["text.jpg"] == "not an image, or a format Pillow cannot read"
    assert len(scripted.calls()) == 4  # nothing sent for what cannot be helped

    for call in scripted.calls():
        sent = call.image_bytes
        assert len(sent) <= 5 * 1024 * 1024
        with Image.open(io.BytesIO(sent)) as image:
            assert image.format in ("JPEG", "PNG") and max(image.size) <= 10_000
    assert (folder / "as-is.jpg").read_bytes() in [c.image_bytes for c in scripted.calls()]

    def note(key: str) -> str | None:
        return pipeline.index.get(str(folder.resolve()), key).to_json()["rekognition"].get("note")

    assert note("as-is.jpg") is None
    assert note("webp.webp").endswith(": WEBP is not JPEG/PNG")
    assert note("wide.png").startswith("sent as JPEG 10000x119,")
    assert note("wide.png").endswith("10050x120 px is over 10,000 px a side")
    assert "bytes is over 5 MB" in note("big.jpg")
    record = pipeline.index.get(str(folder.resolve()), "webp.webp")
    assert (record.format, record.width, record.height) == ("WEBP", *photo.size)


def test_s3_objects_rekognition_cannot_take_are_read_and_sent_as_bytes(
    scripted: ScriptedRekognition, moto_server: Process, moto_bucket: str, tmp_path: Path
):
    """Not a .jpg/.png key → read and converted up front; an S3Object Rekognition refuses as too
    large (over 10,000 px) → read, converted and sent again as bytes."""
    client = s3_client(moto_server)
    photo = Image.open(next(Path(__file__).parent.parent.glob("samples/*.jpg")))
    webp = io.BytesIO()
    photo.save(webp, "WEBP")
    client.put_object(Bucket=moto_bucket, Key="in/a.webp", Body=webp.getvalue())

    def script(received, number):
        from _rekognition_servers import error, labels_answer

        if "S3Object" in received.body["Image"]:
            return error("ImageTooLargeException", "Image size is too large.")
        return labels_answer(received, number)

    scripted.script = script
    settings = settings_for(
        tmp_path,
        scripted.url,
        s3={"endpoint_url": moto_server.url},
        rekognition={"s3object": "always"},
    )
    pipeline, summary = index_with(settings, f"s3://{moto_bucket}/in/")
    assert (summary.indexed, summary.failed) == (4, 0)
    notes = {
        key: pipeline.index.get(moto_bucket, key).to_json()["rekognition"]
        for key in pipeline.index.known(moto_bucket, "in/")
    }
    assert notes["in/a.webp"]["image"] == "Bytes"
    assert notes["in/a.webp"]["note"].startswith("read instead of S3Object: not a .jpg/.png key")
    jpegs = [k for k in notes if k.endswith(".jpg")]
    assert len(jpegs) == 3
    for key in jpegs:
        assert notes[key] == {
            "image": "Bytes",
            "note": "S3Object refused (Image size is too large.)",
        }
    kinds = [set(c.body["Image"]) for c in scripted.calls()]
    assert kinds.count({"S3Object"}) == 3 and kinds.count({"Bytes"}) == 4


# --- selection and dry run ---------------------------------------------------------------------
def test_dry_run_counts_and_prices_without_reading_or_writing(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    db = tmp_path / "dry.db"
    env = {
        **os.environ,
        "PIXDEX_REKOGNITION__ENDPOINT_URL": scripted.url,
        "PIXDEX_REKOGNITION__TEXT": "true",
        "PIXDEX_INDEX": str(db),
    }
    args = [str(BIN / "pixdex"), "index", str(photos), "--analyzer", "rekognition", "--dry-run"]

    def dry() -> str:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = dry()
    assert "4 photo(s) listed, 0 unchanged, 4 would be analyzed" in first
    assert "4 photo(s) × 2 billed unit(s) (DetectLabels GENERAL_LABELS, DetectText)" in first
    assert "estimated price: $0.01 at $0.001 per image per unit" in first
    assert not db.exists() and scripted.received == []

    settings = Settings(
        index=str(db),
        analyzer=["rekognition"],
        rekognition={"endpoint_url": scripted.url, "text": True},
    )
    build_pipeline(settings).run(open_source(str(photos), settings))
    (photos / "new.jpg").write_bytes(next(photos.iterdir()).read_bytes())
    calls = len(scripted.received)
    assert "5 photo(s) listed, 4 unchanged, 1 would be analyzed" in dry()
    assert len(scripted.received) == calls


def test_analyzer_setting_from_env_and_config_and_bad_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pixdex.analyzers.select import select_analyzers
    from pixdex.errors import ConfigError

    with monkeypatch.context() as env:
        env.setenv("PIXDEX_ANALYZER", "rekognition, exif")
        settings = Settings(rekognition={"endpoint_url": "http://127.0.0.1:9"})
    assert settings.analyzer == ["rekognition", "exif"]
    chosen = select_analyzers(settings)
    assert [a.name for a in chosen] == ["rekognition", "exif"]
    assert isinstance(chosen[0], RekognitionAnalyzer)

    # AWS_REGION counts (Lambda sets it; botocore itself reads only AWS_DEFAULT_REGION)
    with monkeypatch.context() as env:
        env.delenv("AWS_DEFAULT_REGION")
        env.setenv("AWS_REGION", "eu-west-2")
        assert RekognitionAnalyzer.from_settings(Settings()).region == "eu-west-2"

    config = tmp_path / "config.toml"
    config.write_text(
        'analyzer = ["rekognition"]\n[rekognition]\nfeatures = ["IMAGE_PROPERTIES"]\n'
    )
    monkeypatch.setenv("PIXDEX_CONFIG", str(config))
    settings = Settings()
    assert settings.analyzer == ["rekognition"]
    assert settings.rekognition.features == ["IMAGE_PROPERTIES"]

    with pytest.raises(ConfigError, match="analyzer 'rekogniton' is unknown"):
        select_analyzers(Settings(analyzer="rekogniton"))
    done = subprocess.run(
        [str(BIN / "pixdex"), "index", str(tmp_path), "--analyzer", "rekogniton"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PIXDEX_INDEX": str(tmp_path / "never.db")},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: invalid setting: analyzer")
    assert not (tmp_path / "never.db").exists()


def test_records_keep_the_labels_json_as_rekognition_sent_it(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    """Instances with DominantColors, Parents, Aliases, Categories: nothing lost on the way."""
    label = {
        "Name": "Dog",
        "Confidence": 97.25,
        "Instances": [
            {
                "BoundingBox": {"Width": 0.5, "Height": 0.4, "Left": 0.1, "Top": 0.2},
                "Confidence": 96.0,
                "DominantColors": [{"Red": 1, "Green": 2, "Blue": 3, "PixelPercent": 40.0}],
            }
        ],
        "Parents": [{"Name": "Animal"}, {"Name": "Pet"}],
        "Aliases": [{"Name": "Puppy"}],
        "Categories": [{"Name": "Animals and Pets"}],
    }
    scripted.script = lambda received, number: (
        200,
        {"Labels": [label], "LabelModelVersion": "3.0"},
    )
    pipeline, _ = index_with(settings_for(tmp_path, scripted.url), str(photos))
    record = pipeline.index.get(str(photos.resolve()), sorted(os.listdir(photos))[0])
    assert json.loads(json.dumps(record.to_json()["Labels"])) == [label]
    assert record.LabelModelVersion == "3.0"


def test_reindex_reanalyze_with_rekognition_on_elasticsearch(
    scripted: ScriptedRekognition,
    elasticsearch_url: str,
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """`pixdex reindex --reanalyze --analyzer rekognition`: an index built by a local analyzer
    gets Rekognition's labels behind the alias; the summary says what it cost."""
    import uuid

    from typer.testing import CliRunner

    from pixdex.cli import app
    from pixdex.indexes.base import SearchQuery
    from pixdex.integrations.elastic import ElasticIndex

    url = f"es+{elasticsearch_url}/rek-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PIXDEX_ELASTIC__REFRESH", "true")
    monkeypatch.setenv("PIXDEX_REKOGNITION__ENDPOINT_URL", scripted.url)
    runner = CliRunner()
    done = runner.invoke(app, ["index", str(photos), "--index", url, "--analyzer", "exif", "-q"])
    assert done.exit_code == 0, done.output
    assert scripted.received == []
    done = runner.invoke(
        app, ["reindex", "--index", url, "--reanalyze", "--analyzer", "rekognition"]
    )
    assert done.exit_code == 0, done.output
    assert "re-analyzed 4; kept 0" in done.stderr
    assert "rekognition: calls 4, throttled 0, retried 0, failed 0" in done.stderr
    index = ElasticIndex.from_url(url)
    try:
        hits = index.search(SearchQuery(labels=["Scripted"], limit=10)).hits
        assert len(hits) == 4
        for hit in hits:
            assert hit.record.analyzers == {
                "rekognition": "detectlabels+general_labels+min55+max50"
            }
            assert hit.record.to_json()["rekognition"] == {"image": "Bytes"}
    finally:
        index.drop()
        index.close()


def test_watch_with_rekognition_indexes_a_new_file(
    scripted: ScriptedRekognition, tmp_path: Path, coco_images: list[Path]
):
    """`pixdex watch` semantics with the Rekognition analyzer: a file copied in is sent once."""
    import threading
    import time

    from pixdex.sources.watch import watch_folder

    folder = tmp_path / "watched"
    folder.mkdir()
    pipeline = build_pipeline(settings_for(tmp_path, scripted.url))
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=watch_folder,
        args=(folder, pipeline),
        kwargs={"stop_event": stop, "debounce": 0.3, "ready": ready},
        daemon=True,
    )
    thread.start()
    try:
        assert ready.wait(30)
        shutil.copy(coco_images[5], folder / "new.jpg")
        deadline = time.monotonic() + 20
        while pipeline.index.get(str(folder.resolve()), "new.jpg") is None:
            assert time.monotonic() < deadline, "the new file was not indexed"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    (call,) = scripted.calls()
    assert call.image_bytes == coco_images[5].read_bytes()
    record = pipeline.index.get(str(folder.resolve()), "new.jpg")
    assert [lb.Name for lb in record.Labels] == ["Scripted"]


def test_worker_with_rekognition_via_sqs(
    moto_server: Process, moto_bucket: str, sqs_queue, tmp_path: Path
):
    """`pixdex worker` with the Rekognition analyzer: an S3 notification from a real SQS server
    (ElasticMQ) is indexed by S3Object (no download), and the worker's stats carry the calls."""
    import threading
    import time

    from pixdex.integrations.s3.worker import run_worker

    client = s3_client(moto_server)
    key = "in/from-queue.jpg"
    data = next(Path(__file__).parent.parent.glob("samples/*.jpg")).read_bytes()
    etag = client.put_object(Bucket=moto_bucket, Key=key, Body=data)["ETag"].strip('"')
    sqs_queue.client.send_message(
        QueueUrl=sqs_queue.url,
        MessageBody=json.dumps(
            {"Records": [aws_record(moto_bucket, key, size=len(data), etag=etag)]}
        ),
    )
    settings = settings_for(tmp_path, moto_server.url, s3={"endpoint_url": moto_server.url})
    pipeline = build_pipeline(settings)
    stop, result = threading.Event(), {}

    def work() -> None:
        result["stats"] = run_worker(
            settings,
            sqs_queue.url,
            sqs=sqs_queue.client,
            wait_seconds=1,
            stop_event=stop,
            pipeline=pipeline,
        )

    thread = threading.Thread(target=work)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while pipeline.index.get(moto_bucket, key) is None:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    stats = result["stats"]
    assert (stats.indexed, stats.failed, stats.deleted) == (1, 0, 1)
    assert stats.remote == {"rekognition": {"calls": 1, "throttled": 0, "retried": 0, "failed": 0}}
    assert pipeline.index.get(moto_bucket, key).to_json()["rekognition"] == {"image": "S3Object"}
    assert object_gets(moto_server, moto_bucket) == []
