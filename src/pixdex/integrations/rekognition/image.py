"""Photos as Rekognition accepts them: JPEG or PNG, at most 5 MB as raw bytes (15 MB from S3), at
most 10,000 px and at least 80 px a side.

Only what is outside those limits is changed — converted to JPEG, scaled down, re-encoded — and
the change is described in one line that the record keeps, so nobody wonders why Rekognition's
boxes fit a smaller picture than the original. A converted image is turned upright first (EXIF
orientation applied, as Rekognition itself does for JPEGs it receives), so boxes are in the same
frame either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pixdex.errors import ImageError
from pixdex.imaging import DEFAULT_MAX_PIXELS, decode

MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024
MAX_SIDE = 10_000
MIN_SIDE = 80
FORMATS = ("JPEG", "PNG")
#: suffixes Rekognition reads from S3 as they are (anything else is read and converted first)
S3_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png")
JPEG_QUALITY = 90
#: each further try at fitting 5 MB scales the sides by this
SHRINK = 0.8


@dataclass(frozen=True, slots=True)
class Prepared:
    """Bytes ready for ``Image.Bytes``; ``note`` says what was changed and why (None: nothing)."""

    data: bytes
    note: str | None
    width: int  # the original's upright size and format, for the record
    height: int
    format: str


def _header(data: bytes, max_pixels: int) -> tuple[str, int, int, int]:
    """Format, stored width and height, EXIF orientation — from the header, no pixels decoded."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "unknown"
            width, height = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
                orientation = 1
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt image: {exc or type(exc).__name__}") from None
    if width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} = {width * height:,} pixels (limit {max_pixels:,})"
        )
    return fmt, width, height, orientation if isinstance(orientation, int) else 1


def prepare(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prepared:
    """``data`` as it is when Rekognition accepts it, else converted; ImageError when no
    conversion can help (not an image, smaller than 80 px, over ``max_pixels``)."""
    fmt, width, height, orientation = _header(data, max_pixels)
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"image is {width}x{height} px; Rekognition needs at least {MIN_SIDE} px a side"
        )
    reasons = []
    if fmt not in FORMATS:
        reasons.append(f"{fmt} is not JPEG/PNG")
    if max(width, height) > MAX_SIDE:
        reasons.append(f"{width}x{height} px is over {MAX_SIDE:,} px a side")
    if len(data) > MAX_BYTES:
        reasons.append(f"{len(data):,} bytes is over 5 MB")
    if not reasons:
        return Prepared(data, None, *upright, fmt)

    picture = decode(data, max_pixels=max_pixels).image  # RGB, upright, full size
    scale = min(1.0, MAX_SIDE / max(picture.size))
    while True:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        resized = (
            picture if size == picture.size else picture.resize(size, Image.Resampling.LANCZOS)
        )
        out = io.BytesIO()
        resized.save(out, "JPEG", quality=JPEG_QUALITY)
        if out.tell() <= MAX_BYTES:
            break
        scale *= SHRINK
    if min(size) < MIN_SIDE:  # a panorama so long that 5 MB cannot keep 80 px of height
        raise ImageError(f"cannot fit {width}x{height} px into Rekognition's limits")
    note = f"sent as JPEG {size[0]}x{size[1]}, {out.tell():,} bytes: {'; '.join(reasons)}"
    return Prepared(out.getvalue(), note, *upright, fmt)
