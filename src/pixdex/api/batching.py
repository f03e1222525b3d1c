"""Micro-batching for the image endpoints: concurrent requests share one batched analyzer run.

Why: each analyzer run already uses every core (ONNX Runtime's threads), so answering each
request in its own thread, as the endpoint first did, made requests compete for the cores and let
every thread's decodes and ONNX Runtime buffers pile up in memory, so throughput was low and
memory grew with the load; a fixed number of slots bounded that but still ran one image per model
call. Here the analyzers see the same batches as in ``pixdex index``, one run per operation at a
time, and what waits is bounded (docs/benchmarks.md, "(6) The HTTP server", has the throughput
against the CLI's and the memory over a long run):

- a request is **admitted** only while fewer than ``max_queue`` requests are waiting (decoding or
  queued); beyond that, and beyond ``max_pixels`` decoded pixels waiting, it is refused at once
  with ``Overloaded`` (the route answers 503 + ``Retry-After``): a bounded queue, so overload
  costs clients a retry, never the server its memory;
- images are **decoded** by a small pool of threads (``DecodePool``: one per core, shared by
  every image endpoint): bounded CPU and memory for decodes, and few threads, so few malloc
  arenas;
- ``runners`` **batch threads** each take what is queued — up to ``max_batch`` — and run it
  through the analyzers at once. When requests are still being decoded a batch thread waits for
  them up to ``window`` seconds; when none are, it runs at once, so a lone client pays no window.
  DetectLabels runs as many batch threads as ``pixdex index`` runs analysis workers, each model on
  one intra-op thread: one batch thread with every core per model left the cores idle while the
  models' Python between calls ran on one core, and served fewer images per second than the CLI.

``ImageBatcher`` is generic over what a batch run does (``run``: decoded images and per-request
options in, one answer or exception per request out): DetectLabels runs through
``label_batcher``, DetectText through ``text_batcher``, each with its own queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pixdex.errors import Overloaded
from pixdex.imaging import DecodedImage, decode

log = logging.getLogger(__name__)

Options = TypeVar("Options")

#: ``run``'s answer for one request: its response, or the exception to raise in its handler
Answer = dict[str, Any] | Exception


@dataclass(slots=True)
class _Job(Generic[Options]):
    image: DecodedImage
    options: Options
    future: Future[Answer]
    pixels: int


class DecodePool:
    """The decoding threads every image endpoint shares (one per core, started on first use): a
    decode of a 10,000 x 10,000 PNG holds ~300 MB, so at most this many at once, whichever
    operation asked for them."""

    def __init__(self, threads: int | None = None) -> None:
        from pixdex.models.sessions import available_cores

        self.threads = threads or available_cores()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="pixdex-decode")
            pool = self._pool
        return pool.submit(fn, *args)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class BatchStats:
    """Counters for /metrics and the benchmark: how well requests were batched."""

    batches: int = 0
    images: int = 0
    refused: int = 0
    largest: int = 0


class ImageBatcher(Generic[Options]):
    """Decode pool + bounded queue + ``runners`` batch threads around ``run`` (``run`` must be
    safe to call from several threads at once when ``runners`` > 1, as the pipeline's analyzers
    are)."""

    def __init__(
        self,
        run: Callable[[Sequence[DecodedImage], Sequence[Options]], Sequence[Answer]],
        *,
        min_side: int = 0,
        max_image_pixels: int = 100_000_000,
        max_batch: int = 16,
        runners: int = 1,
        window: float = 0.01,
        max_queue: int = 64,
        max_pixels: int = 32_000_000,
        decoders: DecodePool | None = None,
        name: str = "batch",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run = run
        self.min_side = min_side
        self.max_image_pixels = max_image_pixels
        self.max_batch = max(1, max_batch)
        self.runners = max(1, runners)
        self.window = max(0.0, window)
        self.max_queue = max(1, max_queue)
        self.max_pixels = max_pixels
        self.name = name
        self.on_batch = on_batch  # (images, seconds) after each batch: metrics
        self.stats = BatchStats()
        self._own_decoders = decoders is None
        self._decoders = decoders or DecodePool()
        self._cond = threading.Condition()
        self._queue: deque[_Job[Options]] = deque()
        self._queued_pixels = 0
        self._arriving = 0  # admitted, still decoding
        self._seconds_per_image = 0.05  # running estimate (one batch thread's), for Retry-After
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-run-{i}", daemon=True)
            for i in range(self.runners)
        ]
        for thread in self._threads:
            thread.start()

    # --- the request side ----------------------------------------------------------------------
    async def submit(self, data: bytes, options: Options) -> dict[str, Any]:
        """Decode ``data``, wait for its batch, return its answer. Raises ``Overloaded`` when the
        queue is full, ``ImageError`` for undecodable bytes, or what ``run`` gave for it."""
        self._admit()
        try:
            image = await asyncio.wrap_future(self._decoders.submit(self._decode, data))
            future = self._enqueue(image, options)
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify_all()
        answer = await asyncio.wrap_future(future)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _decode(self, data: bytes) -> DecodedImage:
        return decode(data, min_side=self.min_side, max_pixels=self.max_image_pixels)

    def _admit(self) -> None:
        with self._cond:
            if self._closed:
                raise Overloaded("the server is shutting down", 1)
            if len(self._queue) + self._arriving >= self.max_queue:
                raise self._refuse(f"{self.max_queue} requests already waiting")
            self._arriving += 1

    def _enqueue(self, image: DecodedImage, options: Options) -> Future[Answer]:
        pixels = image.image.width * image.image.height
        future: Future[Answer] = Future()
        with self._cond:
            if self._closed:  # closed while this one was decoding: nobody would answer it
                raise Overloaded("the server is shutting down", 1)
            if self._queue and self._queued_pixels + pixels > self.max_pixels:
                raise self._refuse(f"{self._queued_pixels / 1e6:.0f} MP of images already waiting")
            self._queue.append(_Job(image, options, future, pixels))
            self._queued_pixels += pixels
            self._cond.notify_all()
        return future

    def _refuse(self, why: str) -> Overloaded:
        """(Called holding the lock.) Retry-After: about the time the queue takes to drain."""
        self.stats.refused += 1
        waiting = len(self._queue) + self._arriving
        retry = max(1, math.ceil(waiting * self._seconds_per_image / self.runners))
        return Overloaded(f"too many requests in progress ({why}); retry in {retry} s", retry)

    # --- the batch side ------------------------------------------------------------------------
    def _take(self) -> list[_Job[Options]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed and not self._queue:
                return None
            # Requests still decoding will be here in a few ms: wait for them (up to the window)
            # rather than run a batch of one and make them wait a whole batch.
            deadline = time.monotonic() + self.window
            while len(self._queue) < self.max_batch and self._arriving > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            jobs = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._queued_pixels -= sum(j.pixels for j in jobs)
            return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            # a request whose client went away (its future cancelled) is not analyzed
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            start = time.perf_counter()
            answers = self._answers(jobs)
            took = time.perf_counter() - start
            with self._cond:
                self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * took / len(jobs)
                self.stats.batches += 1
                self.stats.images += len(jobs)
                self.stats.largest = max(self.stats.largest, len(jobs))
            for job, answer in zip(jobs, answers, strict=True):
                job.future.set_result(answer)
            if self.on_batch is not None:
                self.on_batch(len(jobs), took)
            del jobs, answers  # free the decoded images before waiting for the next batch

    def _answers(self, jobs: list[_Job[Options]]) -> list[Answer]:
        """``run`` on the batch; if it fails, on each image alone, so one image an analyzer
        chokes on fails its own request only (as the pipeline does)."""
        try:
            answers = list(self._run([j.image for j in jobs], [j.options for j in jobs]))
            if len(answers) != len(jobs):
                raise RuntimeError(f"{len(answers)} answers for {len(jobs)} images")
            return answers
        except Exception as exc:  # noqa: BLE001 - becomes that request's error
            if len(jobs) == 1:
                log.exception("%s: analysis failed", self.name)
                return [exc]
        return [self._answers([job])[0] for job in jobs]

    def close(self) -> None:
        """Answer what is queued, then stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        if self._own_decoders:
            self._decoders.shutdown()


