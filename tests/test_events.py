"""Parsing S3 event notifications in every shape they arrive in, with keys that need decoding."""

from __future__ import annotations

import json
import logging

from _minio import aws_record, sqs_lambda_event

from pixdex.integrations.s3.events import Change, latest_per_object, parse_notification

TRICKY_KEYS = [
    "photos/café/ñandú 1.jpg",  # non-ASCII + space: "caf%C3%A9/%C3%B1and%C3%BA+1.jpg"
    "photos/a+b = c.jpg",  # a literal '+' is "%2B", a space is '+'
    "photos/100% real (1).jpeg",
    "photos/日本語/写真.png",
]

# A payload MinIO really posted to the webhook (captured from the MinIO these tests build):
# MinIO uses Go's url.QueryEscape, which also encodes '/' as %2F.
MINIO_PAYLOAD = {
    "EventName": "s3:ObjectCreated:Put",
    "Key": "bucket-one/photos/café/ñandú 1+2.jpg",
    "Records": [
        {
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": "2026-11-24T22:07:52.350Z",
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {
                "principalId": "minioadmin",
                "region": "",
                "sourceIPAddress": "127.0.0.1",
            },
            "responseElements": {
                "x-amz-request-id": "18EB1A8DB3D887D9",
                "x-minio-origin-endpoint": "http://127.0.0.1:9388",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {
                    "name": "bucket-one",
                    "ownerIdentity": {"principalId": "minioadmin"},
                    "arn": "arn:aws:s3:::bucket-one",
                },
                "object": {
                    "key": "photos%2Fcaf%C3%A9%2F%C3%B1and%C3%BA+1%2B2.jpg",
                    "size": 1,
                    "eTag": "9dd4e461268c8034f5c8564e155c67a6",
                    "contentType": "binary/octet-stream",
                    "sequencer": "18EB1A8DB3E1D4ED",
                },
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "Boto3/1.44.8"},
        }
    ],
}


def test_aws_s3_event_keys_are_url_decoded():
    event = {"Records": [aws_record("photos-bucket", k, size=10, etag="abc") for k in TRICKY_KEYS]}
    assert "+" in json.dumps(event) and "%C3%A9" in json.dumps(event)  # really encoded
    changes = parse_notification(event)
    assert [c.key for c in changes] == TRICKY_KEYS
    assert {(c.action, c.bucket, c.size, c.etag) for c in changes} == {
        ("created", "photos-bucket", 10, "abc")
    }


def test_removed_and_lifecycle_events_and_ignored_kinds():
    event = {
        "Records": [
            aws_record("b", "x.jpg", "ObjectRemoved:Delete"),
            aws_record("b", "y.jpg", "ObjectRemoved:DeleteMarkerCreated", version_id="v2"),
            aws_record("b", "z.jpg", "LifecycleExpiration:Delete"),
            aws_record("b", "r.jpg", "ObjectRestore:Completed"),
            aws_record("b", "t.jpg", "ObjectTagging:Put"),
            aws_record("b", "a.jpg", "ObjectAcl:Put"),
        ]
    }
    changes = parse_notification(event)
    assert [(c.action, c.key) for c in changes] == [
        ("removed", "x.jpg"),
        ("removed", "y.jpg"),
        ("removed", "z.jpg"),
        ("created", "r.jpg"),
    ]
    assert changes[1].version_id == "v2"


def test_sqs_body_and_sns_envelopes():
    s3_event = {"Records": [aws_record("b", "photos/café/ñandú 1.jpg", size=5)]}
    sns_envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:111122223333:pixdex",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(s3_event),
        "Timestamp": "2024-05-04T10:11:12.456Z",
    }
    # SQS message body (worker), SNS → SQS body, Lambda SQS batch, SNS → Lambda
    lambda_sns = {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {"Type": "Notification", "Message": json.dumps(s3_event)},
            }
        ]
    }
    for payload in (
        json.dumps(s3_event),
        json.dumps(sns_envelope),
        sqs_lambda_event([json.dumps(s3_event), json.dumps(sns_envelope)]),
        lambda_sns,
    ):
        changes = parse_notification(payload)
        assert changes and {c.key for c in changes} == {"photos/café/ñandú 1.jpg"}


def test_minio_webhook_payload():
    (change,) = parse_notification(json.dumps(MINIO_PAYLOAD).encode())
    assert change == Change(
        action="created",
        bucket="bucket-one",
        key="photos/café/ñandú 1+2.jpg",
        size=1,
        etag="9dd4e461268c8034f5c8564e155c67a6",
        sequencer="18EB1A8DB3E1D4ED",
        event="s3:ObjectCreated:Put",
    )


def test_eventbridge_events():
    def eb(kind: str, source: str = "aws.s3") -> dict:
        return {
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": kind,
            "source": source,
            "account": "111122223333",
            "time": "2021-11-12T00:00:00Z",
            "region": "ca-central-1",
            "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
            "detail": {
                "version": "0",
                "bucket": {"name": "amzn-s3-demo-bucket1"},
                "object": {"key": "my photo.jpg", "size": 5, "etag": "b1946ac9", "sequencer": "1"},
                "reason": "PutObject",
            },
        }

    assert [(c.action, c.key) for c in parse_notification(eb("Object Created"))] == [
        ("created", "my photo.jpg")
    ]
    assert [c.action for c in parse_notification(eb("Object Deleted"))] == ["removed"]
    assert parse_notification(eb("Object Tags Added")) == []
    assert parse_notification(eb("EC2 Instance State-change Notification", "aws.ec2")) == []


def test_test_events_and_foreign_or_malformed_payloads_are_logged_not_raised(caplog):
    caplog.set_level(logging.INFO, logger="pixdex.integrations.s3.events")
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-04T10:11:12.000Z",
        "Bucket": "photos-bucket",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    foreign = [
        test_event,
        "this is not json",
        b"\xff\xfe",
        "[1, 2, 3]",
        42,
        None,
        {"hello": "world"},
        {"Records": [{"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {}}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]},  # no object
        {"Records": "nope"},
        {"Type": "Notification", "Message": "not json either"},
    ]
    for payload in foreign:
        assert parse_notification(payload, origin="test payload") == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("s3:TestEvent" in m and "photos-bucket" in m for m in messages)
    assert any("not JSON" in m for m in messages)
    assert any("not an S3 event notification" in m for m in messages)
    assert any("aws:dynamodb" in m for m in messages)
    assert len(messages) >= len(foreign) - 1


def test_one_bad_record_does_not_hide_the_good_ones(caplog):
    good = aws_record("b", "ok.jpg", size=3)
    bad_encoding = aws_record("b", "x.jpg")
    bad_encoding["s3"]["object"]["key"] = "bad%FF%FE.jpg"  # not UTF-8 once decoded
    event = {"Records": [bad_encoding, {"eventName": "ObjectCreated:Put"}, good]}
    assert [c.key for c in parse_notification(event)] == ["ok.jpg"]
    assert sum("ignoring" in r.getMessage() for r in caplog.records) == 2


def test_latest_change_per_object_follows_the_sequencer():
    created = Change("created", "b", "k.jpg", sequencer="0A")
    removed = Change("removed", "b", "k.jpg", sequencer="009")  # shorter: compare padded
    other = Change("created", "b", "other.jpg")
    # delivered out of order: the removal (0x09) happened before the creation (0x0A)
    assert latest_per_object([created, other, removed]) == [created, other]
    assert latest_per_object([removed, created]) == [created]
    # without sequencers, arrival order decides
    a, b = Change("created", "b", "n.jpg"), Change("removed", "b", "n.jpg")
    assert latest_per_object([a, b]) == [b]
