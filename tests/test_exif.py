"""ExifAnalyzer: EXIF written with Pillow round-trips; junk values are dropped, never raised."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from pixdex.analyzers.base import Analyzer
from pixdex.analyzers.exif import (
    EXIF_IFD,
    GPS_IFD,
    ExifAnalyzer,
    gps_coordinate,
    iso_datetime,
    number,
    read_exif,
    text,
)
from pixdex.errors import ImageError
from pixdex.imaging import DecodedImage, decode
from pixdex.records import Record

R = IFDRational


def build_exif(
    base: dict[int, Any] | None = None,
    sub: dict[int, Any] | None = None,
    gps: dict[int, Any] | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in (base or {}).items():
        exif[tag] = value
    if sub:
        ifd = exif.get_ifd(EXIF_IFD)
        ifd.update(sub)
    if gps:
        ifd = exif.get_ifd(GPS_IFD)
        ifd.update(gps)
    return exif


def encode(exif: Image.Exif, fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 30)).save(buf, fmt, exif=exif)
    return buf.getvalue()


def analyze(data: bytes) -> dict[str, Any] | None:
    return ExifAnalyzer().analyze([decode(data)])[0]["exif"]


def dms(deg: int, minutes: int, sec_num: int, sec_den: int = 100) -> tuple[R, R, R]:
    return (R(deg, 1), R(minutes, 1), R(sec_num, sec_den))


FULL = build_exif(
    base={0x010F: "Canon", 0x0110: "Canon EOS 5D Mark IV", 0x0112: 1, 0x0131: "GIMP 2.10"},
    sub={
        0x9003: "2021:06:01 12:34:56",
        0x9291: "123",
        0x9011: "+10:00",
        0x829A: R(1, 250),
        0x829D: R(28, 10),
        0x8827: 400,
        0x920A: R(50, 1),
        0xA433: "Canon",
        0xA434: "EF50mm f/1.8 STM",
    },
    gps={1: "S", 2: dms(33, 51, 5436), 3: "E", 4: dms(151, 12, 3000), 5: b"\x00", 6: R(58, 1)},
)


def test_protocol() -> None:
    analyzer = ExifAnalyzer()
    assert isinstance(analyzer, Analyzer)
    assert analyzer.name == "exif" and analyzer.version and analyzer.min_side == 0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_round_trip(fmt: str) -> None:
    out = analyze(encode(FULL, fmt))
    assert out == {
        "DateTimeOriginal": "2021-06-01T12:34:56.123+10:00",
        "Make": "Canon",
        "Model": "Canon EOS 5D Mark IV",
        "LensMake": "Canon",
        "LensModel": "EF50mm f/1.8 STM",
        "Software": "GIMP 2.10",
        "Orientation": 1,
        "ExposureTime": 0.004,
        "FNumber": 2.8,
        "ISO": 400,
        "FocalLength": 50.0,
        "GPS": {
            "lat": pytest.approx(-(33 + 51 / 60 + 54.36 / 3600), abs=1e-6),
            "lon": pytest.approx(151 + 12 / 60 + 30.0 / 3600, abs=1e-6),
            "alt": 58.0,
        },
    }
    record = Record(bucket="b", key="k", exif=out)
    assert record.to_json()["exif"]["GPS"]["lat"] < 0


@pytest.mark.parametrize(
    ("lat_ref", "lon_ref", "signs"),
    [
        ("N", "E", (1, 1)),
        ("S", "W", (-1, -1)),
        ("N", "W", (1, -1)),
        ("s", "e", (-1, 1)),  # lowercase refs
        ("S\x00", "W\x00", (-1, -1)),  # NUL-padded
    ],
)
def test_gps_refs(lat_ref: str, lon_ref: str, signs: tuple[int, int]) -> None:
    exif = build_exif(
        base={0x010F: "X"}, gps={1: lat_ref, 2: dms(48, 51, 2400), 3: lon_ref, 4: dms(2, 21, 0)}
    )
    gps = analyze(encode(exif))["GPS"]
    assert gps["lat"] == pytest.approx(signs[0] * (48 + 51 / 60 + 24 / 3600), abs=1e-6)
    assert gps["lon"] == pytest.approx(signs[1] * (2 + 21 / 60), abs=1e-6)
    assert "alt" not in gps


def test_gps_below_sea_level() -> None:
    exif = build_exif(
        base={0x010F: "X"},
        gps={1: "N", 2: dms(31, 30, 0), 3: "E", 4: dms(35, 30, 0), 5: b"\x01", 6: R(430, 1)},
    )
    assert analyze(encode(exif))["GPS"]["alt"] == -430.0


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: (R(48, 0), R(51, 1), R(24, 1)), 3: "E", 4: dms(2, 21, 0)},  # x/0
        {1: "N", 2: (R(0, 0), R(0, 0), R(0, 0)), 3: "E", 4: dms(2, 21, 0)},  # 0/0
        {1: "N", 2: dms(95, 0, 0), 3: "E", 4: dms(2, 21, 0)},  # latitude > 90
        {1: "N", 2: dms(48, 0, 0), 3: "E", 4: dms(200, 0, 0)},  # longitude > 180
        {1: "N", 2: dms(0, 0, 0), 3: "E", 4: dms(0, 0, 0)},  # "no fix" zeros
        {1: "N", 3: "E", 4: dms(2, 21, 0)},  # latitude missing
        {2: (R(1, 1),) * 4, 4: dms(2, 21, 0)},  # four parts
    ],
)
def test_bad_gps_is_left_out_and_the_rest_kept(gps: dict[int, Any]) -> None:
    exif = build_exif(base={0x010F: "Nikon", 0x0110: "D750"}, gps=gps)
    out = analyze(encode(exif))
    assert out == {"Make": "Nikon", "Model": "D750"}


def test_gps_without_refs_keeps_the_sign_given() -> None:
    assert gps_coordinate(dms(10, 30, 0), None, 90) == 10.5
    assert gps_coordinate((R(-10, 1), R(30, 1), R(0, 1)), None, 90) == -10.5
    assert gps_coordinate((R(-10, 1), R(30, 1), R(0, 1)), "S", 90) == -10.5  # not double-negated
    assert gps_coordinate(R(1055, 100), "W", 180) == -10.55  # decimal degrees in one value


@pytest.mark.parametrize(
    ("value", "subsec", "offset", "expected"),
    [
        ("2019:12:31 23:59:59", None, None, "2019-12-31T23:59:59"),
        ("2019:12:31 23:59:59\x00", "5", "-05:00", "2019-12-31T23:59:59.5-05:00"),
        ("2019-12-31T23:59:59", None, None, "2019-12-31T23:59:59"),
        (b"2019:12:31 23:59:59", None, None, "2019-12-31T23:59:59"),
        ("2019:12:31 23:59:59", "abc", "+99:00", "2019-12-31T23:59:59"),  # junk extras dropped
        ("0000:00:00 00:00:00", None, None, None),
        ("    :  :     :  :  ", None, None, None),
        ("2021:13:40 10:00:00", None, None, None),
        ("2021:02:29 10:00:00", None, None, None),
        ("yesterday", None, None, None),
        ("", None, None, None),
        (20190101, None, None, None),
        (None, None, None, None),
    ],
)
def test_iso_datetime(value: Any, subsec: Any, offset: Any, expected: str | None) -> None:
    assert iso_datetime(value, subsec, offset) == expected


def test_date_digitized_is_the_fallback_for_date_taken() -> None:
    exif = build_exif(base={0x0132: "2022:01:01 00:00:00"}, sub={0x9004: "2020:05:05 05:05:05"})
    out = analyze(encode(exif))
    assert out == {"DateTimeOriginal": "2020-05-05T05:05:05", "DateTime": "2022-01-01T00:00:00"}


def test_junk_values_are_dropped() -> None:
    exif = build_exif(
        base={0x010F: "   \x00\x00", 0x0110: b"\xff\xfeModel\x00", 0x0112: 99},
        sub={
            0x9003: "0000:00:00 00:00:00",
            0x829A: R(1, 0),
            0x829D: R(0, 0),
            0x8827: "fast",
            0x920A: R(-5, 1),
            0xA434: 12345,
        },
    )
    out = analyze(encode(exif))
    assert list(out) == ["Model"] and out["Model"].endswith("Model")  # bytes decoded leniently


def test_helpers_never_raise_on_odd_types() -> None:
    for value in [None, "", "x", b"", b"\x00", (), [], (None,), object(), float("nan"), True, {}]:
        number(value)
        text(value)
        iso_datetime(value)
        gps_coordinate(value, value, 90)
    assert number((R(3, 2),)) == 1.5
    assert number(float("inf")) is None
    assert text("a\x00b   c ") == "a b c"
    assert text("x" * 1000) == "x" * 200


def test_orientation_is_reported_and_applied() -> None:
    exif = build_exif(base={0x0112: 6})
    decoded = decode(encode(exif, size=(64, 48)))
    assert (decoded.width, decoded.height) == (48, 64)
    assert decoded.image.size == (48, 64)
    assert ExifAnalyzer().analyze([decoded])[0]["exif"] == {"Orientation": 6}


def test_no_exif_is_none() -> None:
    assert analyze(encode(Image.Exif())) is None
    blank = DecodedImage(image=Image.new("RGB", (4, 4)), width=4, height=4, format="PNG")
    assert ExifAnalyzer().analyze([blank]) == [{"exif": None}]
    assert read_exif(None) is None


def test_coco128_has_no_exif(coco_images: list[Path]) -> None:
    """The coco128 photos were stripped of EXIF (checked with Pillow): the analyzer says so for
    every one of them rather than inventing fields."""
    images = [decode(p.read_bytes()) for p in coco_images]
    assert all(len(d.exif) == 0 for d in images)
    assert ExifAnalyzer().analyze(images) == [{"exif": None}] * len(images)


def test_coco_photo_with_exif_added(coco_images: list[Path]) -> None:
    """A real photo re-saved with camera EXIF (what a phone upload looks like) keeps its pixels'
    size and gets its fields."""
    img = Image.open(coco_images[0])
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=FULL, quality=90)
    decoded = decode(buf.getvalue())
    assert (decoded.width, decoded.height) == img.size
    out = ExifAnalyzer().analyze([decoded])[0]["exif"]
    assert out["Model"] == "Canon EOS 5D Mark IV" and out["GPS"]["lon"] > 151


def test_corrupted_exif_never_raises() -> None:
    """Random byte flips inside a real EXIF block (with GPS and orientation 6): decoding gives a
    usable image or a clear ImageError, and the analyzer never raises. Before decode stopped
    re-serialising EXIF, ~2 % of these raised TypeError/struct.error and lost the photo."""
    exif = build_exif(
        base={**{k: v for k, v in FULL.items() if k not in (EXIF_IFD, GPS_IFD)}, 0x0112: 6},
        sub=dict(FULL.get_ifd(EXIF_IFD)),
        gps=dict(FULL.get_ifd(GPS_IFD)),
    )
    data = encode(exif)
    start = data.index(b"Exif\x00\x00")
    end = start - 2 + int.from_bytes(data[start - 2 : start], "big")
    rng = random.Random(1234)
    analyzer = ExifAnalyzer()
    decoded_ok = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns "Corrupt EXIF data"
        for _ in range(1500):
            corrupt = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                corrupt[rng.randrange(start + 6, end)] = rng.randrange(256)
            try:
                decoded = decode(bytes(corrupt))
            except ImageError:
                continue
            decoded_ok += 1
            out = analyzer.analyze([decoded])[0]["exif"]
            assert out is None or isinstance(out, dict)
    assert decoded_ok == 1500  # the JPEG data itself is intact: every one must decode
