"""Rekognition-compatible DetectLabels and DetectText endpoints, answered by the local analyzers.

Two doors to each operation:
- ``POST /rekognition/detect-labels`` / ``/rekognition/detect-text`` with the request JSON — for
  curl and scripts;
- ``POST /rekognition`` with ``X-Amz-Target: RekognitionService.DetectLabels`` (or
  ``.DetectText``) — the AWS JSON 1.1 protocol, so unmodified AWS SDKs and the AWS CLI work with
  ``--endpoint-url http://host:port/rekognition`` (any credentials; signatures are not checked:
  the server's own API token, ``Authorization: Bearer``, guards it when one is set).

The responses are what ``pixdex detect-labels`` / ``pixdex detect-text`` print. Every action
takes its body and image through ``rekognition_input`` (``parse_body``, ``request_image``:
JPEG/PNG, 5 MB / 15 MB, 80–10,000 px, S3Object only from allowed buckets, HEAD before GET), then
through its operation's micro-batcher (``batching``: bounded decoding, batched analysis, 503 +
Retry-After when the queue is full), and errors use Rekognition's shape (``{"__type":
"InvalidImageFormatException", "Message": …}``) so SDKs raise the usual exceptions.
"""

from __future__ import annotations

import logging
import uuid
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixdex.api.batching import LabelOptions
from pixdex.api.rekognition_input import (
    MAX_BODY,
    MAX_BYTES,
    MAX_S3_BYTES,
    RekognitionError,
    invalid,
    number,
    parse_body,
    read_body,
    request_image,
)
from pixdex.api.state import ApiState, get_state
from pixdex.errors import ImageError, Overloaded

log = logging.getLogger(__name__)

router = APIRouter(tags=["rekognition"])

__all__ = ["MAX_BODY", "MAX_BYTES", "MAX_S3_BYTES", "OPERATIONS", "RekognitionError", "router"]

AMZ_JSON = "application/x-amz-json-1.1"
TARGET = "RekognitionService.DetectLabels"
TEXT_TARGET = "RekognitionService.DetectText"
#: DetectText's RegionsOfInterest: at most this many (Rekognition's limit)
MAX_REGIONS = 10


def _error(exc: RekognitionError) -> JSONResponse:
    return JSONResponse(
        {"__type": exc.kind, "Message": exc.message},
        status_code=exc.status,
        media_type=AMZ_JSON,
        headers={
            "x-amzn-ErrorType": exc.kind,
            "x-amzn-RequestId": str(uuid.uuid4()),
            **exc.headers,
        },
    )


def _request(state: ApiState, body: dict[str, Any]) -> tuple[bytes, LabelOptions]:
    """DetectLabels' image bytes and options, checked (blocking: may read from S3)."""
    max_labels = number(body, "MaxLabels", 0, None, integer=True)
    min_confidence = number(body, "MinConfidence", 0, 100)
    data = request_image(state, body)
    options = LabelOptions(
        max_labels=int(max_labels) if max_labels is not None else None,
        min_confidence=min_confidence,
    )
    return data, options


async def _detect(state: ApiState, body: dict[str, Any]) -> dict[str, Any]:
    data, options = await run_in_threadpool(_request, state, body)
    return await _batched(state, state.detector, data, options)


async def _batched(state: ApiState, holder: Any, data: bytes, options: Any) -> dict[str, Any]:
    """``data`` through the holder's micro-batcher (``api.batching``): concurrent requests are
    decoded by a bounded pool and analyzed together; when too many are already waiting, the
    answer is 503 ThrottlingException with Retry-After, which AWS SDKs retry with backoff."""
    try:
        batcher = await run_in_threadpool(holder.batcher)
    except Exception as exc:  # noqa: BLE001 - analyzers not installed / model not built
        log.error("%s: analyzers unavailable: %s", holder.operation, exc)
        raise RekognitionError(
            503, "ServiceUnavailableException", f"analyzers unavailable: {exc}"
        ) from None
    start = perf_counter()
    try:
        response = await batcher.submit(data, options)
    except Overloaded as exc:
        state.metrics.refused.labels(holder.operation).inc()
        raise RekognitionError(
            503, "ThrottlingException", str(exc), {"Retry-After": str(exc.retry_after)}
        ) from None
    except ImageError as exc:
        raise RekognitionError(400, "InvalidImageFormatException", str(exc)) from None
    state.metrics.detect_seconds.observe(perf_counter() - start)
    return response


