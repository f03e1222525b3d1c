"""Bad and unusual input for ``pixdex.imaging.decode``, then the cheap analyzers on the result:
a clear ImageError or a correct RGB image, never a random exception."""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixdex.analyzers.exif import ExifAnalyzer
from pixdex.analyzers.properties import PropertiesAnalyzer
from pixdex.errors import ImageError
from pixdex.imaging import DecodedImage, decode


def save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def analyze(decoded: DecodedImage) -> dict:
    """Both cheap analyzers must accept whatever decode returns."""
    props = PropertiesAnalyzer().analyze([decoded])[0]["ImageProperties"]
    ExifAnalyzer().analyze([decoded])
    return props


def top_color(decoded: DecodedImage) -> str:
    return analyze(decoded)["DominantColors"][0]["CSSColor"]


def assert_rgb(decoded: DecodedImage, size: tuple[int, int]) -> None:
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == size
    assert (decoded.width, decoded.height) == size


def pixel(decoded: DecodedImage, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    return decoded.image.getpixel(xy)  # type: ignore[return-value]


# --- unusual modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("min_side", [0, 64])
def test_cmyk_jpeg(min_side: int) -> None:
    data = save(Image.new("CMYK", (400, 300), (0, 255, 255, 0)), "JPEG")  # pure red ink
    decoded = decode(data, min_side=min_side)
    assert decoded.format == "JPEG"
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (400, 300)
    r, g, b = pixel(decoded, (10, 10))
    assert r > 240 and g < 15 and b < 15
    assert top_color(decoded) == "red"


def test_16_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(10, axis=0).repeat(10, axis=1)
    data = save(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode(data)
    assert_rgb(decoded, (30, 10))
    assert [pixel(decoded, (x, 5))[0] for x in (5, 15, 25)] == [0, 127, 255]
    assert {c["CSSColor"] for c in analyze(decoded)["DominantColors"]} == {"black", "gray", "white"}


def test_16_bit_tiff_and_32_bit_int_and_float() -> None:
    ramp = np.linspace(0, 1, 64, dtype=np.float64).reshape(8, 8)
    for img, mid in [
        (Image.fromarray((ramp * 65535).astype(np.uint16)), 127),
        (Image.fromarray((ramp * 1000).astype(np.int32)), 127),  # I: scaled to its maximum
        (Image.fromarray(ramp.astype(np.float32)), 127),  # F in 0..1
    ]:
        decoded = decode(save(img, "TIFF"))
        assert_rgb(decoded, (8, 8))
        grey = np.asarray(decoded.image)[..., 0].astype(int)
        assert grey.min() == 0 and grey.max() in (254, 255)
        assert abs(int(np.median(grey)) - mid) <= 3
        analyze(decoded)


def test_paletted_png_with_transparency() -> None:
    img = Image.new("P", (40, 20), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (20, 0, 40, 20))  # right half: index 1 (blue), made transparent
    decoded = decode(save(img, "PNG", transparency=1))
    assert_rgb(decoded, (40, 20))
    assert pixel(decoded, (5, 5)) == (255, 0, 0)
    assert pixel(decoded, (30, 5)) == (255, 255, 255)  # transparent → white, not blue
    shares = {c["CSSColor"]: c["PixelPercent"] for c in analyze(decoded)["DominantColors"]}
    assert shares == {"red": pytest.approx(50.0), "white": pytest.approx(50.0)}


def test_paletted_gif_without_transparency() -> None:
    img = Image.new("RGB", (30, 30), (0, 128, 0)).convert("P", palette=Image.Palette.ADAPTIVE)
    decoded = decode(save(img, "GIF"))
    assert pixel(decoded) == (0, 128, 0)


def test_rgba_composited_on_white() -> None:
    img = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    img.paste((0, 0, 255, 255), (0, 0, 10, 20))  # opaque blue left half
    img.paste((0, 0, 0, 128), (10, 0, 20, 10))  # half-transparent black, top right
    decoded = decode(save(img, "PNG"))
    assert_rgb(decoded, (20, 20))
    assert pixel(decoded, (2, 2)) == (0, 0, 255)
    assert pixel(decoded, (15, 15)) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in pixel(decoded, (15, 2)))
    analyze(decoded)


def test_la_and_one_bit() -> None:
    la = decode(save(Image.new("LA", (10, 10), (0, 255)), "PNG"))
    assert pixel(la) == (0, 0, 0)
    assert top_color(la) == "black"
    la_half = decode(save(Image.new("LA", (10, 10), (0, 128)), "PNG"))
    assert all(abs(v - 127) <= 1 for v in pixel(la_half))
    bits = decode(save(Image.new("1", (10, 10), 1), "PNG"))
    assert pixel(bits) == (255, 255, 255)


def test_greyscale_coco_jpeg(coco_images: list[Path]) -> None:
    (path,) = [p for p in coco_images if Image.open(p).mode == "L"]
    decoded = decode(path.read_bytes(), min_side=224)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == Image.open(path).size
    analyze(decoded)


# --- animation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (32, 24), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 3
    decoded = decode(buf.getvalue())
    assert_rgb(decoded, (32, 24))
    r, g, b = pixel(decoded, (16, 12))
    assert r > 240 and g < 15 and b < 15
    assert top_color(decoded) == "red"


# --- size limits --------------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header announcing width x height RGB, with almost no pixel data: what a
    decompression bomb looks like before anything is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose SOF header is patched to announce another size."""
    data = bytearray(save(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        png_header_only(12_000, 12_000),  # 144 Mpx: over pixdex's 100 Mpx cap
        png_header_only(50_000, 50_000),  # 2.5 Gpx: over Pillow's own bomb limit too
        jpeg_claiming(65_000, 65_000),
        jpeg_claiming(20_000, 6_000),
    ],
    ids=["png-144Mpx", "png-2.5Gpx", "jpeg-4.2Gpx", "jpeg-120Mpx"],
)
def test_decompression_bomb_is_refused_fast_without_allocating(data: bytes) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageError, match="too large"):
            decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 0.5
    assert peak < 5_000_000  # bytes: nothing image-sized was allocated


def test_max_pixels_is_configurable() -> None:
    data = save(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match=r"100x100 = 10,000 pixels \(limit 5,000\)"):
        decode(data, max_pixels=5_000)
    assert decode(data, max_pixels=10_000).width == 100


# --- broken files -------------------------------------------------------------------------------


def test_truncated_jpeg_clear_error_or_correct_image(coco_images: list[Path]) -> None:
    data = coco_images[0].read_bytes()
    full = np.asarray(decode(data).image, dtype=np.int16)
    for cut in (2, 100, 600, len(data) // 4, len(data) // 2, len(data) - 200):
        with pytest.raises(ImageError, match="truncated|corrupt|not an image"):
            decode(data[:cut])
    # Missing only the end-of-image marker: an error is fine, a wrong picture is not.
    try:
        decoded = decode(data[:-2])
    except ImageError as exc:
        assert "truncated" in str(exc)
    else:
        assert np.abs(np.asarray(decoded.image, dtype=np.int16) - full).max() <= 1
        analyze(decoded)


def test_truncated_png() -> None:
    data = save(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match="truncated|corrupt"):
        decode(data[: len(data) // 2])


def test_empty_and_non_image() -> None:
    with pytest.raises(ImageError, match="empty file"):
        decode(b"")
    for junk in [b"hello, world", b"\x00" * 1000, b"%PDF-1.4\n" + b"x" * 100, b"\xff\xd8\xff"]:
        with pytest.raises(ImageError):
            decode(junk)


def test_corrupted_files_only_raise_image_error(coco_images: list[Path]) -> None:
    """Random byte flips in the first 600 bytes of small images in six formats: every outcome is
    an RGB image the analyzers accept or an ImageError (a TIFF once escaped as TypeError)."""
    base = Image.open(coco_images[0]).convert("RGB").resize((96, 72))
    rng = random.Random(7)
    outcomes = {"ok": 0, "error": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"):
            data = save(base, fmt)
            for _ in range(60):
                corrupt = bytearray(data)
                for _ in range(rng.randint(1, 6)):
                    corrupt[rng.randrange(0, min(len(corrupt), 600))] = rng.randrange(256)
                try:
                    decoded = decode(bytes(corrupt), min_side=rng.choice([0, 32]))
                except ImageError:
                    outcomes["error"] += 1
                    continue
                assert decoded.image.mode == "RGB"
                analyze(decoded)
                outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


# --- orientation --------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    """Every orientation gives the pixels ImageOps.exif_transpose gives, and width/height are
    those of the upright image."""
    img = Image.new("RGB", (40, 30), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 10, 5))  # a marker in the top-left corner
    img.paste((0, 0, 255), (30, 25, 40, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(img, "PNG", exif=exif)  # lossless: exact pixel comparison
    decoded = decode(data)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert decoded.image.size == expected.size
    assert (decoded.width, decoded.height) == expected.size
    assert np.array_equal(np.asarray(decoded.image), np.asarray(expected))
    assert ExifAnalyzer().analyze([decoded])[0]["exif"] == {"Orientation": orientation}


def test_orientation_6_with_draft_mode() -> None:
    """A phone photo stored landscape with orientation 6: full size portrait in the record, the
    draft-reduced pixels portrait too."""
    img = Image.new("RGB", (1600, 1200), (200, 200, 200))
    img.paste((255, 0, 0), (0, 0, 400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(save(img, "JPEG", exif=exif), min_side=224)
    assert (decoded.width, decoded.height) == (1200, 1600)
    w, h = decoded.image.size
    assert h > w and min(w, h) >= 224 and max(w, h) < 1600
    r, g, b = pixel(decoded, (w - 5, 5))  # top-left marker is now top-right
    assert r > 200 and g < 60 and b < 60


def test_invalid_orientation_values_are_ignored() -> None:
    for value in (0, 9, 255):
        exif = Image.Exif()
        exif[0x0112] = value
        decoded = decode(save(Image.new("RGB", (40, 30)), "PNG", exif=exif))
        assert (decoded.width, decoded.height) == (40, 30)
        assert ExifAnalyzer().analyze([decoded])[0]["exif"] is None
