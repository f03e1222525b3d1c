"""MinIO bucket notifications → the pixdex webhook → the index, end to end on a real MinIO whose
webhook target is configured with MINIO_NOTIFY_WEBHOOK_* env vars (see tests/_minio.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _minio import WEBHOOK_ARN, serve_app
from fastapi import FastAPI

from pixdex.config import Settings
from pixdex.integrations.s3 import webhook as webhooks
from pixdex.integrations.s3.events import ChangeApplier

KEYS = ["photos/café/ñandú 1.jpg", "photos/a+b = c.jpg", "photos/deep/er/x.png"]


def wait_for(condition: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def notify_webhook(client, bucket: str, prefix: str = "photos/") -> None:
    """The bucket notification, set without `mc`: MinIO's webhook target ARN."""
    client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "pixdex",
                    "QueueArn": WEBHOOK_ARN,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )


@pytest.fixture
def app(minio, s3_env, bucket, tiny_pipeline):
    app = FastAPI()
    app.include_router(webhooks.router)
    settings = Settings(
        index=tiny_pipeline.index.location,
        s3={
            "webhook_token": minio.webhook_token,
            "webhook_sources": [f"s3://{bucket}/photos/"],
            "endpoint_url": minio.endpoint,
        },
    )
    webhooks.configure(app, settings, applier=ChangeApplier(tiny_pipeline), batch_window=0.1)
    client = minio.client()
    notify_webhook(client, bucket)
    yield app
    client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    webhooks.shutdown(app, timeout=5)


def png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(buffer, "PNG")
    return buffer.getvalue()


def test_uploads_and_deletes_flow_into_the_index(
    app, minio, bucket, tiny_pipeline, coco_images: list[Path]
):
    client = minio.client()
    index = tiny_pipeline.index
    with serve_app(app, minio.webhook_port):
        client.put_object(Bucket=bucket, Key=KEYS[0], Body=coco_images[0].read_bytes())
        client.put_object(Bucket=bucket, Key=KEYS[1], Body=coco_images[1].read_bytes())
        client.put_object(Bucket=bucket, Key=KEYS[2], Body=png_bytes())
        client.put_object(Bucket=bucket, Key="photos/broken.jpg", Body=b"<html>oops</html>")
        client.put_object(Bucket=bucket, Key="photos/notes.txt", Body=b"not an image name")
        client.put_object(Bucket=bucket, Key="elsewhere/y.jpg", Body=png_bytes())  # filtered
        wait_for(lambda: len(index.known(bucket)) == 3, what="3 records")
        wait_for(lambda: len(index.failures(bucket)) == 1, what="1 failure")

        assert sorted(index.known(bucket)) == sorted(KEYS)
        record = index.get(bucket, KEYS[2])
        assert record is not None and (record.width, record.height) == (40, 20)
        assert record.Labels[0].Name == "Landscape"
        (failure,) = index.failures(bucket)
        assert failure.key == "photos/broken.jpg" and "not an image" in failure.reason

        client.delete_object(Bucket=bucket, Key=KEYS[0])
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": KEYS[1]}, {"Key": "photos/broken.jpg"}]}
        )
        wait_for(lambda: sorted(index.known(bucket)) == [KEYS[2]], what="deletions")
        wait_for(lambda: index.failures(bucket) == [], what="failure cleared")


def test_token_is_required(app, minio):
    with serve_app(app, minio.webhook_port) as url:
        endpoint = f"{url}/webhooks/minio"
        event = {"EventName": "s3:ObjectCreated:Put", "Key": "b/k.jpg", "Records": []}
        assert httpx.post(endpoint, json=event).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(endpoint, json=event, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {minio.webhook_token}"}
        response = httpx.post(endpoint, json=event, headers=right)
        assert response.status_code == 200 and response.json() == {"accepted": 0}
        junk = httpx.post(endpoint, content=b"\x00 not json", headers=right)
        assert junk.status_code == 200 and junk.json() == {"accepted": 0}
        assert httpx.get(endpoint).status_code == 200


def test_events_survive_the_webhook_being_down(
    app, minio, bucket, tiny_pipeline, coco_images: list[Path]
):
    """With MINIO_NOTIFY_WEBHOOK_QUEUE_DIR set, MinIO keeps events while pixdex is down and
    replays them (every 3 s) once it is back."""
    client = minio.client()
    client.put_object(Bucket=bucket, Key="photos/while-down.jpg", Body=coco_images[2].read_bytes())
    time.sleep(1)
    assert tiny_pipeline.index.known(bucket) == {}
    with serve_app(app, minio.webhook_port):
        wait_for(
            lambda: "photos/while-down.jpg" in tiny_pipeline.index.known(bucket),
            timeout=30,
            what="replayed event",
        )
