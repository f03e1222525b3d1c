"""S3Source against a real MinIO: listing, filtering, fingerprints, fetch errors, throttling and
timeouts (injected by a proxy in front of MinIO), and resumable back-fill through the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from _minio import FaultProxy

from pixdex.errors import SourceError
from pixdex.integrations.aws import make_client
from pixdex.integrations.s3.source import S3Source, parse_s3_uri
from pixdex.sources import open_source


def put(client, bucket: str, key: str, data: bytes) -> str:
    return client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


def count_calls(client, operation: str) -> list[dict]:
    """Record the parameters of every ``operation`` the client sends (botocore's event hooks)."""
    calls: list[dict] = []
    client.meta.events.register(
        f"provide-client-params.s3.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_parse_uri():
    assert parse_s3_uri("s3://photos") == ("photos", "")
    assert parse_s3_uri("s3://photos/2024/") == ("photos", "2024/")
    with pytest.raises(SourceError, match="expected s3://bucket/prefix"):
        parse_s3_uri("s3:///x")
    with pytest.raises(SourceError):
        parse_s3_uri("http://photos/x")


def test_lists_images_under_the_prefix_across_pages(minio, s3_env, bucket):
    client = minio.client()
    names = [f"trip/day {i}/IMG_{i:03}.JPG" for i in range(5)]
    etags = {name: put(client, bucket, name, b"x" * (i + 1)) for i, name in enumerate(names)}
    put(client, bucket, "trip/notes.txt", b"not listed")
    put(client, bucket, "trip/folder/", b"")  # a console-made folder marker
    put(client, bucket, "elsewhere/x.jpg", b"outside the prefix")
    put(client, bucket, "trip/café/ñandú 1.jpeg", b"12")

    source = S3Source.from_uri(f"s3://{bucket}/trip/", page_size=2)
    list_calls = count_calls(source.client, "ListObjectsV2")
    refs = list(source.list())

    assert len(list_calls) >= 4  # 8 keys under the prefix, 2 per page
    assert [r.key for r in refs] == sorted(names + ["trip/café/ñandú 1.jpeg"], key=str.encode)
    by_key = {r.key: r for r in refs}
    for i, name in enumerate(names):
        ref = by_key[name]
        assert ref.fingerprint == ref.etag == etags[name]  # no quotes: events carry it bare
        assert ref.size == i + 1 and ref.bucket == bucket
        assert ref.uri == f"s3://{bucket}/{name}"
        assert ref.last_modified and ref.last_modified[:2] == "20"
    assert source.fetch(by_key["trip/café/ñandú 1.jpeg"]) == b"12"


def test_open_source_dispatches_s3_uris(minio, s3_env, bucket):
    source = open_source(f"s3://{bucket}/a/")
    assert isinstance(source, S3Source)
    assert (source.bucket, source.prefix) == (bucket, "a/")
    assert list(source.list()) == []


def test_listing_errors_are_clear(minio, s3_env, bucket, monkeypatch):
    with pytest.raises(SourceError, match="no such bucket: nope-not-here"):
        list(S3Source.from_uri("s3://nope-not-here/").list())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(SourceError, match="cannot list .*SignatureDoesNotMatch"):
        list(S3Source.from_uri(f"s3://{bucket}/").list())


def test_fetch_failures_have_reasons(minio, s3_env, bucket):
    client = minio.client()
    put(client, bucket, "big.jpg", b"x" * 5000)
    put(client, bucket, "doomed.jpg", b"y")
    source = S3Source.from_uri(f"s3://{bucket}/", max_bytes=1000)
    refs = {r.key: r for r in source.list()}
    gets = count_calls(source.client, "GetObject")

    with pytest.raises(SourceError, match=r"object too large: 5,000 bytes \(limit 1,000"):
        source.fetch(refs["big.jpg"])
    assert gets == []  # refused from the listed size, without downloading
    unsized = source.ref("big.jpg")  # e.g. from an event without a size
    with pytest.raises(SourceError, match="object too large"):
        source.fetch(unsized)

    client.delete_object(Bucket=bucket, Key="doomed.jpg")
    with pytest.raises(SourceError, match="deleted before it could be read"):
        source.fetch(refs["doomed.jpg"])
    assert source.transient == set()  # bad objects, not a passing condition
    assert source.head("doomed.jpg") is None
    head = source.head("big.jpg")
    assert head is not None and head.fingerprint == refs["big.jpg"].fingerprint


def test_throttling_is_retried_with_backoff(minio, s3_env, bucket):
    client = minio.client()
    put(client, bucket, "a.jpg", b"payload")
    throttled = {"left": 2}

    def plan(method: str, path: str) -> str | None:
        if method == "GET" and path.endswith("/a.jpg") and throttled["left"]:
            throttled["left"] -= 1
            return "slowdown"
        return None

    with FaultProxy(minio.endpoint, plan) as proxy:
        source = S3Source(bucket, client=make_client(endpoint_url=proxy.endpoint))
        assert source.fetch(source.ref("a.jpg")) == b"payload"
    assert [fault for _, _, fault in proxy.seen] == ["slowdown", "slowdown", None]


def test_throttling_that_outlasts_the_retries_is_transient(minio, s3_env, bucket):
    put(minio.client(), bucket, "a.jpg", b"payload")
    with FaultProxy(minio.endpoint, lambda m, p: "slowdown") as proxy:
        source = S3Source(bucket, client=make_client(endpoint_url=proxy.endpoint, max_attempts=3))
        with pytest.raises(SourceError, match="S3 unavailable after retries: Please reduce"):
            source.fetch(source.ref("a.jpg"))
    assert len(proxy.seen) == 3  # max_attempts
    assert source.transient == {"a.jpg"}  # event consumers redeliver it


def test_timeouts_and_dropped_connections_are_retried(minio, s3_env, bucket):
    put(minio.client(), bucket, "a.jpg", b"payload")
    faults = ["stall", "reset"]

    def plan(method: str, path: str) -> str | None:
        return faults.pop(0) if method == "GET" and faults else None

    with FaultProxy(minio.endpoint, plan, stall_seconds=2.5) as proxy:
        client = make_client(endpoint_url=proxy.endpoint, read_timeout=1, connect_timeout=1)
        source = S3Source(bucket, client=client)
        assert source.fetch(source.ref("a.jpg")) == b"payload"
    assert [fault for _, _, fault in proxy.seen] == ["stall", "reset", None]


def test_backfill_is_resumable_and_skips_unchanged_without_download(
    minio, s3_env, bucket, tiny_pipeline, coco_images: list[Path]
):
    client = minio.client()
    for path in coco_images[:6]:
        put(client, bucket, f"photos/{path.name}", path.read_bytes())
    put(client, bucket, "photos/broken.jpg", b"this is text, not a JPEG")
    put(client, bucket, "photos/readme.txt", b"ignored: not an image name")

    summary = tiny_pipeline.run(S3Source.from_uri(f"s3://{bucket}/photos/"))
    assert (summary.indexed, summary.failed, summary.unchanged) == (6, 1, 0)
    (failure,) = summary.failures
    assert failure.key == "photos/broken.jpg" and "not an image" in failure.reason
    assert [f.key for f in tiny_pipeline.index.failures(bucket)] == ["photos/broken.jpg"]
    record = tiny_pipeline.index.get(bucket, f"photos/{coco_images[0].name}")
    assert record is not None and record.etag == record.fingerprint
    assert record.uri == f"s3://{bucket}/photos/{coco_images[0].name}"
    assert record.Labels[0].Name in ("Landscape", "Portrait", "Square")

    # Re-run: nothing indexed is downloaded again (only the failed object is retried).
    source = S3Source.from_uri(f"s3://{bucket}/photos/")
    gets = count_calls(source.client, "GetObject")
    summary = tiny_pipeline.run(source)
    assert (summary.indexed, summary.unchanged, summary.failed) == (0, 6, 1)
    assert [g["Key"] for g in gets] == ["photos/broken.jpg"]

    # A replaced object (new ETag) is re-analysed; a deleted one is pruned.
    put(client, bucket, f"photos/{coco_images[0].name}", coco_images[7].read_bytes())
    client.delete_object(Bucket=bucket, Key=f"photos/{coco_images[1].name}")
    summary = tiny_pipeline.run(S3Source.from_uri(f"s3://{bucket}/photos/"), prune=True)
    assert (summary.indexed, summary.unchanged, summary.deleted) == (1, 4, 1)
    replaced = tiny_pipeline.index.get(bucket, f"photos/{coco_images[0].name}")
    assert replaced is not None and replaced.etag != record.etag
    assert tiny_pipeline.index.get(bucket, f"photos/{coco_images[1].name}") is None
