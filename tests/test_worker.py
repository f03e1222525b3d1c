"""The SQS worker against a real SQS-compatible server (ElasticMQ) and a real MinIO: deletes only
what succeeded, leaves failures for redelivery (to a dead-letter queue in the end), survives a
kill -9 mid-batch without losing or duplicating anything."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _minio import REPO, FaultProxy, aws_record

from pixdex.config import Settings
from pixdex.errors import SourceError
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.integrations.aws import make_client
from pixdex.integrations.s3.events import ChangeApplier
from pixdex.integrations.s3.worker import run_worker


def upload(minio, bucket: str, key: str, data: bytes) -> str:
    """Upload and return the notification body AWS S3 would send to SQS for it."""
    etag = minio.client().put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
    return json.dumps({"Records": [aws_record(bucket, key, size=len(data), etag=etag)]})


def queue_counts(queue) -> tuple[int, int]:
    attrs = queue.client.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def run_until(queue, stop_when, *, timeout: float = 30, **kwargs):
    """Run the worker in a thread until ``stop_when()`` holds; returns its stats."""
    stop = threading.Event()
    result: dict = {}

    def target() -> None:
        result["stats"] = run_worker(
            Settings(), queue.url, sqs=queue.client, wait_seconds=1, stop_event=stop, **kwargs
        )

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not stop_when():
            assert time.monotonic() < deadline, "worker did not get there in time"
            assert thread.is_alive(), "worker died"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    return result["stats"]


def test_worker_indexes_deletes_and_acknowledges_junk(
    minio, s3_env, bucket, sqs_queue, tiny_pipeline, coco_images: list[Path]
):
    keys = ["inbox/café/ñandú 1.jpg", "inbox/a+b.jpg", "inbox/x y z.jpg"]
    bodies = [
        upload(minio, bucket, k, p.read_bytes()) for k, p in zip(keys, coco_images, strict=False)
    ]
    bodies += [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}),
        "garbage that is not JSON",
        json.dumps({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
    ]
    for body in bodies:
        sqs_queue.client.send_message(QueueUrl=sqs_queue.url, MessageBody=body)

    index = tiny_pipeline.index
    stats = run_until(
        sqs_queue,
        lambda: queue_counts(sqs_queue) == (0, 0) and len(index.known(bucket)) == 3,
        pipeline=tiny_pipeline,
        max_messages=4,
    )
    assert stats.indexed == 3 and stats.deleted == 6 and stats.retried == 0
    assert sorted(index.known(bucket)) == sorted(keys)

    # Deletion notifications: the records go.
    minio.client().delete_object(Bucket=bucket, Key=keys[0])
    removal = {"Records": [aws_record(bucket, keys[0], "ObjectRemoved:Delete")]}
    sqs_queue.client.send_message(QueueUrl=sqs_queue.url, MessageBody=json.dumps(removal))
    stats = run_until(sqs_queue, lambda: keys[0] not in index.known(bucket), pipeline=tiny_pipeline)
    assert stats.removed == 1 and sorted(index.known(bucket)) == sorted(keys[1:])


def test_failures_return_after_the_visibility_timeout_then_go_to_the_dlq(
    minio, s3_env, bucket, sqs_queue, tiny_pipeline, coco_images: list[Path]
):
    ok = upload(minio, bucket, "inbox/ok.jpg", coco_images[0].read_bytes())
    stuck = upload(minio, bucket, "inbox/throttled.jpg", coco_images[1].read_bytes())
    for body in (ok, stuck):
        sqs_queue.client.send_message(QueueUrl=sqs_queue.url, MessageBody=body)

    def plan(method: str, path: str) -> str | None:
        return "slowdown" if path.endswith("/inbox/throttled.jpg") else None

    def dlq_size() -> int:
        attrs = sqs_queue.client.get_queue_attributes(
            QueueUrl=sqs_queue.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    with FaultProxy(minio.endpoint, plan) as proxy:
        applier = ChangeApplier(
            tiny_pipeline, client=make_client(endpoint_url=proxy.endpoint, max_attempts=1)
        )
        stats = run_until(sqs_queue, lambda: dlq_size() == 1, applier=applier, timeout=40)
    # received 3 times (maxReceiveCount), never deleted, then moved by the redrive policy
    assert stats.retried == 3 and stats.deleted == 1
    assert queue_counts(sqs_queue) == (0, 0)
    (dead,) = sqs_queue.client.receive_message(QueueUrl=sqs_queue.dlq_url)["Messages"]
    assert json.loads(dead["Body"]) == json.loads(stuck)
    assert tiny_pipeline.index.get(bucket, "inbox/ok.jpg") is not None


def test_a_bad_object_whose_failure_cannot_be_recorded_is_redelivered_not_dropped(
    minio, s3_env, bucket, sqs_queue, tiny_pipeline, monkeypatch: pytest.MonkeyPatch
):
    """A message is deleted only once what it names is durable — a record, or the failure of a
    bad object: while the index cannot take the failure, the message stays for redelivery."""
    from pixdex.errors import IndexUnavailable

    body = upload(minio, bucket, "inbox/not-a-photo.jpg", b"this is not a JPEG")
    sqs_queue.client.send_message(QueueUrl=sqs_queue.url, MessageBody=body)
    index = tiny_pipeline.index

    def down(failures):
        raise IndexUnavailable("injected: the index refuses writes")

    with monkeypatch.context() as patch:
        patch.setattr(index, "record_failures", down)
        stats = run_until(
            sqs_queue, lambda: queue_counts(sqs_queue) == (0, 1), pipeline=tiny_pipeline
        )
    assert stats.retried == 1 and stats.deleted == 0
    assert index.failures() == []
    stats = run_until(
        sqs_queue,
        lambda: queue_counts(sqs_queue) == (0, 0) and index.failures() != [],
        pipeline=tiny_pipeline,
        timeout=60,
    )
    assert stats.deleted == 1
    assert [f.key for f in index.failures()] == ["inbox/not-a-photo.jpg"]


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from _minio import ShapeAnalyzer
    from pixdex.config import Settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import Pipeline
    from pixdex.integrations.s3.worker import run_worker

    index_path, queue_url, sqs_endpoint, marks = sys.argv[1:5]

    class SlowShapes(ShapeAnalyzer):
        def analyze(self, images):
            Path(marks, f"batch-{time.monotonic_ns()}").touch()  # a batch started
            time.sleep(0.4 * len(images))
            return super().analyze(images)

    pipeline = Pipeline([SlowShapes()], SqliteIndex(index_path), batch_size=5, workers=2)
    run_worker(Settings(), queue_url, pipeline=pipeline, sqs_endpoint_url=sqs_endpoint,
               max_messages=5, wait_seconds=1, stop_after=120)
    """
)


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    minio, s3_env, bucket, sqs_queue, elasticmq, tmp_path: Path, coco_images: list[Path]
):
    keys = [f"burst/{i:02} {p.name}" for i, p in enumerate(coco_images[:15])]
    for key, path in zip(keys, coco_images, strict=False):
        sqs_queue.client.send_message(
            QueueUrl=sqs_queue.url, MessageBody=upload(minio, bucket, key, path.read_bytes())
        )
    index_path = tmp_path / "index.db"
    SqliteIndex(index_path).close()
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'tests'}",
    }
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    args = [sys.executable, str(script), str(index_path), sqs_queue.url, elasticmq.endpoint]
    args.append(str(marks))
    proc = subprocess.Popen(args, env=env, start_new_session=True)

    def indexed() -> int:
        with sqlite3.connect(index_path) as db:
            return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    try:
        deadline = time.monotonic() + 60
        # Wait until one batch is written and the next one is being analysed, then kill -9.
        while not (indexed() >= 5 and len(list(marks.iterdir())) >= 2):
            assert proc.poll() is None, "worker exited early"
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = indexed()
    assert 5 <= killed_at < 15  # really mid-run: messages of the killed batch are in flight

    # A fresh worker picks up what the killed one left (after the 2 s visibility timeout).
    index = SqliteIndex(index_path)
    from _minio import ShapeAnalyzer

    from pixdex.pipeline import Pipeline

    pipeline = Pipeline([ShapeAnalyzer()], index, batch_size=5, workers=2)
    run_until(
        sqs_queue,
        lambda: queue_counts(sqs_queue) == (0, 0) and indexed() == 15,
        pipeline=pipeline,
        max_messages=5,
        timeout=60,
    )
    with sqlite3.connect(index_path) as db:
        rows = db.execute(
            "SELECT bucket, key, COUNT(*) FROM records GROUP BY bucket, key"
        ).fetchall()
    assert sorted(key for _, key, _ in rows) == sorted(keys)  # none lost
    assert {count for _, _, count in rows} == {1}  # none duplicated
    assert index.failures(bucket) == []
    index.close()


def test_a_queue_that_cannot_be_used_stops_the_worker_with_a_clear_error(elasticmq, tiny_pipeline):
    missing = f"{elasticmq.endpoint}/000000000000/no-such-queue"
    with pytest.raises(SourceError, match="cannot receive from .*no-such-queue: QueueDoesNotExist"):
        run_worker(
            Settings(),
            missing,
            sqs=elasticmq.client(),
            pipeline=tiny_pipeline,
            wait_seconds=1,
            stop_after=10,
        )
