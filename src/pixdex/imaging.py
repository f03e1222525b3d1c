"""Decode image bytes once, robustly, into the RGB picture every analyzer reads.

Bad input never escapes as a random exception: every way an image can be unusable becomes an
ImageError with a one-line reason that is stored as the image's failure.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from pixdex.errors import ImageError

# Decompression bombs: Pillow's own default warns at ~89 Mpx and refuses at twice that. A photo
# library holds panoramas, so the cap is generous but explicit (configurable via settings).
DEFAULT_MAX_PIXELS = 100_000_000

# EXIF orientation → the transpose that undoes it (as ``ImageOps.exif_transpose`` does, minus its
# re-serialising of the EXIF block, which raises on malformed tags and lost such photos).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(slots=True)
class DecodedImage:
    """An image ready for analysis: RGB, EXIF orientation applied, maybe reduced by draft mode.

    ``width``/``height`` are the full-resolution size after orientation (what the record stores);
    ``image`` may be smaller when JPEG DCT scaling was used (see ``decode``'s ``min_side``).
    """

    image: Image.Image
    width: int
    height: int
    format: str
    exif: Image.Exif = field(default_factory=Image.Exif)
    info: dict[str, Any] = field(default_factory=dict)


def decode(data: bytes, *, min_side: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode ``data``; with ``min_side`` > 0, let JPEG draft mode shrink while the shorter side
    stays ≥ ``min_side`` (DCT scaling is several times faster than decoding at full size)."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: {width}x{height} = {width * height:,} pixels "
                    f"(limit {max_pixels:,})"
                )
            exif = _read_exif(img)
            orientation = exif.get(0x0112, 1)
            transpose = _ORIENT.get(orientation) if isinstance(orientation, int) else None
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/WebP/APNG: the first frame stands for the image
            if min_side and fmt == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()
            info = dict(img.info)
            if transpose is not None:
                img = img.transpose(transpose)
            rgb = to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format Pillow cannot read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = "truncated image data"
        raise ImageError(f"corrupt image: {reason}") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise TypeError, struct.error…
        raise ImageError(f"corrupt image: {type(exc).__name__}: {exc}") from None
    return DecodedImage(image=rgb, width=width, height=height, format=fmt, exif=exif, info=info)


def _read_exif(img: Image.Image) -> Image.Exif:
    """The image's EXIF, or an empty one when it is unreadable: metadata is optional, and a
    broken EXIF block must not cost the pixels."""
    try:
        return img.getexif()
    except Exception:  # noqa: BLE001
        return Image.Exif()


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: alpha composited on white, palettes expanded, CMYK converted,
    16/32-bit greyscale scaled down rather than clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(arr.max()) if arr.size else 0.0
        if img.mode == "F":
            scale = 255.0 if hi <= 1.0 else 255.0 / hi  # float images: 0..1 by convention
        elif img.mode.startswith("I;16"):
            scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        else:
            scale = 255.0 / max(hi, 255.0)
        grey = Image.fromarray(np.clip(arr * scale, 0, 255).astype("uint8"), "L")
        return grey.convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
