"""Image properties in the shape of Rekognition DetectLabels' ``ImageProperties``: quality
(brightness, sharpness, contrast) and dominant colours, computed exactly and cheaply with
Pillow + numpy on a small copy of the image (no model).

Everything is measured on an *analysis image*: the decoded RGB scaled down so that its shorter
side is ``ANALYSIS_SIDE`` px (longer side capped at 4x that; images already smaller are used as
they are). A fixed scale keeps Sharpness comparable between a 12 Mpx photo and a thumbnail of it,
and whatever JPEG draft mode handed us (the pipeline's ``min_side`` is at least ``ANALYSIS_SIDE``)
gives the same numbers to within rounding.

What Rekognition also returns and this does not: ``Foreground``/``Background`` (they need a
saliency/segmentation model) and per-instance dominant colours. Rekognition does not document
its formulas, so the numbers are comparable in range and direction, not in value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from pixdex.imaging import DecodedImage

#: shorter side of the analysis image (px)
ANALYSIS_SIDE = 192
#: k-means clusters before snapping to CSS colours
CLUSTERS = 8
#: bits per channel when grouping pixels before clustering
BIN_BITS = 5
#: Rekognition's default ``MaxDominantColors``
MAX_COLORS = 10
#: colours covering less of the image than this are left out (percent)
MIN_PIXEL_PERCENT = 1.0
#: Laplacian variance that maps to Sharpness 50: the median over the 128 coco128 photos at the
#: analysis scale (measured: see tests/test_properties.py::test_coco_sharpness_spread)
SHARPNESS_MIDPOINT = 760.0

# CSS3 named colours (one name per RGB value: CSS1 names for the aqua/cyan and fuchsia/magenta
# pairs, "gray" but "dimgrey"/"darkslategrey"/… as seen in Rekognition responses) and the
# simplified colour each belongs to. The 12 simplified names are the CSS colour-keyword families
# (pink, purple, red, orange, yellow, brown, green, cyan, blue, white, grey) with black split off
# grey; Rekognition says "one of 12 simplified color names" without listing them.
_CSS = """
pink ffc0cb pink|lightpink ffb6c1 pink|hotpink ff69b4 pink|deeppink ff1493 pink
palevioletred db7093 pink|mediumvioletred c71585 pink
lavender e6e6fa purple|thistle d8bfd8 purple|plum dda0dd purple|orchid da70d6 purple
violet ee82ee purple|fuchsia ff00ff purple|mediumorchid ba55d3 purple|darkorchid 9932cc purple
darkviolet 9400d3 purple|blueviolet 8a2be2 purple|darkmagenta 8b008b purple|purple 800080 purple
mediumpurple 9370db purple|mediumslateblue 7b68ee purple|slateblue 6a5acd purple
darkslateblue 483d8b purple|rebeccapurple 663399 purple|indigo 4b0082 purple
lightsalmon ffa07a red|salmon fa8072 red|darksalmon e9967a red|lightcoral f08080 red
indianred cd5c5c red|crimson dc143c red|red ff0000 red|firebrick b22222 red|darkred 8b0000 red
orange ffa500 orange|darkorange ff8c00 orange|coral ff7f50 orange|tomato ff6347 orange
orangered ff4500 orange
gold ffd700 yellow|yellow ffff00 yellow|lightyellow ffffe0 yellow|lemonchiffon fffacd yellow
lightgoldenrodyellow fafad2 yellow|papayawhip ffefd5 yellow|moccasin ffe4b5 yellow
peachpuff ffdab9 yellow|palegoldenrod eee8aa yellow|khaki f0e68c yellow|darkkhaki bdb76b yellow
cornsilk fff8dc brown|blanchedalmond ffebcd brown|bisque ffe4c4 brown|navajowhite ffdead brown
wheat f5deb3 brown|burlywood deb887 brown|tan d2b48c brown|rosybrown bc8f8f brown
sandybrown f4a460 brown|goldenrod daa520 brown|darkgoldenrod b8860b brown|peru cd853f brown
chocolate d2691e brown|saddlebrown 8b4513 brown|sienna a0522d brown|brown a52a2a brown
maroon 800000 brown
greenyellow adff2f green|chartreuse 7fff00 green|lawngreen 7cfc00 green|lime 00ff00 green
limegreen 32cd32 green|palegreen 98fb98 green|lightgreen 90ee90 green
mediumspringgreen 00fa9a green|springgreen 00ff7f green|mediumseagreen 3cb371 green
seagreen 2e8b57 green|forestgreen 228b22 green|green 008000 green|darkgreen 006400 green
yellowgreen 9acd32 green|olivedrab 6b8e23 green|olive 808000 green|darkolivegreen 556b2f green
mediumaquamarine 66cdaa green|darkseagreen 8fbc8f green|lightseagreen 20b2aa green
darkcyan 008b8b green|teal 008080 green
aqua 00ffff cyan|lightcyan e0ffff cyan|paleturquoise afeeee cyan|aquamarine 7fffd4 cyan
turquoise 40e0d0 cyan|mediumturquoise 48d1cc cyan|darkturquoise 00ced1 cyan
cadetblue 5f9ea0 blue|steelblue 4682b4 blue|lightsteelblue b0c4de blue|powderblue b0e0e6 blue
lightblue add8e6 blue|skyblue 87ceeb blue|lightskyblue 87cefa blue|deepskyblue 00bfff blue
dodgerblue 1e90ff blue|cornflowerblue 6495ed blue|royalblue 4169e1 blue|blue 0000ff blue
mediumblue 0000cd blue|darkblue 00008b blue|navy 000080 blue|midnightblue 191970 blue
white ffffff white|snow fffafa white|honeydew f0fff0 white|mintcream f5fffa white
azure f0ffff white|aliceblue f0f8ff white|ghostwhite f8f8ff white|whitesmoke f5f5f5 white
seashell fff5ee white|beige f5f5dc white|oldlace fdf5e6 white|floralwhite fffaf0 white
ivory fffff0 white|antiquewhite faebd7 white|linen faf0e6 white|lavenderblush fff0f5 white
mistyrose ffe4e1 white
gainsboro dcdcdc grey|lightgrey d3d3d3 grey|silver c0c0c0 grey|darkgrey a9a9a9 grey
gray 808080 grey|dimgrey 696969 grey|lightslategrey 778899 grey|slategrey 708090 grey
darkslategrey 2f4f4f grey|black 000000 black
"""


def _parse_css() -> tuple[list[str], np.ndarray, list[str]]:
    names: list[str] = []
    rgb: list[tuple[int, int, int]] = []
    simple: list[str] = []
    for entry in _CSS.replace("\n", "|").split("|"):
        if not entry.strip():
            continue
        name, hexcode, group = entry.split()
        names.append(name)
        rgb.append((int(hexcode[0:2], 16), int(hexcode[2:4], 16), int(hexcode[4:6], 16)))
        simple.append(group)
    return names, np.array(rgb, dtype=np.float64), simple


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values in 0..255, shape (..., 3): nearest colours are judged by
    perceptual distance, not RGB distance (which calls dark blues "black" and greys "green")."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


CSS_NAMES, CSS_RGB, CSS_SIMPLIFIED = _parse_css()
_CSS_LAB = srgb_to_lab(CSS_RGB)


def nearest_css(rgb: Sequence[float] | np.ndarray) -> int:
    """Index into ``CSS_NAMES`` of the CSS colour perceptually closest to ``rgb``."""
    lab = srgb_to_lab(np.asarray(rgb, dtype=np.float64))
    return int(np.argmin(((_CSS_LAB - lab) ** 2).sum(axis=1)))


def analysis_image(img: Image.Image) -> Image.Image:
    """The decoded image at the analysis scale (see the module docstring)."""
    w, h = img.size
    scale = min(ANALYSIS_SIDE / min(w, h), 4 * ANALYSIS_SIDE / max(w, h))
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # reducing_gap: an integer box reduction first, then a bilinear resample — fast, antialiased.
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def quality(grey: np.ndarray) -> dict[str, float]:
    """Brightness, Contrast, Sharpness (0-100) from 8-bit luma (ITU-R 601, Pillow's "L").

    - Brightness: mean luma / 255 x 100 (black 0, white 100).
    - Contrast: RMS contrast, the standard deviation of luma / 127.5 x 100 — 127.5 is the largest
      standard deviation 8-bit values can have (half black, half white = 100; flat = 0).
    - Sharpness: variance of the 4-neighbour Laplacian of luma at the analysis scale, mapped to
      100 x v / (v + SHARPNESS_MIDPOINT): flat = 0, a typical coco128 photo ~50, approaching 100
      as fine detail grows. Blurring lowers it; noise raises it (it measures high frequencies).
    """
    g = grey.astype(np.float32)
    brightness = float(g.mean()) / 255.0 * 100.0
    contrast = min(100.0, float(g.std()) / 127.5 * 100.0)
    if g.shape[0] >= 3 and g.shape[1] >= 3:
        lap = 4.0 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
        v = float(lap.var())
    else:
        v = 0.0
    sharpness = 100.0 * v / (v + SHARPNESS_MIDPOINT)
    return {
        "Brightness": round(brightness, 2),
        "Sharpness": round(sharpness, 2),
        "Contrast": round(contrast, 2),
    }


def _color_bins(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Pixels grouped by their top ``BIN_BITS`` bits per channel: (mean CIELAB of each non-empty
    group, its pixel count). Clustering a few thousand groups is much cheaper than clustering
    every pixel, and the groups' exact means keep the colours exact."""
    a = np.asarray(img).reshape(-1, 3)
    shift = 8 - BIN_BITS
    q = (a >> shift).astype(np.intp)
    idx = (q[:, 0] << (2 * BIN_BITS)) | (q[:, 1] << BIN_BITS) | q[:, 2]
    size = 1 << (3 * BIN_BITS)
    counts = np.bincount(idx, minlength=size)
    nz = np.flatnonzero(counts)
    sums = np.stack([np.bincount(idx, weights=a[:, c], minlength=size)[nz] for c in range(3)], 1)
    counts = counts[nz]
    return srgb_to_lab(sums / counts[:, None]), counts.astype(np.float64)


def _kmeans(x: np.ndarray, w: np.ndarray, k: int, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means, deterministic: greedy k-means++ seeding (the heaviest point, then each
    time the point with the largest weight x squared distance to the chosen ones), then Lloyd
    iterations. Returns centroids and their weights."""
    k = min(k, len(x))
    centroids = [x[int(np.argmax(w))]]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        j = int(np.argmax(w * d2))
        if d2[j] <= 1e-9:
            break
        centroids.append(x[j])
        d2 = np.minimum(d2, ((x - x[j]) ** 2).sum(1))
    c = np.array(centroids)
    xx = (x**2).sum(1)[:, None]
    for _ in range(iters):
        assign = np.argmin(xx - 2 * x @ c.T + (c**2).sum(1)[None, :], axis=1)
        weight = np.bincount(assign, weights=w, minlength=len(c))
        sums = np.stack(
            [np.bincount(assign, weights=w * x[:, i], minlength=len(c)) for i in range(3)], 1
        )
        new = np.where(weight[:, None] > 0, sums / np.maximum(weight, 1e-12)[:, None], c)
        moved = float(np.abs(new - c).max())
        c = new
        if moved < 0.5:
            break
    assign = np.argmin(xx - 2 * x @ c.T + (c**2).sum(1)[None, :], axis=1)
    return c, np.bincount(assign, weights=w, minlength=len(c))


def dominant_colors(
    img: Image.Image, *, max_colors: int = MAX_COLORS, min_percent: float = MIN_PIXEL_PERCENT
) -> list[dict[str, Any]]:
    """Cluster the pixels into ``CLUSTERS`` colours (weighted k-means in CIELAB, see
    ``_kmeans``), snap each centroid to the perceptually nearest CSS colour and merge clusters
    that snap to the same one; PixelPercent is the share of pixels in clusters that snapped there.
    Like Rekognition, Red/Green/Blue/HexCode are the CSS colour's own values, so equal colours
    compare equal across images."""
    lab, counts = _color_bins(img)
    centroids, weights = _kmeans(lab, counts, CLUSTERS)
    total = float(counts.sum())
    merged: dict[int, float] = {}
    for centroid, weight in zip(centroids, weights, strict=True):
        if weight > 0:
            css = int(np.argmin(((_CSS_LAB - centroid) ** 2).sum(axis=1)))
            merged[css] = merged.get(css, 0.0) + float(weight)
    out: list[dict[str, Any]] = []
    for css, weight in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])):
        percent = 100.0 * weight / total
        if percent < min_percent or len(out) >= max_colors:
            break
        r, g, b = (int(v) for v in CSS_RGB[css])
        out.append(
            {
                "Red": r,
                "Green": g,
                "Blue": b,
                "HexCode": f"#{r:02x}{g:02x}{b:02x}",
                "CSSColor": CSS_NAMES[css],
                "SimplifiedColor": CSS_SIMPLIFIED[css],
                "PixelPercent": round(percent, 2),
            }
        )
    return out


def image_properties(img: Image.Image) -> dict[str, Any]:
    """Rekognition's ``ImageProperties`` (without Foreground/Background) for an RGB image."""
    small = analysis_image(img if img.mode == "RGB" else img.convert("RGB"))
    return {
        "Quality": quality(np.asarray(small.convert("L"))),
        "DominantColors": dominant_colors(small),
    }


class PropertiesAnalyzer:
    """``{"ImageProperties": {...}}`` per image; cheap numpy work on a small analysis image, so
    batching would gain nothing."""

    name = "properties"
    version = "1"
    min_side = ANALYSIS_SIDE

    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        return [{"ImageProperties": image_properties(d.image)} for d in images]
