"""One JSON error shape for the whole API: ``{"error": <kind>, "message": <one line>, "status"}``.

FastAPI's defaults (422 with a nested ``detail`` list, HTML-ish 404s for unknown paths) are
replaced so clients and the gallery can show ``message`` as is: bad parameters are 400, an unknown
id 404; every ``PixdexError`` a handler lets through gets the status of its class here
(``STATUS``): an index that cannot be reached 503 with the backend's reason, an integration that
is not installed 501 with the pip command. The one place errors become HTTP answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixdex.errors import (
    InputError,
    MissingExtra,
    PixdexError,
    QueryError,
    Unavailable,
)

log = logging.getLogger(__name__)

KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal_error",
    501: "not_installed",
    502: "bad_gateway",
    503: "unavailable",
}


#: HTTP status of each kind of PixdexError (the first that matches)
STATUS: tuple[tuple[type[PixdexError], int], ...] = (
    (MissingExtra, 501),
    (QueryError, 400),
    (InputError, 400),
    (Unavailable, 503),
    (PixdexError, 500),
)


class ApiError(Exception):
    """Raised by handlers for an expected failure; becomes the JSON error response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    redact: Callable[[str], str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The JSON error; ``redact`` hides secrets and server paths from the client."""
    if redact is not None:
        message = redact(message)
    body = {"error": KINDS.get(status, "error"), "message": message, "status": status, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _redactor(request: Request) -> Callable[[str], str] | None:
    state = getattr(request.app.state, "pixdex", None)
    return getattr(state, "redact", None)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path"))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers, _redactor(request))

    @app.exception_handler(PixdexError)
    async def _pixdex_error(request: Request, exc: PixdexError) -> JSONResponse:
        status = next(code for kind, code in STATUS if isinstance(exc, kind))
        log.warning("%s %s: %s", request.method, request.url.path, exc)  # the full reason
        headers = {"Retry-After": "5"} if status == 503 else None
        return error_response(status, str(exc), headers, _redactor(request))

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe(e) for e in exc.errors()]
        return error_response(
            400, "; ".join(problems) or "invalid request", None, _redactor(request)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else KINDS.get(exc.status_code, "")
        return error_response(
            exc.status_code, message, getattr(exc, "headers", None), _redactor(request)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")