@dataclass(frozen=True, slots=True)
class LabelOptions:
    """DetectLabels' per-request parameters."""

    max_labels: int | None = None
    min_confidence: float | None = None


def label_batcher(
    detector: Any,
    settings: Any,
    on_batch: Callable[[int, float], None] | None = None,
    decoders: DecodePool | None = None,
) -> ImageBatcher[LabelOptions]:
    """DetectLabels through a ``LabelDetector``: each analyzer runs once per batch, as in
    ``pixdex detect-labels``; each request gets its own MaxLabels/MinConfidence cut."""
    from pixdex.analyzers.base import merge_partials

    def run(images: Sequence[DecodedImage], options: Sequence[LabelOptions]) -> list[Answer]:
        parts = [a.analyze(images) for a in detector.analyzers]
        return [
            # LabelDetector's own answer shaping (floor, cap, instances), shared with the CLI
            detector._answer(
                merge_partials([p[i] for p in parts]), opt.max_labels, opt.min_confidence
            )
            for i, opt in enumerate(options)
        ]

    return ImageBatcher(
        run,
        min_side=detector.min_side,
        max_image_pixels=settings.max_pixels,
        max_batch=settings.batch_size,
        runners=detector.parallel,
        decoders=decoders,
        name="detect-labels",
        on_batch=on_batch,
    )


def text_batcher(
    detector: Any,
    settings: Any,
    on_batch: Callable[[int, float], None] | None = None,
    decoders: DecodePool | None = None,
) -> ImageBatcher[Any]:
    """DetectText through a ``TextDetector``'s analyzer: one batched run, then each request's
    own ``Filters`` (a ``WordFilter`` or None), shaped as ``TextDetector.detect_bytes`` does."""
    analyzer = detector.analyzer

    def run(images: Sequence[DecodedImage], filters: Sequence[Any]) -> list[Answer]:
        out: list[Answer] = []
        for part, words in zip(analyzer.analyze(images), filters, strict=True):
            found = part["TextDetections"]
            if words is not None:
                found = words.apply(found)
            out.append(
                {
                    "TextDetections": [d.to_json() for d in found],
                    "TextModelVersion": part["TextModelVersion"],
                }
            )
        return out

    return ImageBatcher(
        run,
        min_side=analyzer.min_side,
        max_image_pixels=settings.max_pixels,
        max_batch=settings.batch_size,
        decoders=decoders,
        name="detect-text",
        on_batch=on_batch,
    )
