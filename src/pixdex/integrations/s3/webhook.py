"""``POST /webhooks/minio``: MinIO bucket notifications → index changes.

MinIO posts each event (``s3:ObjectCreated:*``, ``s3:ObjectRemoved:*``) to a webhook target
configured with ``MINIO_NOTIFY_WEBHOOK_*_<ID>`` env vars, sending ``Authorization: Bearer
<MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>>``; pixdex checks it against the ``s3.webhook_token`` setting
(constant-time). The webhook is off (403) until both ``s3.webhook_token`` and ``s3.webhook_sources``
(the ``s3://bucket/prefix`` it may index) are set, and a payload naming any object outside
``s3.webhook_sources`` is refused whole (403, nothing queued).

Delivery semantics: the request is parsed and queued, and answered at once (MinIO waits on each
delivery, so slow analysis must not sit in the request). Analysis runs on one background thread
that batches queued events. With ``MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_<ID>`` set, MinIO persists
events while pixdex is down or answers non-2xx (401, 503 when the in-memory queue is full) and
replays them later. Once answered 200 an event lives only in pixdex's memory: a pixdex crash
loses the in-flight ones — a periodic ``pixdex index s3://bucket/prefix`` (which skips unchanged
objects without downloading them) repairs that. Events are hints: objects are read from S3 as
they are now and removals are confirmed with HeadObject (``events``), so a forged or stale event
cannot plant a wrong record.

The app (``pixdex.api.app``) includes ``router``; it may call ``configure(app, settings)`` up
front and ``shutdown(app)`` on exit, otherwise the processor is created on first use from
``app.state.settings`` (or the environment).
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response

from pixdex.integrations.s3.events import Change, ChangeApplier, Outcome, parse_notification

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

_STATE = "pixdex_webhooks"


@dataclass
class ProcessorStats:
    received: int = 0  # changes accepted from requests
    applied: int = 0  # changes whose outcome is final (indexed, unchanged, deleted, failed)
    retried: int = 0  # re-queued after a transient error
    dropped: int = 0  # gave up after ``retries`` attempts (a back-fill repairs them)
    indexed: int = 0
    deleted: int = 0
    failed: int = 0


class WebhookProcessor:
    """A bounded queue of changes and one thread that applies them in batches."""

    def __init__(
        self,
        make_applier: Callable[[], ChangeApplier],
        *,
        max_pending: int = 10_000,
        max_batch: int = 32,
        batch_window: float = 0.2,
        retries: int = 5,
        retry_delay: float = 2.0,
    ) -> None:
        self._make_applier = make_applier
        self._applier: ChangeApplier | None = None
        self._queue: queue.Queue[tuple[Change, int]] = queue.Queue(max_pending)
        self.max_batch = max_batch
        self.batch_window = batch_window
        self.retries = retries
        self.retry_delay = retry_delay
        self.stats = ProcessorStats()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="pixdex-webhooks", daemon=True)
        self._thread.start()

    def submit(self, changes: list[Change]) -> None:
        """Queue changes; raises queue.Full when the backlog is at its limit (→ 503)."""
        with self._idle:
            self._busy += len(changes)
        for i, change in enumerate(changes):
            try:
                self._queue.put_nowait((change, 0))
            except queue.Full:
                with self._idle:
                    self._busy -= len(changes) - i
                    self._idle.notify_all()
                raise
        self.stats.received += len(changes)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted change is applied (or dropped); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self, timeout: float = 30) -> None:
        self.wait_idle(timeout)
        self._stop.set()
        self._thread.join(timeout)

    # --- the background thread ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._apply(batch)

    def _apply(self, batch: list[tuple[Change, int]]) -> None:
        try:
            if self._applier is None:
                self._applier = self._make_applier()
            outcome = self._applier.apply([change for change, _ in batch])
        except Exception as exc:  # noqa: BLE001 - e.g. index unreachable at start-up
            log.error("applying %d webhook change(s) failed: %s", len(batch), exc)
            outcome = Outcome(retry={(c.bucket, c.key) for c, _ in batch})
        self.stats.indexed += outcome.indexed
        self.stats.deleted += outcome.deleted
        self.stats.failed += len(outcome.failures)
        for failure in outcome.failures:
            log.warning("not indexed: s3://%s/%s: %s", failure.bucket, failure.key, failure.reason)
        finished = 0
        for change, attempts in batch:
            if (change.bucket, change.key) not in outcome.retry:
                self.stats.applied += 1
                finished += 1
            elif attempts + 1 >= self.retries:
                log.error(
                    "giving up on s3://%s/%s after %d attempts (a back-fill will pick it up)",
                    change.bucket,
                    change.key,
                    attempts + 1,
                )
                self.stats.dropped += 1
                finished += 1
            else:
                self.stats.retried += 1
                self._requeue_later(change, attempts + 1)
        with self._idle:
            self._busy -= finished
            self._idle.notify_all()

    def _requeue_later(self, change: Change, attempts: int) -> None:
        delay = self.retry_delay * 2 ** (attempts - 1)
        timer = threading.Timer(delay, self._queue.put, args=((change, attempts),))
        timer.daemon = True
        timer.start()


def configure(
    app: FastAPI,
    settings: Settings,
    *,
    applier: ChangeApplier | None = None,
    **options: Any,
) -> WebhookProcessor:
    """Create the app's webhook processor (``applier`` defaults to the settings' pipeline)."""

    def make_applier() -> ChangeApplier:
        if applier is not None:
            return applier
        from pixdex.pipeline import build_pipeline

        return ChangeApplier(build_pipeline(settings), settings.s3)

    processor = WebhookProcessor(make_applier, **options)
    app.state.webhook_settings = settings
    setattr(app.state, _STATE, processor)
    return processor


def shutdown(app: FastAPI, timeout: float = 30) -> None:
    processor: WebhookProcessor | None = getattr(app.state, _STATE, None)
    if processor is not None:
        processor.close(timeout)


def _settings(app: FastAPI) -> Settings:
    settings = getattr(app.state, "webhook_settings", None) or getattr(app.state, "settings", None)
    if settings is None:
        from pixdex.config import load_settings

        settings = load_settings()
        app.state.webhook_settings = settings
    return settings


_create_lock = threading.Lock()


def _processor(app: FastAPI) -> WebhookProcessor:
    processor = getattr(app.state, _STATE, None)
    if processor is None:
        with _create_lock:
            processor = getattr(app.state, _STATE, None)
            if processor is None:
                processor = configure(app, _settings(app))
    return processor


def _check_token(settings: Settings, authorization: str | None) -> None:
    expected = settings.s3.webhook_token
    sources = settings.s3.webhook_sources
    if not expected or not sources:
        # Closed unless configured: an open webhook let anyone get any object the server's
        # credentials can read indexed, and then served through /api/images/{id}/file.
        missing = " and ".join(
            name
            for name, value in (
                ("s3.webhook_token", expected),
                ("s3.webhook_sources", sources),
            )
            if not value
        )
        raise HTTPException(
            status_code=403,
            detail=f"the MinIO webhook is off: set {missing} (pixdex serve --webhook-token, "
            "--webhook-source s3://bucket/prefix; docs/security.md)",
        )
    given = (authorization or "").strip()
    if given.lower().startswith("bearer "):
        given = given[7:].strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="invalid or missing webhook token (Authorization: Bearer <s3.webhook_token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def in_sources(bucket: str, key: str, sources: list[str]) -> bool:
    """Whether s3://bucket/key lies under one of ``sources`` (``s3://bucket[/prefix]``)."""
    for source in sources:
        allowed_bucket, _, prefix = source.removeprefix("s3://").partition("/")
        if bucket == allowed_bucket and key.startswith(prefix):
            return True
    return False


