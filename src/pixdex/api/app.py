"""The HTTP API and web gallery that ``pixdex serve`` runs.

Handlers are plain ``def`` on purpose: index calls (SQLite, Elasticsearch clients) and thumbnail
decoding block, and FastAPI runs sync handlers in its thread pool, so a slow thumbnail never
stalls searches. Routes:

- ``GET /api/search`` — labels/text/filters → hits (top labels) + label facets, paginated;
- ``GET /api/images/{id}`` (record), ``…/file`` (original), ``…/thumb?size=`` (cached JPEG);
- ``GET /api/stats``, ``GET /api/failures``, ``GET /healthz``, ``GET /metrics``;
- ``POST /rekognition/detect-labels`` and the AWS-protocol ``POST /rekognition``;
- ``POST /webhooks/minio`` where the ``s3`` integration is installed (its ``webhook``);
- ``/`` — the gallery (static files from ``pixdex/web``, no build step, nothing from a CDN).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import perf_counter
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from pixdex import __version__, logs, memory
from pixdex.api.errors import ApiError, install_error_handlers
from pixdex.api.guard import Guard, GuardPolicy
from pixdex.api.media import LocalFile, S3Access, locate, media_type, read_bytes
from pixdex.api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from pixdex.api.rekognition import router as rekognition_router
from pixdex.api.state import (
    ApiState,
    DetectorHolder,
    IndexHolder,
    get_index,
    get_state,
)
from pixdex.api.thumbs import THUMB_SIZES, ThumbnailCache, make_thumbnail, thumb_key
from pixdex.config import Settings, load_settings
from pixdex.errors import ImageError, InputError, QueryError
from pixdex.indexes.base import Hit, Index, SearchQuery
from pixdex.integrations import installed, load
from pixdex.logs import Redactor, settings_secrets
from pixdex.query import check_query, parse_instant
from pixdex.records import Record

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
HIT_LABELS = 5  # labels per search hit; the full list is one GET /api/images/{id} away
MAX_LIMIT = 200

# The gallery loads only its own files; images may come from a presigned bucket URL.
GALLERY_CSP = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# Originals are user content: never let a browser run them as a document.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=300",
}

IndexDep = Annotated[Index, Depends(get_index)]
StateDep = Annotated[ApiState, Depends(get_state)]


def create_app(settings: Settings | None = None, index: Index | None = None) -> FastAPI:
    """The whole server. ``index`` given: used as is (and not closed on shutdown); otherwise
    ``settings.index`` is opened on first use and re-tried after a failure (503 until then)."""
    settings = settings or load_settings()
    metrics = Metrics()
    state = ApiState(
        settings=settings,
        index=IndexHolder(settings, index),
        detector=DetectorHolder(settings, metrics=metrics),
        thumbs=ThumbnailCache(Path(settings.cache_dir) / "thumbs"),
        s3=S3Access(settings),
        metrics=metrics,
        redact=_client_redactor(settings, index),
    )

    # MinIO's webhook target, where the s3 integration is installed (off until configured)
    webhooks = load("s3", "the MinIO webhook", "webhook") if installed("s3") else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # what is loaded by now (libraries, the app) lives as long as the server (memory.py)
        memory.freeze_long_lived()
        yield
        if webhooks is not None and hasattr(webhooks, "shutdown"):
            # Finish the MinIO events already accepted (200) before the index goes away.
            await run_in_threadpool(webhooks.shutdown, app)
        await run_in_threadpool(state.detector.close)
        await run_in_threadpool(state.text.close)
        await run_in_threadpool(state.detector.decoding.shutdown)
        state.index.close()
        memory.thaw()

    app = FastAPI(
        title="pixdex",
        version=__version__,
        description="Search photos by what is in them; Rekognition-compatible DetectLabels.",
        lifespan=lifespan,
    )
    app.state.pixdex = state
    app.state.settings = settings  # read by the webhook router to build its pipeline
    # Outermost last: metrics count what the guard refuses too.
    app.add_middleware(Guard, policy=GuardPolicy.from_settings(settings))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    install_error_handlers(app)
    _add_api_routes(app)
    app.include_router(rekognition_router)
    if webhooks is not None:
        app.include_router(webhooks.router)
    _add_gallery(app)
    return app


def _client_redactor(settings: Settings, index: Index | None) -> Redactor:
    """What error bodies never show: the secrets, and server paths (the index file, the cache
    dir, the home dir) as labels; the server's log keeps them in full."""
    redact = Redactor(settings_secrets(settings))
    for location in (settings.index, index.location if index is not None else None):
        redact.add_path(location, "<index>")
    redact.add_path(str(settings.cache_dir), "<cache_dir>")
    redact.add_path(str(Path.home()), "~")
    logs.redactor().add(*settings_secrets(settings))
    return redact


# --- helpers -------------------------------------------------------------------------------------


def state_floor(app: FastAPI) -> float:
    return float(app.state.pixdex.settings.min_confidence)


