"""EXIF metadata worth searching and sorting by: when, with what camera, where.

Real-world EXIF is full of junk — zero denominators, "0000:00:00 00:00:00", NUL-padded strings,
GPS refs missing, offsets pointing past the end of the file — so every field is read on its own
and a bad one is left out instead of failing the image. The orientation tag is reported as found;
``pixdex.imaging.decode`` has already applied it to the pixels and the record's width/height.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from PIL import Image

from pixdex.imaging import DecodedImage

# Tag numbers (EXIF 2.32 / TIFF 6).
MAKE, MODEL, ORIENTATION, DATETIME, SOFTWARE = 0x010F, 0x0110, 0x0112, 0x0132, 0x0131
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
EXPOSURE_TIME, F_NUMBER, ISO, DATETIME_ORIGINAL, DATETIME_DIGITIZED = (
    0x829A,
    0x829D,
    0x8827,
    0x9003,
    0x9004,
)
OFFSET_TIME_ORIGINAL, OFFSET_TIME_DIGITIZED = 0x9011, 0x9012
SUBSEC_ORIGINAL, SUBSEC_DIGITIZED = 0x9291, 0x9292
FOCAL_LENGTH, LENS_MAKE, LENS_MODEL = 0x920A, 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

MAX_STRING = 200

_DATETIME = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


def text(value: Any) -> str | None:
    """A clean one-line string, or None: bytes decoded leniently, NUL padding and blanks gone."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", " ").strip()
    value = " ".join(value.split())
    return value[:MAX_STRING] or None


def number(value: Any) -> float | None:
    """A finite float from an int, float or (IFD)Rational, or the first item of a sequence of
    them (some writers store single values as 1-tuples); None for 0/0, x/0 and non-numbers."""
    if isinstance(value, tuple | list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def iso_datetime(value: Any, subsec: Any = None, offset: Any = None) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ sub-seconds, + "+HH:MM" offset when present) as ISO 8601;
    None for blanks, zeros and impossible dates."""
    raw = text(value)
    if raw is None:
        return None
    match = _DATETIME.match(raw)
    if not match:
        return None
    try:
        moment = datetime(*(int(g) for g in match.groups()))  # type: ignore[misc]
    except ValueError:
        return None
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = text(subsec)
    if digits and digits.isdigit():
        out += "." + digits[:6]
    tz = _OFFSET.match(text(offset) or "")
    if tz and int(tz.group(2)) <= 14 and int(tz.group(3)) < 60:
        out += f"{tz.group(1)}{tz.group(2)}:{tz.group(3)}"
    return out


def gps_coordinate(value: Any, ref: Any, limit: float) -> float | None:
    """Degrees from (degrees, minutes, seconds) rationals — or fewer parts, as some writers
    store — signed by the N/S/E/W ref; None when any part is unreadable or out of range."""
    parts = value if isinstance(value, tuple | list) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    nums = [number(p) for p in parts]
    if any(n is None for n in nums):
        return None
    deg = 0.0
    for n, scale in zip(nums, (1.0, 60.0, 3600.0), strict=False):
        deg += abs(n) / scale  # type: ignore[arg-type]
    if nums[0] < 0:  # type: ignore[operator]
        deg = -deg
    direction = (text(ref) or "").upper()[:1]
    if direction in ("S", "W"):
        deg = -abs(deg)
    elif direction in ("N", "E"):
        deg = abs(deg)
    if not -limit <= deg <= limit:
        return None
    return round(deg, 7)  # ~1 cm: more digits are noise


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(exif.get_ifd(tag))
    except Exception:  # noqa: BLE001 - a broken sub-IFD must not lose the rest
        return {}


def gps(tags: dict[int, Any]) -> dict[str, float] | None:
    """{"lat", "lon"} (+ "alt" in metres when present), or None. 0/0 — what many devices write
    when they had no fix — counts as no position."""
    lat = gps_coordinate(tags.get(GPS_LAT), tags.get(GPS_LAT_REF), 90.0)
    lon = gps_coordinate(tags.get(GPS_LON), tags.get(GPS_LON_REF), 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    out = {"lat": lat, "lon": lon}
    alt = number(tags.get(GPS_ALT))
    if alt is not None:
        ref = tags.get(GPS_ALT_REF)
        below = ref in (1, b"\x01") or number(ref) == 1
        out["alt"] = round(-abs(alt) if below else alt, 2)
    return out


def read_exif(exif: Image.Exif | None) -> dict[str, Any] | None:
    """The searchable EXIF fields of one image, or None when it has none. Never raises."""
    if exif is None:
        return None
    try:
        base = dict(exif)
    except Exception:  # noqa: BLE001
        return None
    if not base:
        return None
    sub = _ifd(exif, EXIF_IFD) if EXIF_IFD in base else {}
    gps_tags = _ifd(exif, GPS_IFD) if GPS_IFD in base else {}

    out: dict[str, Any] = {}

    def put(key: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
        except Exception:  # noqa: BLE001 - one bad field must not lose the others
            return
        if value is not None:
            out[key] = value

    def taken() -> str | None:
        for stamp, subsec, offset in (
            (DATETIME_ORIGINAL, SUBSEC_ORIGINAL, OFFSET_TIME_ORIGINAL),
            (DATETIME_DIGITIZED, SUBSEC_DIGITIZED, OFFSET_TIME_DIGITIZED),
        ):
            value = iso_datetime(sub.get(stamp), sub.get(subsec), sub.get(offset))
            if value:
                return value
        return None

    def orientation() -> int | None:
        value = number(base.get(ORIENTATION))
        return int(value) if value is not None and value in (1, 2, 3, 4, 5, 6, 7, 8) else None

    def positive(tag: int, digits: int = 6) -> Callable[[], float | None]:
        def read() -> float | None:
            value = number(sub.get(tag))
            return round(value, digits) if value is not None and value > 0 else None

        return read

    def iso() -> int | None:
        value = number(sub.get(ISO))
        return int(value) if value is not None and 0 < value < 10_000_000 else None

    put("DateTimeOriginal", taken)
    put("DateTime", lambda: iso_datetime(base.get(DATETIME)))
    put("Make", lambda: text(base.get(MAKE)))
    put("Model", lambda: text(base.get(MODEL)))
    put("LensMake", lambda: text(sub.get(LENS_MAKE)))
    put("LensModel", lambda: text(sub.get(LENS_MODEL)))
    put("Software", lambda: text(base.get(SOFTWARE)))
    put("Orientation", orientation)
    put("ExposureTime", positive(EXPOSURE_TIME, 8))
    put("FNumber", positive(F_NUMBER, 2))
    put("ISO", iso)
    put("FocalLength", positive(FOCAL_LENGTH, 2))
    put("GPS", lambda: gps(gps_tags))
    return out or None


class ExifAnalyzer:
    """``{"exif": {...}}`` per image (``{"exif": None}`` when it has no EXIF)."""

    name = "exif"
    version = "1"
    min_side = 0  # reads metadata only

    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        return [{"exif": read_exif(d.exif)} for d in images]