@router.post("/webhooks/minio")
async def minio_webhook(request: Request) -> dict[str, Any]:
    """Accept a MinIO (or any S3-shaped) event notification; 200 once queued."""
    app: FastAPI = request.app
    settings = _settings(app)
    _check_token(settings, request.headers.get("authorization"))
    body = await request.body()
    changes = parse_notification(body, origin="MinIO webhook payload")
    foreign = [c for c in changes if not in_sources(c.bucket, c.key, settings.s3.webhook_sources)]
    if foreign:
        # Refused whole: nothing from a payload that names objects outside the allowlist.
        log.warning(
            "refused a MinIO event for s3://%s/%s (not in s3.webhook_sources)",
            foreign[0].bucket,
            foreign[0].key,
        )
        raise HTTPException(
            status_code=403,
            detail=f"{len(foreign)} object(s) outside s3.webhook_sources, e.g. "
            f"s3://{foreign[0].bucket}/{foreign[0].key[:200]}; nothing was queued",
        )
    if changes:
        try:
            _processor(app).submit(changes)
        except queue.Full:
            raise HTTPException(
                status_code=503,
                detail="event backlog full; retry later",
                headers={"Retry-After": "5"},
            ) from None
    return {"accepted": len(changes)}


@router.api_route("/webhooks/minio", methods=["GET", "HEAD"], include_in_schema=False)
async def minio_webhook_alive() -> Response:
    """Lets people (and probes) check the endpoint exists without sending an event."""
    return Response(status_code=200)
