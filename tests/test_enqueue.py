"""Back-fill through the queue (``pixdex enqueue`` → ``pixdex worker``), against a real MinIO and a
real SQS server (ElasticMQ), with real ``pixdex`` processes: a listing becomes one message per
image, two worker processes drain it into one index, every object is analyzed exactly once and
recorded once, and enqueueing the same listing again analyzes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _minio import REPO

from pixdex.integrations.s3.enqueue import EVENT_NAME, notification
from pixdex.integrations.s3.events import parse_notification
from pixdex.integrations.s3.source import S3Source


def pixdex(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixdex", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def env(s3_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3_env,
        "PYTHONPATH": str(REPO / "src"),
        "PIXDEX_CONFIG": os.devnull,
        "PIXDEX_INDEX": str(tmp_path / "index.db"),
    }


@pytest.fixture
def queue(elasticmq):
    client = elasticmq.client()
    # Long enough that no message comes back while a worker holds it: a second delivery here
    # would be a bug of the test's making, and the test counts analyses exactly.
    url = client.create_queue(
        QueueName=f"backfill-{time.monotonic_ns()}", Attributes={"VisibilityTimeout": "120"}
    )["QueueUrl"]
    yield url, client
    client.delete_queue(QueueUrl=url)


def waiting(client, url: str) -> int:
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def drain(url: str, client, env: dict[str, str], elasticmq, workers: int) -> list[dict]:
    """Run ``workers`` ``pixdex worker`` processes until the queue is empty; their stats."""
    args = [sys.executable, "-m", "pixdex", "worker", "--sqs-queue-url", url,
            "--sqs-endpoint-url", elasticmq.endpoint, "--analyzer", "exif"]  # fmt: skip
    procs = [
        subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + 120
        while waiting(client, url):
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
            assert time.monotonic() < deadline, "the workers did not drain the queue"
            time.sleep(0.3)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)  # finish the batch in hand, print the stats
    stats = []
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        found = re.search(r"WorkerStats\((.*)\)", stderr.replace("\n", ""))
        assert found, stderr
        stats.append(
            {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(1)) if k != "remote"}
        )
    return stats


def test_notification_is_the_s3_event_the_worker_already_reads():
    source = S3Source("photos", client=object())
    ref = source.ref("2024/a b+c/ñandú.jpg", size=1234, etag='"abc123"')
    (change,) = parse_notification(notification(ref))
    assert (change.action, change.bucket, change.key) == ("created", "photos", ref.key)
    assert (change.size, change.etag, change.event) == (1234, "abc123", EVENT_NAME)


def test_enqueue_then_two_worker_processes_index_each_object_exactly_once(
    minio, bucket, queue, env, elasticmq, tmp_path: Path, coco_images: list[Path]
):
    url, client = queue
    s3 = minio.client()
    photos = coco_images[:24]
    for i, path in enumerate(photos):
        s3.put_object(Bucket=bucket, Key=f"backfill/{i:02} {path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="backfill/notes.txt", Body=b"not an image")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.jpg", Body=photos[0].read_bytes())

    done = pixdex("enqueue", f"s3://{bucket}/backfill/", "--sqs-queue-url", url,
                  "--sqs-endpoint-url", elasticmq.endpoint, "--quiet", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"enqueued 24 of 24 object(s) under s3://{bucket}/backfill/" in done.stderr
    assert waiting(client, url) == 24  # one message per image; the .txt and other prefix not

    stats = drain(url, client, env, elasticmq, workers=2)
    assert sum(s["indexed"] for s in stats) == 24  # analyzed exactly once, all workers together
    assert sum(s["deleted"] for s in stats) == 24 and sum(s["retried"] for s in stats) == 0
    with sqlite3.connect(env["PIXDEX_INDEX"]) as db:
        rows = db.execute("SELECT key, COUNT(*) FROM records GROUP BY key").fetchall()
        etags = dict(db.execute("SELECT key, json_extract(doc, '$.etag') FROM records"))
    assert sorted(k for k, _ in rows) == sorted(f"backfill/{i:02} {p.name}" for i, p in
                                                enumerate(photos))  # fmt: skip
    assert {n for _, n in rows} == {1}
    listed = {r.key: r.etag for r in S3Source(bucket, "backfill/", client=s3).list()}
    assert etags == listed  # keyed by bucket/key, fingerprinted by the listed ETag

    # The same listing again (a re-run, a second operator): nothing is analyzed twice.
    again = pixdex("enqueue", f"s3://{bucket}/backfill/", "--sqs-queue-url", url,
                   "--sqs-endpoint-url", elasticmq.endpoint, "--quiet", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    stats = drain(url, client, env, elasticmq, workers=2)
    assert sum(s["indexed"] for s in stats) == 0
    assert sum(s["unchanged"] for s in stats) == 24
    with sqlite3.connect(env["PIXDEX_INDEX"]) as db:
        assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 24


def test_enqueue_says_what_is_wrong_in_one_line(minio, bucket, env, elasticmq):
    missing = f"{elasticmq.endpoint}/000000000000/no-such-queue"
    minio.client().put_object(Bucket=bucket, Key="a.jpg", Body=b"x")
    done = pixdex("enqueue", f"s3://{bucket}/", "--sqs-queue-url", missing,
                  "--sqs-endpoint-url", elasticmq.endpoint, "--quiet", env=env)  # fmt: skip
    assert done.returncode == 3
    assert "no-such-queue" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback

    local = pixdex("enqueue", "/tmp", "--sqs-queue-url", missing, env=env)
    assert local.returncode == 2 and "s3://" in local.stderr

    nobucket = pixdex("enqueue", "s3://no-such-bucket-here/", "--sqs-queue-url", missing,
                      "--sqs-endpoint-url", elasticmq.endpoint, "--quiet", env=env)  # fmt: skip
    assert nobucket.returncode == 3 and "no such bucket" in nobucket.stderr


def test_enqueued_message_bodies_are_valid_json_in_key_order(minio, bucket, queue, env, elasticmq):
    url, client = queue
    keys = [f"k/{i:03}.jpg" for i in range(25)]
    for key in keys:
        minio.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    done = pixdex("enqueue", f"s3://{bucket}/k/", "--sqs-queue-url", url,
                  "--sqs-endpoint-url", elasticmq.endpoint, "--quiet", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = []
    while True:
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for m in messages:
            body = json.loads(m["Body"])
            seen.append(body["Records"][0]["s3"]["object"]["key"])
    assert sorted(seen) == keys
