"""Rekognition-compatible DetectLabels and DetectText endpoints, answered by the local analyzers.

Two doors to each operation:
- ``POST /rekognition/detect-labels`` / ``/rekognition/detect-text`` with the request JSON — for
  curl and scripts;
- ``POST /rekognition`` with ``X-Amz-Target: RekognitionService.DetectLabels`` (or
  ``.DetectText``) — the AWS JSON 1.1 protocol, so unmodified AWS SDKs and the AWS CLI work with
  ``--endpoint-url http://host:port/rekognition`` (any credentials; signatures are not checked —
  put pixdex behind your own auth if it is exposed).

The responses are what ``pixdex detect-labels`` / ``pixdex detect-text`` print. Errors use
Rekognition's shape (``{"__type": "InvalidImageFormatException", "Message": …}``) so SDKs raise
the usual exceptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixdex.api.errors import ApiError
from pixdex.api.media import S3Object
from pixdex.api.state import ApiState, get_state
from pixdex.imaging import ImageError

log = logging.getLogger(__name__)

router = APIRouter(tags=["rekognition"])

AMZ_JSON = "application/x-amz-json-1.1"
TARGET = "RekognitionService.DetectLabels"
TEXT_TARGET = "RekognitionService.DetectText"
#: DetectText's RegionsOfInterest: at most this many (Rekognition's limit)
MAX_REGIONS = 10
#: Rekognition's own limits: 5 MB as raw bytes, 15 MB from S3.
MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024
#: base64 of MAX_BYTES plus room for the rest of the JSON; bodies beyond are not even read.
MAX_BODY = MAX_BYTES * 4 // 3 + 64 * 1024


class RekognitionError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _error(exc: RekognitionError) -> JSONResponse:
    return JSONResponse(
        {"__type": exc.kind, "Message": exc.message},
        status_code=exc.status,
        media_type=AMZ_JSON,
        headers={"x-amzn-ErrorType": exc.kind, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _invalid(message: str) -> RekognitionError:
    return RekognitionError(400, "InvalidParameterException", message)


def _number(body: dict[str, Any], name: str, low: float, high: float | None) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise _invalid(f"{name} must be {bounds}")
    return value


def _image_bytes(state: ApiState, image: Any) -> bytes:
    if not isinstance(image, dict) or not image:
        raise _invalid("Image must be an object with Bytes or S3Object")
    if "Bytes" in image:
        raw = image["Bytes"]
        if not isinstance(raw, str):
            raise _invalid("Image.Bytes must be a base64 string")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("Image.Bytes is not valid base64") from None
        if len(data) > MAX_BYTES:
            raise RekognitionError(
                400, "ImageTooLargeException", f"image is {len(data):,} bytes; limit {MAX_BYTES:,}"
            )
        return data
    s3 = image.get("S3Object")
    if isinstance(s3, dict) and all(isinstance(s3.get(k), str) for k in ("Bucket", "Name")):
        try:
            data = state.s3.read(S3Object(s3["Bucket"], s3["Name"], s3.get("Version")))
        except ApiError as exc:
            kind = "InvalidS3ObjectException" if exc.status in (403, 404) else "InternalServerError"
            raise RekognitionError(400 if exc.status < 500 else 500, kind, exc.message) from None
        if len(data) > MAX_S3_BYTES:
            raise RekognitionError(
                400, "ImageTooLargeException", f"object is {len(data):,} bytes; limit 15 MB"
            )
        return data
    raise _invalid("Image needs Bytes (base64) or S3Object {Bucket, Name}")


def _detect(state: ApiState, body: dict[str, Any]) -> dict[str, Any]:
    max_labels = _number(body, "MaxLabels", 0, None)
    min_confidence = _number(body, "MinConfidence", 0, 100)
    data = _image_bytes(state, body.get("Image"))
    try:
        detector = state.detector.get()
    except Exception as exc:  # noqa: BLE001 - analyzers not installed / model not built
        log.exception("label analyzers unavailable")
        raise RekognitionError(
            503, "ServiceUnavailableException", f"label analyzers unavailable: {exc}"
        ) from None
    start = perf_counter()
    try:
        response = detector.detect_bytes(
            data,
            max_labels=int(max_labels) if max_labels is not None else None,
            min_confidence=min_confidence,
        )
    except ImageError as exc:
        raise RekognitionError(400, "InvalidImageFormatException", str(exc)) from None
    state.metrics.detect_seconds.observe(perf_counter() - start)
    return response


def _ratio(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _invalid(f"{name} must be a number between 0 and 1")
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
            raise _invalid(f"{where}.Polygon must be a list of {{X, Y}}")
        xs = [_ratio(p.get("X"), f"{where}.Polygon.X") for p in points]
        ys = [_ratio(p.get("Y"), f"{where}.Polygon.Y") for p in points]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    raise _invalid(f"{where} needs a BoundingBox or a Polygon")


def _text_filters(body: dict[str, Any]) -> Any:
    """DetectText's ``Filters`` ({WordFilter: {MinConfidence, MinBoundingBoxHeight,
    MinBoundingBoxWidth}, RegionsOfInterest: [...]}) as a WordFilter, or None."""
    from pixdex.analyzers.text import WordFilter

    filters = body.get("Filters")
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise _invalid("Filters must be an object")
    words = filters.get("WordFilter") or {}
    if not isinstance(words, dict):
        raise _invalid("Filters.WordFilter must be an object")
    regions = filters.get("RegionsOfInterest") or []
    if not isinstance(regions, list) or len(regions) > MAX_REGIONS:
        raise _invalid(f"Filters.RegionsOfInterest must be a list of at most {MAX_REGIONS}")
    return WordFilter(
        min_confidence=_number(words, "MinConfidence", 0, 100) or 0.0,
        min_height=_number(words, "MinBoundingBoxHeight", 0, 1) or 0.0,
        min_width=_number(words, "MinBoundingBoxWidth", 0, 1) or 0.0,
        regions=tuple(_region(r, f"Filters.RegionsOfInterest[{i}]") for i, r in enumerate(regions)),
    )


def _detect_text(state: ApiState, body: dict[str, Any]) -> dict[str, Any]:
    filters = _text_filters(body)
    data = _image_bytes(state, body.get("Image"))
    try:
        detector = state.text.get()
    except Exception as exc:  # noqa: BLE001 - models missing or damaged
        log.exception("text analyzer unavailable")
        raise RekognitionError(
            503, "ServiceUnavailableException", f"text analyzer unavailable: {exc}"
        ) from None
    start = perf_counter()
    try:
        response = detector.detect_bytes(data, filters)
    except ImageError as exc:
        raise RekognitionError(400, "InvalidImageFormatException", str(exc)) from None
    state.metrics.detect_seconds.observe(perf_counter() - start)
    return response


async def _read_body(request: Request) -> bytes:
    """The request body, refusing (without buffering it) anything larger than MAX_BODY."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise RekognitionError(
            400, "ImageTooLargeException", f"request is {int(declared):,} bytes; limit {MAX_BODY:,}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise RekognitionError(
                400, "ImageTooLargeException", f"request is over {MAX_BODY:,} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _answer(request: Request, operation: Any = None) -> JSONResponse:
    state = get_state(request)
    try:
        try:
            body = json.loads(await _read_body(request))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _invalid("request body is not JSON") from None
        if not isinstance(body, dict):
            raise _invalid("request body must be a JSON object")
        response = await run_in_threadpool(operation or _detect, state, body)
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
                f"only {' and '.join(OPERATIONS)} are supported, not {target!r}",
            )
        )
    return await _answer(request, OPERATIONS[target])
