"""Back-fill through the queue: a bucket/prefix listing becomes work items on SQS that any number
of ``pixdex worker`` processes, on any number of machines, drain.

The work items are the S3 event notifications the workers already consume (one object per
message, as S3 sends them, with ``eventName`` ``ObjectCreated:Backfill``), so a back-fill takes
exactly the path of live uploads and inherits its guarantees instead of adding a second one:

- **exactly once in effect**: records are keyed by bucket + key and an object whose ETag and
  analyzer versions are already indexed is skipped without being downloaded, so a message
  delivered twice, a worker killed mid-batch, or the whole listing enqueued again costs a lookup,
  not an analysis, and never a duplicate record;
- a message is deleted only after its object was indexed or recorded as a bad object; failures
  come back after the visibility timeout and end in the queue's dead-letter queue;
- work spreads by itself: each receive hands a worker the next messages nobody holds.

Messages follow the listing's key order, so a worker's batch of ten names neighbouring keys and
the index lookup for what is already known stays narrow.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from pixdex.errors import SourceError
from pixdex.sources.base import ObjectRef

log = logging.getLogger(__name__)

EVENT_NAME = "ObjectCreated:Backfill"
#: SendMessageBatch takes at most 10 entries
BATCH = 10
#: a failed entry (throttled, server busy) is sent again this many times before it is reported
ATTEMPTS = 3


@dataclass
class EnqueueStats:
    listed: int = 0
    sent: int = 0
    #: objects whose message could not be sent (``(key, reason)``): enqueue them again
    failed: list[tuple[str, str]] = field(default_factory=list)


def notification(ref: ObjectRef) -> str:
    """The S3 event notification (SQS message body) for one listed object."""
    obj: dict[str, Any] = {"key": quote_plus(ref.key, safe="/")}
    if ref.size is not None:
        obj["size"] = ref.size
    if ref.etag:
        obj["eTag"] = ref.etag
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": EVENT_NAME,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": ref.bucket}, "object": obj},
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def _chunks(refs: Iterable[ObjectRef], size: int) -> Iterator[list[ObjectRef]]:
    chunk: list[ObjectRef] = []
    for ref in refs:
        chunk.append(ref)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def enqueue(
    refs: Iterable[ObjectRef],
    queue_url: str,
    sqs: Any,
    *,
    senders: int = 8,
    progress: Callable[[int], None] | None = None,
) -> EnqueueStats:
    """Send one message per object, ten per SendMessageBatch call, from ``senders`` threads
    (SQS answers in tens of ms: concurrent calls hide that). Raises SourceError when the queue
    cannot be used at all (no such queue, access denied, no credentials)."""
    from pixdex.integrations.aws import describe
    from pixdex.integrations.s3.worker import fatal_error

    stats = EnqueueStats()
    lock = threading.Lock()
    fatal: list[Exception] = []

    def send(chunk: list[ObjectRef]) -> None:
        if fatal:
            return
        pending = {str(i): ref for i, ref in enumerate(chunk)}
        reasons: dict[str, str] = {}
        for _ in range(ATTEMPTS):
            entries = [{"Id": i, "MessageBody": notification(r)} for i, r in pending.items()]
            try:
                response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - fatal ones stop the run, others retry
                if fatal_error(exc):
                    fatal.append(exc)
                    return
                reasons = dict.fromkeys(pending, describe(exc))
                continue
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
            reasons = {
                f["Id"]: f"{f.get('Code', '?')}: {f.get('Message', '')}"
                for f in response.get("Failed", [])
            }
            pending = {i: r for i, r in pending.items() if i in reasons}
            if not pending:
                break
        with lock:
            stats.sent += len(chunk) - len(pending)
            stats.failed += [(ref.key, reasons.get(i, "not sent")) for i, ref in pending.items()]
        if progress:
            progress(len(chunk))

    def counted(items: Iterable[ObjectRef]) -> Iterator[ObjectRef]:
        for ref in items:
            stats.listed += 1
            yield ref

    with ThreadPoolExecutor(max(1, senders), thread_name_prefix="pixdex-enqueue") as pool:
        # bounded: at most a few chunks per sender in flight while the listing continues
        inflight: list[Any] = []
        for chunk in _chunks(counted(refs), BATCH):
            inflight.append(pool.submit(send, chunk))
            if len(inflight) >= 4 * senders:
                inflight.pop(0).result()
            if fatal:
                break
        for future in inflight:
            future.result()
    if fatal:
        raise SourceError(f"cannot send to {queue_url}: {describe(fatal[0])}")
    return stats
