"""The Lambda handler called with real-shaped S3 and SQS events, against MinIO and a real index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _minio import FaultProxy, aws_record, sqs_lambda_event

from pixdex.integrations.aws import make_client
from pixdex.integrations.s3 import lambda_handler
from pixdex.integrations.s3.events import ChangeApplier

KEYS = ["uploads/café/ñandú 1.jpg", "uploads/a+b = c.jpg", "uploads/plain.jpg"]


@pytest.fixture
def applier(minio, s3_env, tiny_pipeline):
    applier = ChangeApplier(tiny_pipeline)
    lambda_handler.configure(applier)
    yield applier
    lambda_handler.configure(None)


def upload(minio, bucket: str, key: str, data: bytes) -> dict:
    etag = minio.client().put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
    return aws_record(bucket, key, size=len(data), etag=etag)


def test_s3_event_indexes_then_deletes(minio, bucket, applier, coco_images: list[Path]):
    photos = zip(KEYS, coco_images[:3], strict=True)
    records = [upload(minio, bucket, key, path.read_bytes()) for key, path in photos]
    result = lambda_handler.handler({"Records": records}, None)
    assert result["indexed"] == 3 and result["failed"] == 0 and result["retry"] == 0
    index = applier.pipeline.index
    for key in KEYS:
        record = index.get(bucket, key)
        assert record is not None and record.key == key and record.Labels

    # The same event again (S3 delivers at least once): nothing re-analysed.
    assert lambda_handler.handler({"Records": records}, None)["unchanged"] == 3

    minio.client().delete_object(Bucket=bucket, Key=KEYS[0])
    removals = [aws_record(bucket, k, "ObjectRemoved:Delete") for k in KEYS[:2]]
    result = lambda_handler.handler({"Records": removals}, None)
    # KEYS[1] still exists in the bucket (a stale or forged event): it stays indexed.
    assert result["deleted"] == 1
    assert index.get(bucket, KEYS[0]) is None
    assert index.get(bucket, KEYS[1]) is not None


def test_bad_objects_are_failures_not_retries(minio, bucket, applier):
    records = [
        upload(minio, bucket, "uploads/notes.jpg", b"plain text pretending to be a JPEG"),
        aws_record(bucket, "uploads/vanished.jpg", size=10, etag="abc"),  # never existed
        aws_record(bucket, "uploads/readme.txt", size=10),  # not an image name: ignored
    ]
    result = lambda_handler.handler({"Records": records}, None)
    assert result == {
        "indexed": 0,
        "unchanged": 0,
        "deleted": 0,
        "ignored": 1,
        "failed": 2,
        "retry": 0,
    }
    reasons = {f.key: f.reason for f in applier.pipeline.index.failures(bucket)}
    assert "not an image" in reasons["uploads/notes.jpg"]
    assert "deleted before it could be read" in reasons["uploads/vanished.jpg"]


def test_test_event_and_foreign_events_are_acknowledged(applier):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    assert lambda_handler.handler(test_event, None)["indexed"] == 0
    assert lambda_handler.handler({"source": "aws.ec2", "detail-type": "x", "detail": {}}, None)


def test_sqs_batch_reports_only_the_messages_to_retry(
    minio, s3_env, bucket, tiny_pipeline, coco_images: list[Path]
):
    good = upload(minio, bucket, "uploads/good one.jpg", coco_images[0].read_bytes())
    throttled = upload(minio, bucket, "uploads/throttled.jpg", coco_images[1].read_bytes())
    broken = upload(minio, bucket, "uploads/broken.jpg", b"GIF89a truncated")
    sns_wrapped = json.dumps(
        {"Type": "Notification", "Message": json.dumps({"Records": [good]}), "TopicArn": "t"}
    )
    event = sqs_lambda_event(
        [
            json.dumps({"Records": [good]}),
            json.dumps({"Records": [throttled]}),
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}),
            "{not json",
            json.dumps({"Records": [broken]}),
            sns_wrapped,
        ]
    )

    def plan(method: str, path: str) -> str | None:
        return "slowdown" if path.endswith("/uploads/throttled.jpg") else None

    with FaultProxy(minio.endpoint, plan) as proxy:
        client = make_client(endpoint_url=proxy.endpoint, max_attempts=2)
        lambda_handler.configure(ChangeApplier(tiny_pipeline, client=client))
        try:
            result = lambda_handler.handler(event, None)
        finally:
            lambda_handler.configure(None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    index = tiny_pipeline.index
    assert index.get(bucket, "uploads/good one.jpg") is not None
    assert index.get(bucket, "uploads/throttled.jpg") is None
    failures = {f.key: f.reason for f in index.failures(bucket)}
    assert set(failures) == {"uploads/broken.jpg", "uploads/throttled.jpg"}
    assert "S3 unavailable after retries" in failures["uploads/throttled.jpg"]
    assert "not an image" in failures["uploads/broken.jpg"]


def test_direct_invocation_raises_so_lambda_retries(
    minio, s3_env, bucket, tiny_pipeline, coco_images
):
    record = upload(minio, bucket, "uploads/x.jpg", coco_images[0].read_bytes())
    with FaultProxy(minio.endpoint, lambda m, p: "slowdown" if m == "GET" else None) as proxy:
        client = make_client(endpoint_url=proxy.endpoint, max_attempts=2)
        lambda_handler.configure(ChangeApplier(tiny_pipeline, client=client))
        try:
            with pytest.raises(lambda_handler.RetryableError, match="1 object"):
                lambda_handler.handler({"Records": [record]}, None)
        finally:
            lambda_handler.configure(None)
