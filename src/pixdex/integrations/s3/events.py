"""S3 event notifications → index changes, for every way they arrive.

Parsing (``parse_notification``) accepts, at any nesting: AWS S3 notifications (``Records[]``
with ``eventName`` ``ObjectCreated:*``/``ObjectRemoved:*``), the same inside SQS message bodies
and SNS envelopes, Lambda's SQS/SNS batches, MinIO webhook/queue payloads (``EventName``,
``Key``, ``Records[]`` with ``s3:``-prefixed names), EventBridge ``Object Created``/``Object
Deleted``, and ``s3:TestEvent``. Keys in S3-style records are form-URL-encoded (``+`` is a space,
``%2B`` a plus, non-ASCII is percent-encoded UTF-8): ``unquote_plus`` restores them. EventBridge
carries keys verbatim. Anything malformed or foreign yields no changes and one log line: a bad
message must be acknowledged, never crash a consumer.

Applying (``ChangeApplier``) treats events as hints and S3 as the truth: a created object is
fetched as it is *now* and a removal is only applied after ``HeadObject`` confirms the object is
gone. So late, duplicated or reordered deliveries (S3 guarantees neither order nor exactly-once)
converge on the bucket's actual state, and a forged event can cause a re-read but never a wrong
record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from pixdex import safejson
from pixdex.config import S3Settings, load_settings
from pixdex.errors import SourceError
from pixdex.records import Failure
from pixdex.sources.base import IMAGE_SUFFIXES, ObjectRef, has_image_suffix, transient_keys

if TYPE_CHECKING:
    from pixdex.pipeline import Pipeline

log = logging.getLogger(__name__)

Action = Literal["created", "removed"]

# eventName prefixes (after MinIO's "s3:") → what they mean for the index. Everything else
# (ObjectAccessed, ObjectTagging, ObjectAcl, Replication, IntelligentTiering…) is ignored.
_ACTIONS: tuple[tuple[str, Action], ...] = (
    ("ObjectCreated:", "created"),
    ("ObjectRestore:Completed", "created"),  # back from Glacier: readable now
    ("ObjectRemoved:", "removed"),
    ("LifecycleExpiration:", "removed"),
)
_EVENTBRIDGE_ACTIONS: dict[str, Action] = {
    "Object Created": "created",
    "Object Restore Completed": "created",
    "Object Deleted": "removed",
}
_MAX_DEPTH = 5  # SNS inside SQS inside a Lambda batch is 3; deeper is not a notification


@dataclass(frozen=True, slots=True)
class Change:
    """One object that was created or removed, key decoded."""

    action: Action
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event: str = ""


class _Skip(Exception):
    """A payload (or part) that is not an S3 object notification: logged and acknowledged."""


def parse_notification(payload: Any, *, origin: str = "notification") -> list[Change]:
    """Every object change in one payload (dict, list, JSON str/bytes). Never raises: malformed
    or foreign payloads give [] and a warning naming ``origin`` (e.g. an SQS message id)."""
    changes: list[Change] = []
    for item in _walk(payload, origin, 0):
        changes.append(item)
    return changes


def _walk(payload: Any, origin: str, depth: int) -> Iterator[Change]:
    try:
        yield from _parse(payload, origin, depth)
    except _Skip as exc:
        log.warning("ignoring %s: %s", origin, exc)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        log.warning("ignoring malformed %s: %s: %s", origin, type(exc).__name__, exc)


def _parse(payload: Any, origin: str, depth: int) -> Iterator[Change]:
    if depth > _MAX_DEPTH:
        raise _Skip("nested too deeply to be an S3 notification")
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = safejson.loads(payload)
        except safejson.JsonError as exc:
            raise _Skip(str(exc)) from None
    if isinstance(payload, list):
        for i, item in enumerate(payload):
            yield from _walk(item, f"{origin}[{i}]", depth + 1)
        return
    if not isinstance(payload, dict):
        raise _Skip(f"expected a JSON object, got {type(payload).__name__}")

    if payload.get("Event") == "s3:TestEvent" or payload.get("eventName") == "s3:TestEvent":
        log.info("acknowledged s3:TestEvent for bucket %s (%s)", payload.get("Bucket"), origin)
        return
    if payload.get("Type") == "Notification" and "Message" in payload:  # SNS envelope
        yield from _walk(payload["Message"], f"{origin} (SNS message)", depth + 1)
        return
    if "detail-type" in payload and "detail" in payload:
        yield from _eventbridge(payload)
        return
    records = payload.get("Records")
    if not isinstance(records, list):
        keys = ", ".join(sorted(map(str, payload))[:6]) or "nothing"
        raise _Skip(f"not an S3 event notification (has {keys})")
    for i, record in enumerate(records):
        where = f"{origin} record {i}"
        if not isinstance(record, dict):
            log.warning("ignoring %s: not an object", where)
            continue
        if record.get("eventSource") == "aws:sqs" and "body" in record:
            message = f"SQS message {record.get('messageId', '?')}"
            yield from _walk(record["body"], message, depth + 1)
        elif isinstance(record.get("Sns"), dict):
            yield from _walk(record["Sns"].get("Message"), f"{where} (SNS)", depth + 1)
        else:
            try:
                change = _s3_record(record)
            except _Skip as exc:
                log.warning("ignoring %s: %s", where, exc)
                continue
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                log.warning("ignoring malformed %s: %s: %s", where, type(exc).__name__, exc)
                continue
            if change is not None:
                yield change


def _action(event_name: str) -> Action | None:
    name = event_name.removeprefix("s3:")
    for prefix, action in _ACTIONS:
        if name.startswith(prefix):
            return action
    return None


def _s3_record(record: dict[str, Any]) -> Change | None:
    name = record.get("eventName")
    if not isinstance(name, str) or not isinstance(record.get("s3"), dict):
        source = record.get("eventSource") or record.get("EventSource") or "unknown source"
        raise _Skip(f"not an S3 object event ({source})")
    action = _action(name)
    if action is None:
        log.debug("skipping %s event (no index change)", name)
        return None
    s3 = record["s3"]
    obj = s3["object"]
    key = obj["key"]
    if not isinstance(key, str) or not key:
        raise _Skip("record without an object key")
    return Change(
        action=action,
        bucket=_bucket(s3["bucket"]["name"]),
        key=_key(unquote_plus(key, encoding="utf-8", errors="strict")),
        size=_size(obj.get("size")),
        etag=_text(obj.get("eTag")),
        version_id=_text(obj.get("versionId")),
        sequencer=_text(obj.get("sequencer")),
        event=name,
    )


# S3's own limits: bucket names are 3-63 characters, keys at most 1024 bytes of UTF-8.
def _bucket(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or "/" in value:
        raise _Skip(f"not a bucket name: {str(value)[:80]!r}")
    return value


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value.encode("utf-8", "replace")) > 1024:
        raise _Skip("object key missing, not text, or over 1024 bytes")
    return value


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _eventbridge(payload: dict[str, Any]) -> Iterator[Change]:
    if payload.get("source") != "aws.s3":
        raise _Skip(f"EventBridge event from {payload.get('source')!r}, not aws.s3")
    kind = payload["detail-type"]
    action = _EVENTBRIDGE_ACTIONS.get(kind)
    if action is None:
        log.debug("skipping EventBridge %r event (no index change)", kind)
        return
    detail = payload["detail"]
    obj = detail["object"]
    yield Change(
        action=action,
        bucket=_bucket(detail["bucket"]["name"]),
        key=_key(obj["key"]),  # EventBridge does not URL-encode keys
        size=_size(obj.get("size")),
        etag=_text(obj.get("etag")),
        version_id=_text(obj.get("version-id")),
        sequencer=_text(obj.get("sequencer")),
        event=f"EventBridge {kind}",
    )


# --- applying ---------------------------------------------------------------------------------
def latest_per_object(changes: Iterable[Change]) -> list[Change]:
    """The last change per (bucket, key): by ``sequencer`` where both events have one (S3's
    ordering token: hex, compared after left-padding to equal length), else arrival order."""
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        slot = (change.bucket, change.key)
        seen = latest.get(slot)
        if seen is None or not _older(change, seen):
            latest[slot] = change
    return list(latest.values())


def _older(a: Change, b: Change) -> bool:
    if a.sequencer and b.sequencer:
        width = max(len(a.sequencer), len(b.sequencer))
        return a.sequencer.upper().rjust(width, "0") < b.sequencer.upper().rjust(width, "0")
    return False


@dataclass
class Outcome:
    """What applying a set of changes did. ``retry`` holds objects whose change could not be
    applied for a reason that may pass (index or S3 unavailable): their messages must be
    redelivered. Bad objects are in ``failures`` and recorded in the index: those are done."""

    indexed: int = 0
    unchanged: int = 0
    deleted: int = 0
    ignored: int = 0
    failures: list[Failure] = field(default_factory=list)
    retry: set[tuple[str, str]] = field(default_factory=set)

    def add(self, other: Outcome) -> None:
        self.indexed += other.indexed
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.ignored += other.ignored
        self.failures += other.failures
        self.retry |= other.retry

    def as_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "ignored": self.ignored,
            "failed": len(self.failures),
            "retry": len(self.retry),
        }


class ChangeApplier:
    """Applies changes to the index through a pipeline, reading objects from S3.

    One boto3 client is shared by every bucket and thread, made from the ``[s3]`` settings
    (``endpoint_url`` points it at MinIO and friends) unless ``client`` is given."""

    def __init__(
        self,
        pipeline: Pipeline,
        s3: S3Settings | None = None,
        *,
        client: Any | None = None,
        suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    ) -> None:
        from pixdex.integrations.aws import make_client

        s3 = s3 if s3 is not None else load_settings().s3
        self.pipeline = pipeline
        self.suffixes = suffixes
        self.max_bytes = s3.max_object_bytes
        self.client = client or make_client(endpoint_url=s3.endpoint_url, region=s3.region)

    def apply(self, changes: Sequence[Change]) -> Outcome:
        outcome = Outcome()
        by_bucket: dict[str, list[Change]] = {}
        for change in latest_per_object(changes):
            if not has_image_suffix(change.key, self.suffixes):
                log.debug("not an image name, ignored: s3://%s/%s", change.bucket, change.key)
                outcome.ignored += 1
                continue
            by_bucket.setdefault(change.bucket, []).append(change)
        for bucket, bucket_changes in by_bucket.items():
            outcome.add(self._apply_bucket(bucket, bucket_changes))
        return outcome

    def _source(self, bucket: str, keys: Sequence[str]) -> Any:
        from pixdex.integrations.s3.source import S3Source

        # The common prefix keeps the pipeline's Index.known() lookup to these keys instead of
        # the whole bucket (an event batch names a handful of objects in a bucket of millions).
        return S3Source(
            bucket,
            os.path.commonprefix(list(keys)),
            client=self.client,
            suffixes=self.suffixes,
            max_bytes=self.max_bytes,
        )

    def _apply_bucket(self, bucket: str, changes: list[Change]) -> Outcome:
        outcome = Outcome()
        source = self._source(bucket, [c.key for c in changes])
        refs: list[ObjectRef] = []
        gone: list[str] = []
        for change in changes:
            if change.action == "created":
                refs.append(
                    source.ref(
                        change.key, size=change.size, etag=change.etag, version_id=change.version_id
                    )
                )
                continue
            try:
                current = source.head(change.key)
            except SourceError as exc:
                log.warning("cannot confirm removal of s3://%s/%s: %s", bucket, change.key, exc)
                outcome.retry.add((bucket, change.key))
                continue
            if current is None:
                gone.append(change.key)
            else:  # removed, then written again (or an old/forged event): index what is there
                refs.append(current)
        if refs:
            self._index(source, refs, outcome)
        if gone:
            try:
                outcome.deleted += self.pipeline.remove(bucket, gone)
            except Exception as exc:  # noqa: BLE001 - index down: redeliver later
                log.error("could not delete %d record(s) from the index: %s", len(gone), exc)
                outcome.retry.update((bucket, key) for key in gone)
        return outcome

    def _index(self, source: Any, refs: list[ObjectRef], outcome: Outcome) -> None:
        bucket = source.bucket
        try:
            summary = self.pipeline.process(source, refs)
        except Exception as exc:  # noqa: BLE001 - index unavailable etc.: redeliver later
            log.error("could not index %d object(s) from s3://%s: %s", len(refs), bucket, exc)
            outcome.retry.update((bucket, ref.key) for ref in refs)
            return
        # not durable yet: a failure the index could not record is redelivered, not dropped
        transient = transient_keys(source) | summary.transient | summary.unrecorded
        outcome.indexed += summary.indexed
        outcome.unchanged += summary.unchanged
        outcome.failures += [f for f in summary.failures if f.key not in transient]
        outcome.retry.update((bucket, key) for key in transient)
        write_failed = {e.key for e in summary.write_errors}
        outcome.retry.update((bucket, key) for key in write_failed)
        if summary.not_indexed > len(write_failed):
            # The pipeline stopped writing (index down) without naming every record: retry all.
            outcome.retry.update((bucket, ref.key) for ref in refs)
