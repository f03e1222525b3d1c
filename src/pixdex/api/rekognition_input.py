"""What every Rekognition-compatible action takes from its request, checked as Rekognition does.

One place for the parts all image actions share (DetectLabels today; DetectText and others reuse
``read_body``, ``parse_body``, ``number`` and ``request_image``):

- the body: at most ``MAX_BODY`` bytes read, JSON within ``safejson``'s depth bound, no
  NaN/Infinity, an object;
- ``Image``: exactly one of ``Bytes`` (base64, ≤ 5 MB decoded) and ``S3Object`` (≤ 15 MB; only
  from buckets/prefixes listed in ``rekognition.s3_sources`` — otherwise anyone who can reach
  the endpoint could read any object the server's credentials can; the size comes from
  HeadObject before a byte is downloaded, and the download stops at the limit anyway);
- the image itself: JPEG or PNG, at least 80 and at most 10,000 pixels on each side, read from
  the header before anything is decoded.

Errors are Rekognition's names — ``InvalidParameterException``, ``InvalidImageFormatException``,
``ImageTooLargeException``, ``InvalidS3ObjectException``, ``AccessDeniedException`` — so SDKs
raise the exceptions their users already handle.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from PIL import Image, UnidentifiedImageError

from pixdex import safejson
from pixdex.api.errors import ApiError
from pixdex.api.media import S3Object

if TYPE_CHECKING:
    from pixdex.api.state import ApiState

#: Rekognition's limits (DetectLabels, DetectText, …): 5 MB as raw bytes, 15 MB from S3.
MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024
#: base64 of MAX_BYTES plus room for the rest of the JSON; bodies beyond are not even read.
MAX_BODY = MAX_BYTES * 4 // 3 + 64 * 1024
MIN_SIDE = 80
MAX_SIDE = 10_000
#: Pillow format names Rekognition accepts (MPO is a JPEG with extra frames, from cameras).
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}


class RekognitionError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}


def invalid(message: str) -> RekognitionError:
    return RekognitionError(400, "InvalidParameterException", message)


def too_large(message: str) -> RekognitionError:
    return RekognitionError(400, "ImageTooLargeException", message)


def bad_format(message: str) -> RekognitionError:
    return RekognitionError(400, "InvalidImageFormatException", message)


# --- the body ------------------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The request body, refusing (without buffering it) anything larger than MAX_BODY."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large(f"request is {int(declared):,} bytes; limit {MAX_BODY:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large(f"request is over {MAX_BODY:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request JSON object; InvalidParameterException for anything else."""
    try:
        body = safejson.loads(raw)
    except safejson.JsonError as exc:
        raise invalid(f"request body is not JSON Rekognition accepts: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def number(
    body: dict[str, Any], name: str, low: float, high: float | None, *, integer: bool = False
) -> float | None:
    """``body[name]`` as a finite number within [low, high] (an integer when asked), or None."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(f"{name} must be a finite number")
    if integer and value != int(value):
        raise invalid(f"{name} must be a whole number")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise invalid(f"{name} must be {bounds}")
    return value


# --- the image -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """The request's ``Image``: decoded bytes, or the S3 object to read."""

    data: bytes | None = None
    s3: S3Object | None = None


