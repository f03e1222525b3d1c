"""SQS worker: long-polls S3 notifications and applies them to the index.

The queue is the scale-out engine: run as many workers (processes, machines) as needed; SQS hands
each message to one of them at a time. Delivery is at-least-once, so correctness rests on
idempotent writes (records are keyed by bucket + key; re-applying a change is a no-op):

- messages are deleted (in batches) only after every object they name was indexed, recorded as a
  bad object, or confirmed deleted;
- messages that could not be applied (index or S3 unavailable) are left alone: they return after
  the queue's visibility timeout and are retried;
- messages that keep failing are moved to a dead-letter queue by the queue's redrive policy
  (``maxReceiveCount``) — configure one; the worker logs the receive count to show the way there;
- malformed and foreign messages (``s3:TestEvent``, other services) are logged and deleted.

A worker killed mid-batch loses nothing: its undeleted messages reappear after the visibility
timeout and another worker (or the restarted one) applies them again.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixdex.analyzers.base import usage_report
from pixdex.errors import SourceError
from pixdex.integrations.aws import describe, error_code
from pixdex.integrations.s3.events import Change, ChangeApplier, Outcome, parse_notification

if TYPE_CHECKING:
    from pixdex.config import Settings
    from pixdex.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    received: int = 0
    deleted: int = 0  # messages acknowledged (done, malformed or foreign)
    retried: int = 0  # messages left for redelivery
    batches: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0  # bad objects recorded as failures
    #: remote analyzers' counters (Rekognition: calls, throttled, retried, failed), at the end
    remote: dict[str, dict[str, int]] = field(default_factory=dict)


def sqs_client(*, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """SQS client with the same retry policy as S3 (``AWS_ENDPOINT_URL_SQS`` also works)."""
    from pixdex.integrations.aws import make_client

    return make_client(
        endpoint_url=endpoint_url, region=region or _region_from_env(), service="sqs"
    )


def _region_from_env() -> str | None:
    import os

    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def run_worker(
    settings: Settings,
    queue_url: str,
    *,
    max_messages: int = 10,
    wait_seconds: int = 20,
    stop_after: float | None = None,
    stop_event: threading.Event | None = None,
    pipeline: Pipeline | None = None,
    applier: ChangeApplier | None = None,
    sqs: Any | None = None,
    sqs_endpoint_url: str | None = None,
    visibility_timeout: int | None = None,
    handle_signals: bool = False,
    on_batch: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """Poll ``queue_url`` until ``stop_event`` is set or ``stop_after`` seconds have passed.

    ``pipeline`` defaults to the settings' one; ``applier`` (a pipeline plus an S3 client)
    overrides both. ``max_messages`` (1–10) is both the SQS receive size and the unit of
    batched analysis. ``visibility_timeout`` overrides the queue's for received messages: it
    must exceed the time one batch takes (seconds per image × ``max_messages``), or messages
    are delivered twice (harmless, but wasted work). ``handle_signals`` makes SIGTERM/SIGINT
    finish the current batch and exit (for ``pixdex worker``; only in the main thread).
    Raises SourceError when the queue cannot be used at all (no such queue, access denied,
    no credentials): retrying those would only hide the mistake."""
    from pixdex.pipeline import build_pipeline

    stop = stop_event or threading.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if applier is None:
        applier = ChangeApplier(
            pipeline if pipeline is not None else build_pipeline(settings), settings.s3
        )
    sqs = sqs or sqs_client(endpoint_url=sqs_endpoint_url, region=settings.s3.region)
    deadline = time.monotonic() + stop_after if stop_after is not None else None
    stats = WorkerStats()
    max_messages = max(1, min(10, max_messages))
    log.info("worker polling %s", queue_url)
    while not stop.is_set():
        wait = wait_seconds
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = max(0, min(wait_seconds, int(remaining)))
        request: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_timeout is not None:
            request["VisibilityTimeout"] = visibility_timeout
        try:
            messages = sqs.receive_message(**request).get("Messages", [])
        except Exception as exc:  # noqa: BLE001 - queue unreachable: back off, keep running
            if fatal_error(exc):
                raise SourceError(f"cannot receive from {queue_url}: {describe(exc)}") from exc
            log.error("receiving from %s failed: %s", queue_url, exc)
            stop.wait(min(5.0, wait_seconds or 1.0))
            continue
        if not messages:
            continue
        process_messages(sqs, queue_url, applier, messages, stats)
        if on_batch:
            on_batch(stats)
    stats.remote = usage_report(applier.pipeline.remote_analyzers)
    log.info("worker stopped: %s", stats)
    return stats


# Errors retrying cannot fix: a wrong queue URL, missing permissions or credentials.
_FATAL_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAddress",
    }
)


def fatal_error(exc: Exception) -> bool:
    """An SQS error no retry fixes: a missing queue, no permission, no credentials or region."""
    return error_code(exc) in _FATAL_CODES or type(exc).__name__ in (
        "NoCredentialsError",
        "PartialCredentialsError",
        "NoRegionError",
    )


def process_messages(
    sqs: Any,
    queue_url: str,
    applier: ChangeApplier,
    messages: list[dict[str, Any]],
    stats: WorkerStats,
) -> None:
    """Apply one received batch and delete the messages that are done."""
    stats.batches += 1
    stats.received += len(messages)
    per_message: list[tuple[dict[str, Any], list[Change]]] = []
    for message in messages:
        origin = f"SQS message {message.get('MessageId', '?')}"
        per_message.append((message, parse_notification(message.get("Body"), origin=origin)))
    try:
        outcome = applier.apply([c for _, changes in per_message for c in changes])
    except Exception:  # noqa: BLE001 - leave the whole batch for redelivery
        log.exception("batch of %d message(s) failed; it will be redelivered", len(messages))
        stats.retried += len(messages)
        return
    _count(stats, outcome)
    done: list[dict[str, Any]] = []
    for message, changes in per_message:
        if any((c.bucket, c.key) in outcome.retry for c in changes):
            count = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
            log.warning(
                "message %s left for redelivery (received %s time(s))",
                message.get("MessageId"),
                count,
            )
            stats.retried += 1
        else:
            done.append(message)
    stats.deleted += _delete(sqs, queue_url, done)


def _count(stats: WorkerStats, outcome: Outcome) -> None:
    stats.indexed += outcome.indexed
    stats.unchanged += outcome.unchanged
    stats.removed += outcome.deleted
    stats.failed += len(outcome.failures)
    for failure in outcome.failures:
        log.warning("not indexed: s3://%s/%s: %s", failure.bucket, failure.key, failure.reason)


def _delete(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> int:
    deleted = 0
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
        try:
            response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:  # noqa: BLE001 - they come back and are re-applied (idempotent)
            log.error("deleting %d message(s) failed: %s", len(chunk), exc)
            continue
        for failed in response.get("Failed", []):
            log.warning("could not delete message: %s", failed.get("Message") or failed)
        deleted += len(response.get("Successful", []))
    return deleted
