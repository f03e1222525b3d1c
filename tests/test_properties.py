"""PropertiesAnalyzer on generated images with known answers and on the real coco128 photos."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageColor, ImageFilter

from pixdex.analyzers.base import Analyzer
from pixdex.analyzers.properties import (
    ANALYSIS_SIDE,
    CSS_NAMES,
    CSS_RGB,
    CSS_SIMPLIFIED,
    PropertiesAnalyzer,
    image_properties,
)
from pixdex.imaging import DecodedImage, decode
from pixdex.records import Record

SIMPLIFIED = {
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "white",
    "grey", "black",
}  # fmt: skip


def props(img: Image.Image) -> dict:
    return image_properties(img)


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (120, 90)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def test_protocol_and_record_shape(coco_images: list[Path]) -> None:
    analyzer = PropertiesAnalyzer()
    assert isinstance(analyzer, Analyzer)
    assert analyzer.name == "properties" and analyzer.version
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images[:3]]
    out = analyzer.analyze(images)
    assert len(out) == 3
    for part in out:
        record = Record(bucket="b", key="k", **part)
        stored = record.to_json()["ImageProperties"]
        assert set(stored) == {"Quality", "DominantColors"}
        assert set(stored["Quality"]) == {"Brightness", "Sharpness", "Contrast"}
        for color in stored["DominantColors"]:
            assert set(color) == {
                "Red", "Green", "Blue", "HexCode", "CSSColor", "SimplifiedColor", "PixelPercent",
            }  # fmt: skip


def test_css_table_matches_css_named_colours() -> None:
    """Every name is a CSS colour with its CSS value (Pillow's table is the CSS list), every CSS
    RGB value is present once, and each maps to one of the 12 simplified names."""
    assert len(CSS_NAMES) == len(set(CSS_NAMES))
    for name, rgb in zip(CSS_NAMES, CSS_RGB, strict=True):
        assert ImageColor.getrgb(name) == tuple(int(v) for v in rgb), name
    css_values = {ImageColor.getrgb(name) for name in list(ImageColor.colormap)}
    assert {tuple(int(v) for v in rgb) for rgb in CSS_RGB} == css_values
    assert set(CSS_SIMPLIFIED) == SIMPLIFIED


@pytest.mark.parametrize(
    ("rgb", "css", "simplified"),
    [
        ((255, 0, 0), "red", "red"),
        ((0, 0, 255), "blue", "blue"),
        ((0, 128, 0), "green", "green"),
        ((255, 255, 255), "white", "white"),
        ((0, 0, 0), "black", "black"),
        ((128, 128, 128), "gray", "grey"),
        ((250, 160, 10), "orange", "orange"),
        ((139, 69, 19), "saddlebrown", "brown"),
        ((255, 192, 203), "pink", "pink"),
        ((128, 0, 128), "purple", "purple"),
        ((250, 250, 0), "yellow", "yellow"),
    ],
)
def test_solid_colour_is_one_dominant_colour(
    rgb: tuple[int, int, int], css: str, simplified: str
) -> None:
    colors = props(solid(rgb))["DominantColors"]
    assert len(colors) == 1
    (color,) = colors
    assert color["CSSColor"] == css
    assert color["SimplifiedColor"] == simplified
    assert color["PixelPercent"] == pytest.approx(100.0)
    r, g, b = ImageColor.getrgb(css)
    assert (color["Red"], color["Green"], color["Blue"]) == (r, g, b)
    assert color["HexCode"] == f"#{r:02x}{g:02x}{b:02x}"


def test_half_black_half_white() -> None:
    img = solid((0, 0, 0), (200, 100))
    img.paste((255, 255, 255), (100, 0, 200, 100))
    out = props(img)
    shares = {c["CSSColor"]: c["PixelPercent"] for c in out["DominantColors"]}
    assert shares == {"black": pytest.approx(50.0, abs=0.5), "white": pytest.approx(50.0, abs=0.5)}
    assert out["Quality"]["Brightness"] == pytest.approx(50.0, abs=0.5)
    assert out["Quality"]["Contrast"] == pytest.approx(100.0, abs=0.5)


def test_three_colour_proportions() -> None:
    """60 % blue, 30 % yellow, 10 % red in, the same shares out, largest first."""
    img = solid((0, 0, 255), (100, 100))
    img.paste((255, 255, 0), (60, 0, 90, 100))
    img.paste((255, 0, 0), (90, 0, 100, 100))
    colors = props(img)["DominantColors"]
    assert [(c["CSSColor"], c["PixelPercent"]) for c in colors] == [
        ("blue", pytest.approx(60.0, abs=1)),
        ("yellow", pytest.approx(30.0, abs=1)),
        ("red", pytest.approx(10.0, abs=1)),
    ]


def test_flat_image_quality() -> None:
    quality = props(solid((128, 128, 128)))["Quality"]
    assert quality["Contrast"] == 0.0
    assert quality["Sharpness"] == 0.0
    assert quality["Brightness"] == pytest.approx(50.2, abs=0.1)
    assert props(solid((255, 255, 255)))["Quality"]["Brightness"] == 100.0
    assert props(solid((0, 0, 0)))["Quality"]["Brightness"] == 0.0


def test_blur_lowers_sharpness_darkening_lowers_brightness(coco_images: list[Path]) -> None:
    """On real photos: a Gaussian blur always lowers Sharpness, halving the pixel values always
    lowers Brightness and Contrast."""
    for path in coco_images[:12]:
        img = decode(path.read_bytes()).image
        base = props(img)["Quality"]
        blurred = props(img.filter(ImageFilter.GaussianBlur(3)))["Quality"]
        dark = props(img.point(lambda v: v // 2))["Quality"]
        assert blurred["Sharpness"] < base["Sharpness"] - 5, path.name
        assert dark["Brightness"] == pytest.approx(base["Brightness"] / 2, abs=1.0), path.name
        assert dark["Contrast"] < base["Contrast"], path.name


def test_monotone_in_blur_radius(coco_images: list[Path]) -> None:
    img = decode(coco_images[5].read_bytes()).image
    values = [
        props(img.filter(ImageFilter.GaussianBlur(r)))["Quality"]["Sharpness"] for r in (0, 1, 2, 4)
    ]
    assert values == sorted(values, reverse=True)
    assert values[0] - values[-1] > 30


def test_coco_sharpness_spread(coco_images: list[Path]) -> None:
    """SHARPNESS_MIDPOINT is calibrated so a typical coco128 photo scores ~50, and the scale
    spreads the collection out rather than saturating at either end."""
    analyzer = PropertiesAnalyzer()
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images]
    sharp = [o["ImageProperties"]["Quality"]["Sharpness"] for o in analyzer.analyze(images)]
    assert 40 <= statistics.median(sharp) <= 60
    assert min(sharp) < 20 and max(sharp) > 80


def test_coco_results_are_sane(coco_images: list[Path]) -> None:
    analyzer = PropertiesAnalyzer()
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images]
    for path, out in zip(coco_images, analyzer.analyze(images), strict=True):
        props_ = out["ImageProperties"]
        for value in props_["Quality"].values():
            assert 0.0 <= value <= 100.0, path.name
        colors = props_["DominantColors"]
        assert 1 <= len(colors) <= 10, path.name
        percents = [c["PixelPercent"] for c in colors]
        assert percents == sorted(percents, reverse=True)
        assert 90.0 <= sum(percents) <= 100.05, path.name  # only clusters < 1 % are left out
        assert len({c["CSSColor"] for c in colors}) == len(colors)


def test_greyscale_photo_has_only_grey_colours(coco_images: list[Path]) -> None:
    """coco128 holds one greyscale JPEG (mode L): no hue may be invented for it."""
    grey = [p for p in coco_images if Image.open(p).mode == "L"]
    assert grey, "coco128 has a greyscale photo"
    out = props(decode(grey[0].read_bytes()).image)
    assert {c["SimplifiedColor"] for c in out["DominantColors"]} <= {"black", "grey", "white"}


def test_draft_decode_gives_nearly_the_same_numbers(coco_images: list[Path]) -> None:
    """The analysis scale makes results independent of how far JPEG draft mode reduced."""
    for path in coco_images[:16]:
        full = props(decode(path.read_bytes()).image)
        draft = props(decode(path.read_bytes(), min_side=ANALYSIS_SIDE).image)
        for key in ("Brightness", "Contrast"):
            assert draft["Quality"][key] == pytest.approx(full["Quality"][key], abs=1.0)
        assert draft["Quality"]["Sharpness"] == pytest.approx(full["Quality"]["Sharpness"], abs=6)
        top_full = full["DominantColors"][0]["SimplifiedColor"]
        assert top_full in {c["SimplifiedColor"] for c in draft["DominantColors"][:3]}


def test_tiny_and_extreme_images() -> None:
    for size in [(1, 1), (2, 1), (3, 3), (5000, 2), (2, 5000)]:
        out = props(solid((10, 200, 30), size))
        assert out["DominantColors"][0]["PixelPercent"] == pytest.approx(100.0)
        assert out["Quality"]["Sharpness"] == 0.0


def test_deterministic(coco_images: list[Path]) -> None:
    img = decode(coco_images[7].read_bytes()).image
    assert props(img) == props(img.copy())


def test_png_round_trip_keeps_colours() -> None:
    img = solid((70, 130, 180), (64, 64))  # steelblue
    buf = io.BytesIO()
    img.save(buf, "PNG")
    decoded = decode(buf.getvalue())
    out = PropertiesAnalyzer().analyze([decoded])[0]["ImageProperties"]
    assert out["DominantColors"][0]["CSSColor"] == "steelblue"


def test_accepts_non_rgb_images() -> None:
    """Analyzers get RGB from decode, but a hand-built DecodedImage in another mode still works."""
    grey = Image.new("L", (50, 50), 200)
    out = PropertiesAnalyzer().analyze(
        [DecodedImage(image=grey, width=50, height=50, format="PNG")]
    )[0]["ImageProperties"]
    assert out["DominantColors"][0]["SimplifiedColor"] in {"grey", "white"}
    assert np.isclose(out["Quality"]["Brightness"], 200 / 255 * 100, atol=0.1)