def _similar_json(result: Any, floor: float) -> dict[str, Any]:
    """Similar photos shaped like search hits, with their ``Similarity``."""
    return {
        "total": result.total,
        "hits": [{**hit_json(hit, floor), "Similarity": hit.score} for hit in result.hits],
    }


def _blank_to_none(value: str | None) -> str | None:
    return value if value and value.strip() else None


def hit_json(hit: Hit, floor: float = 0.0) -> dict[str, Any]:
    """A search hit: the image and its best labels at or above the search's floor (the full
    record, weaker stored labels too, is ``GET /api/images/{id}``)."""
    record = hit.record
    shown = [label for label in record.Labels if label.Confidence >= floor]
    return {
        "id": record.id,
        "bucket": record.bucket,
        "key": record.key,
        "uri": record.uri,
        "score": hit.score,
        "width": record.width,
        "height": record.height,
        "format": record.format,
        "timestamp": record.timestamp,
        "Labels": [
            {"Name": label.Name, "Confidence": label.Confidence} for label in shown[:HIT_LABELS]
        ],
        "label_count": len(shown),
    }


def _record(index: Index, image_id: str) -> Record:
    record = index.get_by_id(image_id)
    if record is None:
        raise ApiError(404, f"no image with id {image_id!r}")
    return record


# --- API -----------------------------------------------------------------------------------------