def image_spec(image: Any) -> ImageSpec:
    """``Image`` parsed and checked without touching S3 or decoding anything."""
    if not isinstance(image, dict) or not image:
        raise invalid("Image must be an object with Bytes or S3Object")
    if "Bytes" in image and "S3Object" in image:
        raise invalid("Image takes Bytes or S3Object, not both")
    if "Bytes" in image:
        raw = image["Bytes"]
        if not isinstance(raw, str):
            raise invalid("Image.Bytes must be a base64 string")
        if len(raw) > MAX_BYTES * 4 // 3 + 4:
            raise too_large(f"image is over the limit of {MAX_BYTES:,} bytes")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("Image.Bytes is not valid base64") from None
        if len(data) > MAX_BYTES:
            raise too_large(f"image is {len(data):,} bytes; limit {MAX_BYTES:,}")
        if not data:
            raise invalid("Image.Bytes is empty")
        return ImageSpec(data=data)
    s3 = image.get("S3Object")
    if s3 is not None:
        if not isinstance(s3, dict) or not all(
            isinstance(s3.get(k), str) and s3.get(k) for k in ("Bucket", "Name")
        ):
            raise invalid("Image.S3Object needs Bucket and Name (strings)")
        version = s3.get("Version")
        if version is not None and not isinstance(version, str):
            raise invalid("Image.S3Object.Version must be a string")
        if len(s3["Name"].encode("utf-8", "replace")) > 1024 or len(s3["Bucket"]) > 255:
            raise invalid("Image.S3Object: Bucket or Name too long")
        return ImageSpec(s3=S3Object(s3["Bucket"], s3["Name"], version or None))
    raise invalid("Image needs Bytes (base64) or S3Object {Bucket, Name}")


def s3_allowed(obj: S3Object, sources: list[str]) -> bool:
    """Whether ``obj`` lies under one of ``sources`` (``s3://bucket`` or ``s3://bucket/prefix``)."""
    for source in sources:
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        if obj.bucket == bucket and obj.key.startswith(prefix):
            return True
    return False


def _read_s3(state: ApiState, obj: S3Object) -> bytes:
    where = f"s3://{obj.bucket}/{obj.key}"
    if not state.settings.rekognition.s3_sources:
        raise RekognitionError(
            403,
            "AccessDeniedException",
            "S3Object is turned off on this server: send Image.Bytes, or list the buckets it may "
            "read in rekognition.s3_sources (docs/security.md)",
        )
    if not s3_allowed(obj, state.settings.rekognition.s3_sources):
        raise RekognitionError(
            403, "AccessDeniedException", f"{where} is not in this server's rekognition.s3_sources"
        )
    try:
        size = state.s3.head(obj)
        if size is not None and size > MAX_S3_BYTES:
            raise too_large(f"object is {size:,} bytes; limit {MAX_S3_BYTES:,} (15 MB)")
        return state.s3.read(obj, max_bytes=MAX_S3_BYTES)
    except ApiError as exc:
        if exc.status == 413:
            raise too_large(f"object is over {MAX_S3_BYTES:,} bytes (15 MB)") from None
        if exc.status < 500:
            raise RekognitionError(400, "InvalidS3ObjectException", exc.message) from None
        raise RekognitionError(503, "ServiceUnavailableException", exc.message) from None


def check_image(data: bytes, *, max_pixels: int | None = None) -> tuple[str, int, int]:
    """(format, width, height) of an image Rekognition would accept, read from its header only
    (no pixel is decoded); Rekognition's exception otherwise."""
    if not data:
        raise bad_format("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format or "", img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise bad_format("not a JPEG or PNG image (unreadable header)") from None
    except Image.DecompressionBombError:
        raise too_large("image has too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - Pillow plugins raise TypeError, struct.error…
        raise bad_format(f"not a JPEG or PNG image ({type(exc).__name__})") from None
    if fmt not in FORMATS:
        raise bad_format(f"{fmt or 'this'} images are not supported: send JPEG or PNG")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise too_large(f"image is {width}x{height} pixels; at most {MAX_SIDE:,} on each side")
    if max_pixels is not None and width * height > max_pixels:
        raise too_large(f"image is {width}x{height} pixels; this server takes {max_pixels:,}")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise invalid(f"image is {width}x{height} pixels; at least {MIN_SIDE} on each side")
    return FORMATS[fmt], width, height


def request_image(state: ApiState, body: dict[str, Any]) -> bytes:
    """The bytes of the request's ``Image``, fetched if from S3 and checked: the one call every
    image action makes before decoding."""
    spec = image_spec(body.get("Image"))
    data = spec.data if spec.data is not None else _read_s3(state, spec.s3)  # type: ignore[arg-type]
    check_image(data, max_pixels=state.settings.max_pixels)
    return data
