"""A Rekognition-compatible DetectLabels endpoint, answered by the local label analyzers.

Two doors to the same operation:
- ``POST /rekognition/detect-labels`` with the DetectLabels request JSON — for curl and scripts;
- ``POST /rekognition`` with ``X-Amz-Target: RekognitionService.DetectLabels`` — the AWS JSON 1.1
  protocol, so unmodified AWS SDKs and the AWS CLI work with
  ``--endpoint-url http://host:port/rekognition`` (any credentials; signatures are not checked:
  the server's own API token, ``Authorization: Bearer``, guards it when one is set).

The response is what ``pixdex detect-labels`` prints. Requests are checked as Rekognition checks
them (``rekognition_input``: JPEG/PNG, 5 MB / 15 MB, 80–10,000 px, S3Object only from allowed
buckets) and errors use Rekognition's shape (``{"__type": "InvalidImageFormatException",
"Message": …}``) so SDKs raise the usual exceptions.
"""

from __future__ import annotations

import logging
import threading
import uuid
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixdex.api.rekognition_input import (
    MAX_BODY,
    MAX_BYTES,
    MAX_S3_BYTES,
    RekognitionError,
    number,
    parse_body,
    read_body,
    request_image,
)
from pixdex.api.state import ApiState, get_state
from pixdex.imaging import ImageError

log = logging.getLogger(__name__)

router = APIRouter(tags=["rekognition"])

__all__ = ["MAX_BODY", "MAX_BYTES", "MAX_S3_BYTES", "RekognitionError", "router"]

AMZ_JSON = "application/x-amz-json-1.1"
TARGET = "RekognitionService.DetectLabels"
#: Decodes + analyses at once: inference already uses every core, and each decode of a
#: 10,000 x 10,000 PNG holds ~300 MB, so more in parallel only multiplies peak memory.
ANALYSIS_SLOTS = threading.BoundedSemaphore(2)


def _error(exc: RekognitionError) -> JSONResponse:
    return JSONResponse(
        {"__type": exc.kind, "Message": exc.message},
        status_code=exc.status,
        media_type=AMZ_JSON,
        headers={"x-amzn-ErrorType": exc.kind, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _detect(state: ApiState, body: dict[str, Any]) -> dict[str, Any]:
    max_labels = number(body, "MaxLabels", 0, None, integer=True)
    min_confidence = number(body, "MinConfidence", 0, 100)
    data = request_image(state, body)
    try:
        detector = state.detector.get()
    except Exception as exc:  # noqa: BLE001 - analyzers not installed / model not built
        log.error("label analyzers unavailable: %s", exc)
        raise RekognitionError(
            503, "ServiceUnavailableException", f"label analyzers unavailable: {exc}"
        ) from None
    start = perf_counter()
    try:
        with ANALYSIS_SLOTS:
            response = detector.detect_bytes(
                data,
                max_labels=int(max_labels) if max_labels is not None else None,
                min_confidence=min_confidence,
            )
    except ImageError as exc:
        raise RekognitionError(400, "InvalidImageFormatException", str(exc)) from None
    state.metrics.detect_seconds.observe(perf_counter() - start)
    return response


async def _answer(request: Request) -> JSONResponse:
    state = get_state(request)
    try:
        body = parse_body(await read_body(request))
        response = await run_in_threadpool(_detect, state, body)
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


@router.post("/rekognition", summary="AWS JSON 1.1 protocol (SDKs, AWS CLI)")
@router.post("/rekognition/", include_in_schema=False)
async def aws_protocol(request: Request) -> JSONResponse:
    target = request.headers.get("x-amz-target", "")
    if target != TARGET:
        return _error(
            RekognitionError(
                400, "UnknownOperationException", f"only {TARGET} is supported, not {target[:80]!r}"
            )
        )
    return await _answer(request)
