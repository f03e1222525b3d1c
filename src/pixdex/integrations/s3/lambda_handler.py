"""AWS Lambda entry point: S3 ObjectCreated/ObjectRemoved → analyze and index, or delete.

Invocations it understands (all through ``pixdex.integrations.s3.events``):
- S3 → Lambda directly (asynchronous invoke): any object that could not be handled for a reason
  that may pass (index or S3 unavailable) raises, so Lambda retries the event (twice by default,
  then its on-failure destination / DLQ). Bad objects are recorded as failures and do not raise.
- SQS → Lambda (event source mapping with ``ReportBatchItemFailures``): returns
  ``{"batchItemFailures": [{"itemIdentifier": messageId}, …]}`` naming only the messages to
  redeliver; the rest are deleted by Lambda. Malformed/foreign messages are acknowledged.
- SNS → Lambda and EventBridge → Lambda, like direct invokes.

Configuration is the usual pixdex environment: ``PIXDEX_INDEX`` (e.g.
``opensearch+https://search-….es.amazonaws.com/photos`` with ``PIXDEX_AWS_REGION`` for SigV4),
``PIXDEX_CACHE_DIR`` (where the packaged ONNX models are), ``PIXDEX_ENDPOINT_URL`` for
S3-compatible servers, ``PIXDEX_ANALYZER=rekognition`` for Amazon Rekognition (objects are sent
as S3Object: the function reads nothing itself). The pipeline is built once per container and
reused by warm invocations.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pixdex.analyzers.base import usage_lines
from pixdex.errors import Unavailable
from pixdex.integrations.s3.events import Change, ChangeApplier, Outcome, parse_notification

log = logging.getLogger("pixdex.lambda")

_lock = threading.Lock()
_applier: ChangeApplier | None = None


class RetryableError(Unavailable):
    """Raised for direct invocations so Lambda's own retry policy redelivers the event."""


def _get_applier() -> ChangeApplier:
    global _applier
    with _lock:
        if _applier is None:
            from pixdex.config import load_settings
            from pixdex.pipeline import build_pipeline

            settings = load_settings()
            _configure_logging(settings.log_level)
            _applier = ChangeApplier(build_pipeline(settings), settings.s3)
        return _applier


def configure(applier: ChangeApplier | None) -> None:
    """Use this applier for the following invocations (a custom bootstrap, tests); ``None``
    forgets the cached one so the next invocation builds it from the environment again."""
    global _applier
    with _lock:
        _applier = applier


def reset() -> None:
    """Forget the cached pipeline, closing its index (a changed environment)."""
    global _applier
    with _lock:
        if _applier is not None:
            _applier.pipeline.index.close()
        _applier = None


def _is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records
    )


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The Lambda handler (``pixdex.integrations.s3.lambda_handler.handler``)."""
    applier = _get_applier()
    if _is_sqs_batch(event):
        return _handle_sqs(applier, event["Records"])
    changes = parse_notification(event, origin="Lambda event")
    outcome = applier.apply(changes)
    _log_outcome(outcome, len(changes))
    if outcome.retry:
        names = ", ".join(f"s3://{b}/{k}" for b, k in sorted(outcome.retry)[:5])
        raise RetryableError(f"{len(outcome.retry)} object(s) to retry: {names}")
    return outcome.as_dict()


def _handle_sqs(applier: ChangeApplier, records: list[dict[str, Any]]) -> dict[str, Any]:
    per_message: dict[str, list[Change]] = {}
    for record in records:
        message_id = str(record.get("messageId", ""))
        per_message[message_id] = parse_notification(
            record.get("body"), origin=f"SQS message {message_id}"
        )
    all_changes = [c for changes in per_message.values() for c in changes]
    try:
        outcome = applier.apply(all_changes)
    except Exception:  # noqa: BLE001 - anything unforeseen: redeliver the whole batch
        log.exception("batch failed; all %d message(s) will be redelivered", len(records))
        return {"batchItemFailures": [{"itemIdentifier": m} for m in per_message]}
    _log_outcome(outcome, len(all_changes))
    failed = [
        message_id
        for message_id, changes in per_message.items()
        if any((c.bucket, c.key) in outcome.retry for c in changes)
    ]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}


def _log_outcome(outcome: Outcome, changes: int) -> None:
    log.info("%d change(s): %s", changes, outcome.as_dict())
    applier = _applier
    if applier is not None:  # Rekognition: calls, throttled… since the cold start
        for name, line in usage_lines(applier.pipeline.remote_analyzers):
            log.info("%s since cold start: %s", name, line)
    for failure in outcome.failures:
        log.warning("not indexed: s3://%s/%s: %s", failure.bucket, failure.key, failure.reason)


def _configure_logging(level: str) -> None:
    # Lambda's Python runtime installs a root handler at WARNING; make pixdex's INFO lines visible.
    logging.getLogger("pixdex").setLevel(level)
