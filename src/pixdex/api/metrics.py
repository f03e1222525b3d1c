"""Prometheus metrics for ``/metrics``.

prometheus_client (small, pure Python, the reference implementation) rather than hand-written
text: histograms' cumulative buckets, ``_sum``/``_count``, label escaping and the exposition
content type are easy to get subtly wrong by hand. Each app has its own registry, so several apps
in one process (tests, embedding) never collide on metric names.

Requests are labelled by *route template* (``/api/images/{image_id}``), never the raw path, and
by method from a fixed set, so a client sending random URLs or invented methods cannot blow up
the number of series.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pixdex_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "path", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "pixdex_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ("path",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "pixdex_search_duration_seconds",
            "Time spent in the index answering /api/search (without HTTP overhead).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.detect_seconds = Histogram(
            "pixdex_detect_labels_duration_seconds",
            "Time to analyze one image for the Rekognition-compatible endpoint.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_images = Histogram(
            "pixdex_rekognition_batch_images",
            "Images per batched analyzer run of the Rekognition-compatible endpoint.",
            ("operation",),
            buckets=(1, 2, 4, 8, 12, 16, 24, 32),
            registry=self.registry,
        )
        self.refused = Counter(
            "pixdex_rekognition_refused",
            "Rekognition-compatible requests refused with 503 because the queue was full.",
            ("operation",),
            registry=self.registry,
        )
        self.thumbnails = Counter(
            "pixdex_thumbnails",
            "Thumbnails served, by where they came from (memory, disk, made).",
            ("source",),
            registry=self.registry,
        )

    def batch_observer(self, operation: str) -> Callable[[int, float], None]:
        """What a micro-batcher calls after each batch: (images, seconds)."""
        histogram = self.batch_images.labels(operation)
        return lambda images, seconds: histogram.observe(images)

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: Methods that get their own label value; anything else a client invents counts as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_path(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, record_status)
        finally:
            path = _route_path(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.request_seconds.labels(path).observe(perf_counter() - start)
