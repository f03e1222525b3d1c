"""A corpus of hostile and awkward images, generated (nothing downloaded, nothing committed):
what a photo folder or bucket really holds next to ordinary JPEGs.

``corpus(dog)`` returns key → Case; ``Case.fails`` is the substring the one-line failure reason
must contain, or None when the file must be indexed. Keys cover the awkward names too: spaces,
``+`` (form-encoded as a space in S3 events), ``%``, non-ASCII, emoji, and a key of ~900 bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    data: bytes
    fails: str | None = None  # substring of the failure reason; None: indexed
    format: str | None = None  # Pillow format the record must say, when indexed
    size: tuple[int, int] | None = None  # upright (width, height) the record must say


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4}.get(mode, 1)
    arr = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(arr.squeeze(), mode)


def png_header_bomb(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims width x height over a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rotated_with_exif(upright_jpeg: bytes) -> bytes:
    """The same photo stored rotated, with EXIF orientation 6 saying how to turn it upright."""
    upright = Image.open(io.BytesIO(upright_jpeg)).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 undoes this
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(stored, "JPEG", quality=92, exif=exif.tobytes())


def corrupt_exif(jpeg: bytes) -> bytes:
    """An APP1 Exif segment full of garbage inserted after SOI."""
    payload = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + bytes(range(256)) * 3
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (120, 90), colour) for colour in ("red", "green", "blue")]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def corpus(dog: Path) -> dict[str, Case]:
    jpeg = dog.read_bytes()
    with Image.open(dog) as img:
        dog_size = img.size
    png = _save(_noise(160, 120), "PNG")
    long_dir = "/".join(["deep-" + "d" * 60] * 12)  # ~780 bytes of folders
    cases = {
        "dog.jpg": Case(jpeg, format="JPEG", size=dog_size),
        "empty.jpg": Case(b"", fails="empty file"),
        "truncated.png": Case(png[: len(png) // 2], fails="corrupt image"),
        "header-only.jpg": Case(jpeg[:600], fails="corrupt image"),
        "png-named.jpg": Case(png, format="PNG", size=(160, 120)),
        "jpeg-named.png": Case(jpeg, format="JPEG", size=dog_size),
        "text-named.jpg": Case(b"just some text, not a photo\n" * 10, fails="not an image"),
        "html-named.webp": Case(b"<!doctype html><html>oops</html>", fails="not an image"),
        "bomb.png": Case(_save(Image.new("1", (12_000, 12_000)), "PNG"), fails="too large"),
        "header-bomb.png": Case(png_header_bomb(60_000, 60_000), fails="too large"),
        "gray16.png": Case(
            _save(Image.fromarray(np.full((90, 120), 40_000, dtype=np.uint16)), "PNG"),
            format="PNG",
            size=(120, 90),
        ),
        "cmyk.jpg": Case(_save(_noise(120, 90, "CMYK"), "JPEG"), format="JPEG", size=(120, 90)),
        "palette.png": Case(
            _save(_noise(120, 90).convert("P"), "PNG", transparency=0), format="PNG", size=(120, 90)
        ),
        "alpha.png": Case(_save(_noise(120, 90, "RGBA"), "PNG"), format="PNG", size=(120, 90)),
        "grey-alpha.png": Case(_save(_noise(120, 90, "LA"), "PNG"), format="PNG", size=(120, 90)),
        "animated.gif": Case(animated("GIF"), format="GIF", size=(120, 90)),
        "animated.webp": Case(animated("WEBP"), format="WEBP", size=(120, 90)),
        "rotated-exif.jpg": Case(rotated_with_exif(jpeg), format="JPEG", size=dog_size),
        "corrupt-exif.jpg": Case(corrupt_exif(jpeg), format="JPEG", size=dog_size),
        "names/été à Zürich 日本 🐶.jpg": Case(jpeg, format="JPEG", size=dog_size),
        "names/spaces and+plus/a b+c=d.png": Case(png, format="PNG", size=(160, 120)),
        "names/100% real & 'quoted' #1.jpg": Case(jpeg, format="JPEG", size=dog_size),
        f"names/{long_dir}/long.jpg": Case(jpeg, format="JPEG", size=dog_size),
    }
    return cases


def write(cases: dict[str, Case], folder: Path) -> None:
    for key, case in cases.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.data)