def _add_api_routes(app: FastAPI) -> None:
    @app.get("/api/search", tags=["search"])
    def search(
        index: IndexDep,
        state: StateDep,
        q: Annotated[str | None, Query(max_length=500, description="Free text")] = None,
        label: Annotated[
            list[str], Query(description="Required label (repeat for several; all must match)")
        ] = [],  # noqa: B006 - FastAPI copies defaults per request
        min_confidence: Annotated[
            float | None,
            Query(
                ge=0,
                le=100,
                description="Label confidence floor; default: the min_confidence setting (55)",
            ),
        ] = None,
        bucket: str | None = None,
        prefix: str | None = None,
        since: Annotated[str | None, Query(description="Indexed at/after (ISO 8601)")] = None,
        until: Annotated[str | None, Query(description="Indexed at/before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 24,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        facets: Annotated[int, Query(ge=0, le=100, description="Label facets to return")] = 20,
    ) -> dict[str, Any]:
        """Images whose labels (or their parents/aliases), paths or text read in them match:
        labels equal to ``q`` first, then labels containing its words, then paths and text;
        best confidence first within each.
        Without ``q`` and ``label`` every image matches (browsing). ``min_confidence`` defaults to
        the server's min_confidence setting (what DetectLabels emits); the answer says which floor
        applied."""
        floor = state.settings.min_confidence if min_confidence is None else min_confidence
        labels = tuple(lb.strip() for lb in label if lb.strip())
        try:
            query = SearchQuery(
                text=_blank_to_none(q),
                labels=labels,
                min_confidence=floor,
                bucket=_blank_to_none(bucket),
                prefix=_blank_to_none(prefix),
                since=parse_instant("since", since),
                until=parse_instant("until", until),
                limit=limit,
                offset=offset,
                facets=facets,
            )
            check_query(query)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        start = perf_counter()
        result = index.search(query)
        state.metrics.search_seconds.observe(perf_counter() - start)
        return {
            "total": result.total,
            "offset": offset,
            "limit": limit,
            "min_confidence": floor,
            "hits": [hit_json(hit, floor) for hit in result.hits],
            "facets": [{"name": name, "count": count} for name, count in result.facets],
        }

    @app.get("/api/images/{image_id}", tags=["images"])
    def image(image_id: str, index: IndexDep) -> dict[str, Any]:
        """The full record: every label with confidence, parents, aliases, categories and
        instances (bounding boxes as ratios), image properties, EXIF, versions."""
        return _record(index, image_id).public_json()

    @app.get("/api/images/{image_id}/file", tags=["images"], response_class=Response)
    def image_file(
        image_id: str,
        index: IndexDep,
        state: StateDep,
        proxy: Annotated[
            bool, Query(description="s3:// images: stream through pixdex, not a redirect")
        ] = False,
    ) -> Response:
        """The original image. Local folders: the file (only files that are in the index, inside
        their indexed folder). S3: a 307 redirect to a presigned URL, or the bytes with proxy."""
        record = _record(index, image_id)
        where = locate(record)
        media = media_type(record)
        if isinstance(where, LocalFile):
            return FileResponse(
                where.path,
                media_type=media or "application/octet-stream",
                filename=Path(record.key).name,
                content_disposition_type="inline" if media else "attachment",
                headers=FILE_HEADERS,
            )
        if not proxy:
            return RedirectResponse(state.s3.presigned_url(where, media), status_code=307)
        chunks, length = state.s3.open(where)
        headers = dict(FILE_HEADERS)
        if length is not None:
            headers["Content-Length"] = str(length)
        return StreamingResponse(
            chunks, media_type=media or "application/octet-stream", headers=headers
        )

    @app.get("/api/images/{image_id}/thumb", tags=["images"], response_class=Response)
    def image_thumb(
        image_id: str,
        request: Request,
        index: IndexDep,
        state: StateDep,
        size: Annotated[int, Query(description=f"One of {', '.join(map(str, THUMB_SIZES))}")] = 256,
    ) -> Response:
        """A JPEG whose longer side is ``size``, cached in memory and under the cache dir."""
        if size not in THUMB_SIZES:
            raise ApiError(400, f"size: must be one of {', '.join(map(str, THUMB_SIZES))}")
        record = _record(index, image_id)
        key = thumb_key(record, size)
        etag = f'"{key}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        cached = state.thumbs.get(key)
        if cached is not None:
            data, source = cached
        else:
            original = read_bytes(record, state.s3)
            try:
                data = make_thumbnail(original, size, state.settings.max_pixels)
            except ImageError as exc:
                raise ApiError(422, f"cannot make a thumbnail of {record.key}: {exc}") from None
            state.thumbs.put(key, data)
            source = "made"
        state.metrics.thumbnails.labels(source).inc()
        headers["X-Thumbnail-Source"] = source
        return Response(data, media_type="image/jpeg", headers=headers)

    # HEAD too (curl -I, link checkers), without a second OpenAPI operation.
    for path, endpoint in (
        ("/api/images/{image_id}/file", image_file),
        ("/api/images/{image_id}/thumb", image_thumb),
    ):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    @app.get("/api/similar", tags=["similar"])
    def similar(
        index: IndexDep,
        id: Annotated[str, Query(max_length=64, description="An indexed photo's id")],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 24,
    ) -> dict[str, Any]:
        """The photos most like an indexed one ("more like this"), each with its
        ``Similarity`` (0–100), most similar first."""
        from pixdex import similar as similar_photos

        try:
            result = similar_photos.similar_to_record(index, _record(index, id), limit)
        except InputError as exc:
            raise ApiError(409, str(exc)) from None
        return _similar_json(result, state_floor(app))

    @app.post("/api/similar", tags=["similar"])
    def similar_to_image(
        request_body: Annotated[bytes, Body(media_type="application/octet-stream")],
        index: IndexDep,
        state: StateDep,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 24,
    ) -> dict[str, Any]:
        """The indexed photos most like the image in the body (its bytes: JPEG, PNG, …); the
        image is analyzed for this answer only, nothing is stored."""
        from pixdex import similar as similar_photos
        from pixdex.imaging import decode

        analyzer = state.detector.get().label_analyzer()
        try:
            image = decode(
                request_body, min_side=analyzer.min_side, max_pixels=state.settings.max_pixels
            )
            result = similar_photos.similar_to_image(index, analyzer, image, limit)
        except (ImageError, InputError) as exc:
            raise ApiError(400, str(exc)) from None
        return _similar_json(result, state.settings.min_confidence)

    @app.get("/api/duplicates", tags=["similar"])
    def duplicates(
        index: IndexDep,
        min_similarity: Annotated[
            float | None,
            Query(
                ge=0, le=100, description="Keep in a group only photos this similar to the first"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Groups of near-duplicates, the copy to keep first and why; nothing is changed."""
        from pixdex import similar as similar_photos

        groups = similar_photos.duplicates(index, min_similarity=min_similarity)
        return {"groups": [g.to_json() for g in groups]}

    @app.get("/api/stats", tags=["index"])
    def stats(index: IndexDep) -> dict[str, Any]:
        """Counts, top labels, index location and label model versions."""
        return {**index.stats().to_json(), "version": __version__}

    @app.get("/api/failures", tags=["index"])
    def failures(
        index: IndexDep,
        bucket: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """Images that could not be indexed, each with its one-line reason."""
        found = index.failures(bucket=_blank_to_none(bucket), limit=limit)
        return {"count": len(found), "failures": [f.to_json() for f in found]}

    @app.get("/healthz", tags=["ops"])
    def healthz(index: IndexDep) -> dict[str, Any]:
        """200 when the index answers a (cheap) query; 503 with the reason otherwise. Open to
        probes without the API token, so it names nothing (no index location)."""
        result = index.search(SearchQuery(limit=0, facets=0))
        return {"status": "ok", "records": result.total}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(state: StateDep) -> Response:
        """Prometheus text format: requests by route and status, latency histograms."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


# --- gallery -------------------------------------------------------------------------------------


def _add_gallery(app: FastAPI) -> None:
    if not (WEB_DIR / "index.html").is_file():
        log.warning("gallery files missing in %s; serving the API only", WEB_DIR)
        return

    @app.get("/", include_in_schema=False)
    def gallery() -> FileResponse:
        return FileResponse(
            WEB_DIR / "index.html",
            media_type="text/html",
            headers={
                "Content-Security-Policy": GALLERY_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
