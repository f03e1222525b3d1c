"""The HTTP API against a real SQLite index of the coco128 photos.

Records carry labels made from COCO's own annotations (ground truth: which objects each photo
shows, Person boxes from the annotated boxes, COCO super-categories as parents), so the expected
answer of every search is known independently of any model. One test at the end runs the real
label analyzers through the Rekognition-compatible endpoint (and through boto3).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import pytest
from _http import LocalClient
from fastapi.testclient import TestClient
from PIL import Image

from pixdex.api.app import create_app
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.records import Failure, Instance, Label, Named, Record

REPO = Path(__file__).resolve().parents[1]
COCO = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data" / "coco128"


# --- test data: records from COCO ground truth -----------------------------------------------


def coco_records(coco_dir: Path = COCO) -> list[Record]:
    """One record per coco128 photo; labels = the annotated categories (Title Case), confidence
    grows with the area the category covers, parents = COCO super-category, Person has the alias
    Human and its annotated boxes as Instances."""
    data = json.loads((coco_dir / "annotations" / "instances.json").read_text())
    categories = {c["id"]: c for c in data["categories"]}
    annotations: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        annotations[ann["image_id"]].append(ann)
    folder = (coco_dir / "images").resolve()
    records = []
    for img in sorted(data["images"], key=lambda i: i["file_name"]):
        path = folder / img["file_name"]
        raw = path.read_bytes()
        with Image.open(path) as pic:
            width, height = pic.size
            fmt = pic.format
        per_name: dict[str, list[dict]] = defaultdict(list)
        for ann in annotations[img["id"]]:
            per_name[categories[ann["category_id"]]["name"]].append(ann)
        labels = []
        for name, anns in per_name.items():
            cover = min(1.0, sum(a["area"] for a in anns) / (width * height))
            parent = categories[anns[0]["category_id"]]["supercategory"].title()
            label = Label(
                Name=name.title(),
                Confidence=round(50 + 49.9 * math.sqrt(cover), 3),
                Parents=[Named(Name=parent)] if parent.lower() != name else [],
            )
            if name == "person":
                label.Aliases = [Named(Name="Human")]
                label.Instances = [
                    Instance(
                        BoundingBox={
                            "Left": a["bbox"][0] / width,
                            "Top": a["bbox"][1] / height,
                            "Width": a["bbox"][2] / width,
                            "Height": a["bbox"][3] / height,
                        },
                        Confidence=90.0,
                    )
                    for a in anns
                ]
            labels.append(label)
        labels.sort(key=lambda lb: (-lb.Confidence, lb.Name))
        records.append(
            Record(
                bucket=str(folder),
                key=img["file_name"],
                uri=path.as_uri(),
                Labels=labels,
                timestamp=img["date_captured"].replace(" ", "T") + ".000000",
                size=len(raw),
                content_sha256=hashlib.sha256(raw).hexdigest(),
                fingerprint=f"{len(raw)}:test",
                width=width,
                height=height,
                format=fmt,
                LabelModelVersion="coco-ground-truth",
                analyzers={"coco-ground-truth": "1"},
                ImageProperties={
                    "Quality": {"Brightness": 50.0},
                    "DominantColors": [{"HexCode": "#336699", "PixelPercent": 40.0}],
                },
                exif={"Software": "test"},
            )
        )
    return records


def build_index(path: Path) -> tuple[SqliteIndex, list[Record]]:
    records = coco_records()
    index = SqliteIndex(path)
    assert index.upsert(records) == []
    return index, records


#: the search's default floor: the min_confidence setting
FLOOR = Settings.model_fields["min_confidence"].default


def with_label(records: list[Record], term: str, floor: float = FLOOR) -> dict[str, float]:
    """id → confidence of the best label ≥ ``floor`` whose name, parent or alias is ``term``."""
    out: dict[str, float] = {}
    for record in records:
        matches = [c for t, c in record.label_terms() if t.lower() == term.lower() and c >= floor]
        if matches:
            out[record.id] = max(matches)
    return out


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> tuple[SqliteIndex, list[Record], Path]:
    if not (COCO / "images").is_dir():
        pytest.fail(f"coco128 not found at {COCO} (set PIXDEX_SHARED)")
    tmp = tmp_path_factory.mktemp("api")
    index, records = build_index(tmp / "index.db")
    yield index, records, tmp
    index.close()


@pytest.fixture(scope="module")
def client(coco) -> TestClient:
    index, _, tmp = coco
    settings = Settings(index=index.location, cache_dir=tmp / "cache")
    with LocalClient(create_app(settings, index=index)) as test_client:
        yield test_client


def all_hits(client: TestClient, **params) -> list[dict]:
    hits, offset = [], 0
    while True:
        page = client.get("/api/search", params={**params, "limit": 50, "offset": offset}).json()
        hits += page["hits"]
        offset += 50
        if offset >= page["total"]:
            return hits


# --- search ------------------------------------------------------------------------------------


def test_label_search_finds_exactly_the_annotated_photos_best_first(client, coco):
    _, records, _ = coco
    expected = with_label(records, "dog")
    assert expected, "coco128 has dogs"
    response = client.get("/api/search", params={"label": "DOG", "limit": 200})
    assert response.status_code == 200
    body = response.json()
    assert body["min_confidence"] == FLOOR == 55  # the default floor: what DetectLabels emits
    assert body["total"] == len(expected)
    assert {h["id"] for h in body["hits"]} == set(expected)
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert all(h["score"] == pytest.approx(expected[h["id"]]) for h in body["hits"])
    hit = body["hits"][0]
    assert set(hit) >= {"id", "bucket", "key", "uri", "score", "width", "height", "timestamp"}
    assert "Dog" in {lb["Name"] for lb in hit["Labels"]}
    assert len(hit["Labels"]) <= 5 and set(hit["Labels"][0]) == {"Name", "Confidence"}
    assert {"name": "Dog", "count": len(expected)} in body["facets"]
    # every stored label with an explicit floor of 0, and the hits' labels follow the floor
    weak = with_label(records, "dog", floor=0)
    assert len(weak) > len(expected)
    everything = client.get("/api/search", params={"label": "dog", "min_confidence": 0}).json()
    assert everything["min_confidence"] == 0 and everything["total"] == len(weak)
    assert all(lb["Confidence"] >= FLOOR for h in body["hits"] for lb in h["Labels"])
    assert any(lb["Confidence"] < FLOOR for h in everything["hits"] for lb in h["Labels"])


def test_parents_and_aliases_match(client, coco):
    _, records, _ = coco
    animals = with_label(records, "animal")
    assert {"Dog", "Bird", "Elephant"} <= {
        lb.Name for r in records if r.id in animals for lb in r.Labels
    }
    assert {h["id"] for h in all_hits(client, label="Animal")} == set(animals)
    humans = with_label(records, "human")
    assert {h["id"] for h in all_hits(client, label="human")} == set(humans)
    assert humans == with_label(records, "person")


def test_several_labels_all_must_match_and_min_confidence(client, coco):
    _, records, _ = coco
    people, cars = with_label(records, "person"), with_label(records, "car")
    both = set(people) & set(cars)
    assert {h["id"] for h in all_hits(client, label=["person", "car"])} == both
    strong = {i for i, c in people.items() if c >= 80}
    assert 0 < len(strong) < len(people)
    hits = all_hits(client, label="person", min_confidence=80)
    assert {h["id"] for h in hits} == strong
    assert all(h["score"] >= 80 for h in hits)


def test_free_text_matches_labels_and_paths(client, coco):
    _, records, _ = coco
    by_text = {h["id"] for h in all_hits(client, q="elephant")}
    assert by_text == set(with_label(records, "elephant"))
    one = records[5]
    found = all_hits(client, q=one.key.removesuffix(".jpg"))
    assert [h["id"] for h in found] == [one.id]


def test_browse_everything_and_paginate_without_overlap(client, coco):
    _, records, _ = coco
    pages = [
        client.get("/api/search", params={"limit": 30, "offset": o}).json()
        for o in range(0, 150, 30)
    ]
    assert all(p["total"] == len(records) for p in pages)
    ids = [h["id"] for p in pages for h in p["hits"]]
    assert len(ids) == len(set(ids)) == len(records)
    assert pages[0]["facets"][0] == {"name": "Person", "count": len(with_label(records, "person"))}
    assert client.get("/api/search", params={"facets": 0}).json()["facets"] == []


def test_bucket_prefix_and_date_filters(client, coco):
    _, records, _ = coco
    prefix = "00000000004"
    hits = all_hits(client, prefix=prefix)
    assert {h["id"] for h in hits} == {r.id for r in records if r.key.startswith(prefix)}
    assert all_hits(client, bucket=records[0].bucket, prefix=prefix) == hits
    assert client.get("/api/search", params={"bucket": "/elsewhere"}).json()["total"] == 0

    stamps = sorted(r.timestamp for r in records)
    middle = stamps[len(stamps) // 2]
    since_ids = {h["id"] for h in all_hits(client, since=middle)}
    assert since_ids == {r.id for r in records if r.timestamp >= middle}
    day = middle[:10]
    until_ids = {h["id"] for h in all_hits(client, until=day)}  # the whole day included
    assert until_ids == {r.id for r in records if r.timestamp[:10] <= day}
    # An offset-aware instant is compared in UTC, like the stored timestamps.
    record = next(r for r in records if int(r.timestamp[11:13]) < 22)
    t = record.timestamp
    shifted = f"{t[:11]}{int(t[11:13]) + 2:02d}{t[13:19]}+02:00"
    exact = all_hits(client, since=shifted, until=shifted)
    assert record.id in {h["id"] for h in exact}
    assert all(h["timestamp"] == t for h in exact)


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"min_confidence": 101}, "min_confidence"),
        ({"min_confidence": "high"}, "min_confidence"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-45"}, "until"),
        ({"label": "x" * 201}, "label"),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, params, mentions):
    response = client.get("/api/search", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request" and body["status"] == 400
    assert mentions in body["message"]


# --- one image ---------------------------------------------------------------------------------


def test_image_record_and_unknown_id(client, coco):
    _, records, _ = coco
    person = next(r for r in records if r.Labels and r.Labels[0].Name == "Person")
    response = client.get(f"/api/images/{person.id}")
    assert response.status_code == 200
    assert response.json() == person.to_json()
    assert response.json()["Labels"][0]["Instances"][0]["BoundingBox"]["Width"] > 0
    for path in ("/api/images/nope", "/api/images/nope/file", "/api/images/nope/thumb"):
        missing = client.get(path)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": "not_found",
            "message": "no image with id 'nope'",
            "status": 404,
        }
    assert client.get("/api/nothing-here").json()["error"] == "not_found"


def test_file_is_the_original_bytes(client, coco):
    _, records, _ = coco
    record = records[3]
    response = client.get(f"/api/images/{record.id}/file")
    assert response.status_code == 200
    assert response.content == (Path(record.bucket) / record.key).read_bytes()
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert record.key in response.headers["content-disposition"]
    head = client.head(f"/api/images/{record.id}/file")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(record.size)


def test_file_serving_refuses_escapes_and_reports_gone_files(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (folder / "link.jpg").symlink_to(secret)  # swapped in after indexing
    good = folder / "ok.jpg"
    Image.new("RGB", (40, 30), "red").save(good)
    index = SqliteIndex(tmp_path / "index.db")
    base = {"bucket": str(folder), "format": "JPEG", "uri": good.as_uri()}
    escapes = [
        Record(key="../secret.txt", **base),
        Record(key=str(secret), **base),
        Record(key="link.jpg", **base),
    ]
    gone = Record(key="gone.jpg", **base)
    ok = Record(key="ok.jpg", **base)
    assert index.upsert([*escapes, gone, ok]) == []
    client = LocalClient(create_app(Settings(index=index.location, cache_dir=tmp_path), index))
    for record in escapes:
        response = client.get(f"/api/images/{record.id}/file")
        assert response.status_code == 403, record.key
        assert "outside" in response.json()["message"]
        assert b"not for the web" not in response.content
        assert client.get(f"/api/images/{record.id}/thumb").status_code == 403
    response = client.get(f"/api/images/{gone.id}/file")
    assert response.status_code == 404 and "gone" in response.json()["message"]
    assert client.get(f"/api/images/{ok.id}/file").content == good.read_bytes()
    # A path in place of an id is just an unknown id.
    assert client.get("/api/images/..%2F..%2Fsecret.txt/file").status_code == 404


def test_thumbnails_are_jpeg_sized_cached_and_conditional(coco, tmp_path: Path):
    index, records, _ = coco
    settings = Settings(index=index.location, cache_dir=tmp_path / "cache")
    record = next(r for r in records if r.width == 640)
    with LocalClient(create_app(settings, index)) as client:
        first = client.get(f"/api/images/{record.id}/thumb", params={"size": 256})
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert first.headers["x-thumbnail-source"] == "made"
        with Image.open(io.BytesIO(first.content)) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 256
            assert thumb.size[0] / thumb.size[1] == pytest.approx(
                record.width / record.height, 0.02
            )
        again = client.get(f"/api/images/{record.id}/thumb", params={"size": 256})
        assert again.headers["x-thumbnail-source"] == "memory" and again.content == first.content
        etag = first.headers["etag"]
        not_modified = client.get(
            f"/api/images/{record.id}/thumb", params={"size": 256}, headers={"If-None-Match": etag}
        )
        assert not_modified.status_code == 304 and not_modified.content == b""
        bad = client.get(f"/api/images/{record.id}/thumb", params={"size": 100})
        assert bad.status_code == 400 and "256" in bad.json()["message"]
    assert list((tmp_path / "cache" / "thumbs").rglob("*.jpg"))
    with LocalClient(create_app(settings, index)) as restarted:  # disk cache survives a restart
        disk = restarted.get(f"/api/images/{record.id}/thumb", params={"size": 256})
        assert disk.headers["x-thumbnail-source"] == "disk" and disk.content == first.content


def test_thumbnail_follows_exif_orientation_and_reports_corrupt_files(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    Image.new("RGB", (200, 100), "blue").save(folder / "rotated.jpg", exif=exif)
    (folder / "broken.jpg").write_bytes((folder / "rotated.jpg").read_bytes()[:200])
    index = SqliteIndex(tmp_path / "index.db")
    rotated = Record(bucket=str(folder), key="rotated.jpg", format="JPEG")
    broken = Record(bucket=str(folder), key="broken.jpg", format="JPEG")
    index.upsert([rotated, broken])
    client = LocalClient(create_app(Settings(index=index.location, cache_dir=tmp_path), index))
    response = client.get(f"/api/images/{rotated.id}/thumb", params={"size": 128})
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.size == (64, 128)
    response = client.get(f"/api/images/{broken.id}/thumb", params={"size": 128})
    assert response.status_code == 422
    assert "broken.jpg" in response.json()["message"]


def test_s3_images_redirect_to_presigned_urls_stream_and_thumbnail(
    minio, s3_env, bucket, coco, tmp_path: Path
):
    """Records of s3:// objects on a real MinIO: the browser is sent to a presigned URL, or
    pixdex streams the object (proxy=true); thumbnails read it with the same credentials."""
    import httpx

    _, records, _ = coco
    source = records[7]
    data = (Path(source.bucket) / source.key).read_bytes()
    key = "holiday 2024/été/" + source.key  # spaces and non-ASCII survive presigning
    minio.client().put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
    record = Record.model_validate(
        {**source.to_json(), "bucket": bucket, "key": key, "uri": f"s3://{bucket}/{key}", "id": ""}
    )
    gone = Record(bucket=bucket, key="deleted.jpg", uri=f"s3://{bucket}/deleted.jpg", format="JPEG")
    index = SqliteIndex(tmp_path / "index.db")
    index.upsert([record, gone])
    settings = Settings(
        index=index.location, cache_dir=tmp_path, s3={"endpoint_url": minio.endpoint}
    )
    client = LocalClient(create_app(settings, index))

    redirect = client.get(f"/api/images/{record.id}/file", follow_redirects=False)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(f"{minio.endpoint}/{bucket}/") and "X-Amz-Signature=" in location
    fetched = httpx.get(location)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["content-type"] == "image/jpeg"

    proxied = client.get(f"/api/images/{record.id}/file", params={"proxy": "true"})
    assert proxied.status_code == 200 and proxied.content == data
    assert proxied.headers["content-length"] == str(len(data))

    thumb = client.get(f"/api/images/{record.id}/thumb", params={"size": 128})
    with Image.open(io.BytesIO(thumb.content)) as picture:
        assert max(picture.size) == 128

    missing = client.get(f"/api/images/{gone.id}/thumb")
    assert missing.status_code == 404 and "gone" in missing.json()["message"]
    assert client.get(f"/api/images/{gone.id}/file", params={"proxy": "true"}).status_code == 404


# --- index-level endpoints ---------------------------------------------------------------------


def test_stats_failures_and_health(coco, tmp_path: Path):
    _, records, _ = coco
    index = SqliteIndex(tmp_path / "index.db")
    index.upsert(records[:10])
    index.record_failures(
        [
            Failure(
                bucket="/photos",
                key="bad.jpg",
                reason="not an image, or a format Pillow cannot read",
            )
        ]
    )
    client = LocalClient(create_app(Settings(index=index.location, cache_dir=tmp_path), index))
    stats = client.get("/api/stats").json()
    assert stats["records"] == 10 and stats["failures"] == 1
    assert stats["location"] == index.location
    assert stats["model_versions"] == [{"version": "coco-ground-truth", "count": 10}]
    assert stats["top_labels"][0]["count"] >= stats["top_labels"][-1]["count"]
    failures = client.get("/api/failures").json()
    assert failures["count"] == 1
    assert failures["failures"][0]["key"] == "bad.jpg"
    assert "Pillow" in failures["failures"][0]["reason"]
    assert client.get("/api/failures", params={"bucket": "/other"}).json()["count"] == 0
    # open to probes without a token, so it names nothing: no index location
    assert client.get("/healthz").json() == {"status": "ok", "records": 10}


def test_unusable_index_is_503_with_the_reason(tmp_path: Path):
    settings = Settings(index="bogus://somewhere/photos", cache_dir=tmp_path)
    client = LocalClient(create_app(settings))
    for path in ("/api/search?q=dog", "/healthz", "/api/stats", "/api/images/x"):
        response = client.get(path)
        assert response.status_code == 503, path
        body = response.json()
        assert body["error"] == "unavailable"
        # the reason, without the server's configuration (the server's log has it in full)
        assert "unknown index URL '<index>': use a file path" in body["message"]
        assert "bogus://somewhere" not in body["message"]
    # The gallery page itself still loads, so it can show the reason.
    assert client.get("/").status_code == 200


def test_index_opened_from_settings_and_reopened_after_failure(coco, tmp_path: Path):
    _, records, _ = coco
    db = tmp_path / "index.db"
    db.mkdir()  # something that is not an SQLite file is in the way
    settings = Settings(index=str(db), cache_dir=tmp_path)
    with LocalClient(create_app(settings)) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        message = response.json()["message"]
        assert "cannot open SQLite index <index>" in message and str(tmp_path) not in message
        db.rmdir()
        SqliteIndex(db).upsert(records[:3])
        assert client.get("/healthz").json()["records"] == 3


def test_metrics_count_requests_by_route_and_time_searches(coco, tmp_path: Path):
    index, records, _ = coco
    client = LocalClient(create_app(Settings(index=index.location, cache_dir=tmp_path), index))
    for _ in range(3):
        client.get("/api/search", params={"label": "dog"})
    client.get("/api/search", params={"limit": 0})
    client.get("/api/images/unknown")
    client.get(f"/api/images/{records[0].id}")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'pixdex_http_requests_total{method="GET",path="/api/search",status="200"} 3.0' in text
    assert 'pixdex_http_requests_total{method="GET",path="/api/search",status="400"} 1.0' in text
    assert (
        'pixdex_http_requests_total{method="GET",path="/api/images/{image_id}",status="404"} 1.0'
        in text
    )
    assert "pixdex_search_duration_seconds_count 3.0" in text
    assert 'pixdex_search_duration_seconds_bucket{le="+Inf"} 3.0' in text


def test_gallery_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="static/app.js"' in page.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    # Everything the page loads is local: no http(s) URLs in the gallery's own files.
    web = Path(__file__).resolve().parents[1] / "src" / "pixdex" / "web"
    for name in ("index.html", "app.js", "style.css"):
        assert (
            "http://" not in (web / name).read_text() and "https://" not in (web / name).read_text()
        )
    schema = client.get("/openapi.json").json()
    assert {"/api/search", "/api/images/{image_id}", "/rekognition/detect-labels"} <= set(
        schema["paths"]
    )
    if importlib.util.find_spec("pixdex.integrations.s3.webhook") is not None:
        assert "/webhooks/minio" in schema["paths"]


# --- Rekognition-compatible endpoint -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "mentions"),
    [
        (b"not json", "InvalidParameterException", "not JSON"),
        (b"[]", "InvalidParameterException", "JSON object"),
        (b"{}", "InvalidParameterException", "Image"),
        (json.dumps({"Image": {"Bytes": "***"}}).encode(), "InvalidParameterException", "base64"),
        (
            json.dumps({"Image": {"Bytes": "AAAA"}, "MaxLabels": -1}).encode(),
            "InvalidParameterException",
            "MaxLabels",
        ),
        (
            json.dumps({"Image": {"Bytes": "AAAA"}, "MinConfidence": 120}).encode(),
            "InvalidParameterException",
            "MinConfidence",
        ),
        (
            json.dumps(
                {"Image": {"Bytes": base64.b64encode(b"0" * (5 * 2**20 + 1)).decode()}}
            ).encode(),
            "ImageTooLargeException",
            "limit",
        ),
        (b"x" * (8 * 2**20), "ImageTooLargeException", "request is"),
    ],
)
def test_detect_labels_rejects_bad_requests_like_rekognition(client, body, kind, mentions):
    response = client.post("/rekognition/detect-labels", content=body)
    assert response.status_code == 400
    assert response.json()["__type"] == kind
    assert mentions in response.json()["Message"]
    assert response.headers["x-amzn-errortype"] == kind


def test_aws_protocol_door_checks_the_operation(client):
    response = client.post(
        "/rekognition",
        content=b"{}",
        headers={"X-Amz-Target": "RekognitionService.DetectFaces"},
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"


ANALYZERS_MISSING = importlib.util.find_spec("pixdex.analyzers.labels") is None


@pytest.mark.skipif(
    ANALYZERS_MISSING, reason="pixdex.analyzers.labels (the local label model) is not written yet"
)
def test_detect_labels_with_the_real_analyzers_over_http_and_boto3(coco, tmp_path: Path):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from pixdex.analyzers.detect import LabelDetector
    from pixdex.api.server import BackgroundServer

    index, records, _ = coco
    dog = max(records, key=lambda r: with_label([r], "dog").get(r.id, 0))
    data = (Path(dog.bucket) / dog.key).read_bytes()
    settings = Settings(index=index.location)  # default cache dir: reuse the built model
    expected = LabelDetector(settings).detect_bytes(data, max_labels=5, min_confidence=20)
    assert "Dog" in {lb["Name"] for lb in expected["Labels"]}

    app = create_app(settings, index)
    payload = {
        "Image": {"Bytes": base64.b64encode(data).decode()},
        "MaxLabels": 5,
        "MinConfidence": 20,
    }
    with LocalClient(app) as client:
        response = client.post("/rekognition/detect-labels", json=payload)
        assert response.status_code == 200
        assert response.json() == json.loads(json.dumps(expected))
        junk = client.post(
            "/rekognition/detect-labels",
            json={"Image": {"Bytes": base64.b64encode(b"GIF89a-not-really").decode()}},
        )
        assert junk.status_code == 400
        assert junk.json()["__type"] == "InvalidImageFormatException"

    with BackgroundServer(app) as server:  # an unmodified AWS SDK pointed at pixdex
        rekognition = boto3.client(
            "rekognition",
            endpoint_url=f"{server.url}/rekognition",
            region_name="us-east-1",
            aws_access_key_id="any",
            aws_secret_access_key="any",
            config=Config(retries={"max_attempts": 1}),
        )
        answer = rekognition.detect_labels(Image={"Bytes": data}, MaxLabels=5, MinConfidence=20)
        assert answer["Labels"] == expected["Labels"]
        assert answer["LabelModelVersion"] == expected["LabelModelVersion"]
        with pytest.raises(ClientError) as error:
            rekognition.detect_labels(Image={"Bytes": b"not an image"})
        assert error.value.response["Error"]["Code"] == "InvalidImageFormatException"