def _ratio(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise invalid(f"{name} must be a number between 0 and 1")
    return float(value)


def _region(item: Any, where: str) -> tuple[float, float, float, float]:
    """A RegionsOfInterest entry as (left, top, width, height) ratios: its BoundingBox, or the
    box around its Polygon."""
    if isinstance(item, dict) and isinstance(item.get("BoundingBox"), dict):
        box = item["BoundingBox"]
        return tuple(  # type: ignore[return-value]
            _ratio(box.get(k), f"{where}.BoundingBox.{k}")
            for k in ("Left", "Top", "Width", "Height")
        )
    if isinstance(item, dict) and isinstance(item.get("Polygon"), list) and item["Polygon"]:
        points = item["Polygon"]
        if not all(isinstance(p, dict) for p in points):
            raise invalid(f"{where}.Polygon must be a list of {{X, Y}}")
        xs = [_ratio(p.get("X"), f"{where}.Polygon.X") for p in points]
        ys = [_ratio(p.get("Y"), f"{where}.Polygon.Y") for p in points]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    raise invalid(f"{where} needs a BoundingBox or a Polygon")


def _text_filters(body: dict[str, Any]) -> Any:
    """DetectText's ``Filters`` ({WordFilter: {MinConfidence, MinBoundingBoxHeight,
    MinBoundingBoxWidth}, RegionsOfInterest: [...]}) as a WordFilter, or None."""
    from pixdex.analyzers.text import WordFilter

    filters = body.get("Filters")
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise invalid("Filters must be an object")
    words = filters.get("WordFilter") or {}
    if not isinstance(words, dict):
        raise invalid("Filters.WordFilter must be an object")
    regions = filters.get("RegionsOfInterest") or []
    if not isinstance(regions, list) or len(regions) > MAX_REGIONS:
        raise invalid(f"Filters.RegionsOfInterest must be a list of at most {MAX_REGIONS}")
    return WordFilter(
        min_confidence=number(words, "MinConfidence", 0, 100) or 0.0,
        min_height=number(words, "MinBoundingBoxHeight", 0, 1) or 0.0,
        min_width=number(words, "MinBoundingBoxWidth", 0, 1) or 0.0,
        regions=tuple(_region(r, f"Filters.RegionsOfInterest[{i}]") for i, r in enumerate(regions)),
    )


def _text_request(state: ApiState, body: dict[str, Any]) -> tuple[bytes, Any]:
    """DetectText's image bytes and filters, checked (blocking: may read from S3)."""
    filters = _text_filters(body)
    return request_image(state, body), filters


async def _detect_text(state: ApiState, body: dict[str, Any]) -> dict[str, Any]:
    data, filters = await run_in_threadpool(_text_request, state, body)
    return await _batched(state, state.text, data, filters)


async def _answer(request: Request, operation: Any = None) -> JSONResponse:
    state = get_state(request)
    try:
        body = parse_body(await read_body(request))
        response = await (operation or _detect)(state, body)
    except RekognitionError as exc:
        return _error(exc)
    return JSONResponse(
        response, media_type=AMZ_JSON, headers={"x-amzn-RequestId": str(uuid.uuid4())}
    )


@router.post("/rekognition/detect-labels", summary="DetectLabels (plain JSON)")
async def detect_labels(request: Request) -> JSONResponse:
    """Body: ``{"Image": {"Bytes": "<base64>"} | {"S3Object": {"Bucket", "Name"}},
    "MaxLabels": 10, "MinConfidence": 70}``; answers ``{"Labels": [...], "LabelModelVersion"}``."""
    return await _answer(request)


@router.post("/rekognition/detect-text", summary="DetectText (plain JSON)")
async def detect_text(request: Request) -> JSONResponse:
    """Body: ``{"Image": {"Bytes": "<base64>"} | {"S3Object": {"Bucket", "Name"}}, "Filters":
    {"WordFilter": {"MinConfidence": 80}, "RegionsOfInterest": [{"BoundingBox": {...}}]}}``;
    answers ``{"TextDetections": [...], "TextModelVersion"}`` (LINEs, then WORDs)."""
    return await _answer(request, _detect_text)


OPERATIONS = {TARGET: _detect, TEXT_TARGET: _detect_text}


@router.post("/rekognition", summary="AWS JSON 1.1 protocol (SDKs, AWS CLI)")
@router.post("/rekognition/", include_in_schema=False)
async def aws_protocol(request: Request) -> JSONResponse:
    target = request.headers.get("x-amz-target", "")
    if target not in OPERATIONS:
        return _error(
            RekognitionError(
                400,
                "UnknownOperationException",
                f"only {' and '.join(OPERATIONS)} are supported, not {target[:80]!r}",
            )
        )
    return await _answer(request, OPERATIONS[target])
