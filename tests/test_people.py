"""PeopleAnalyzer on real coco128 photos against their COCO annotations (no mocks: the shipped
BlazePose weights run on ai-edge-litert)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from pixdex.analyzers import people as P
from pixdex.analyzers.base import Analyzer
from pixdex.imaging import DecodedImage, decode

pytest.importorskip("ai_edge_litert")

CLEAR_PERSON = "000000000036.jpg"  # one person filling most of the frame
NO_PERSON = "000000000030.jpg"  # a vase of flowers


@pytest.fixture(scope="module")
def analyzer() -> P.PeopleAnalyzer:
    return P.PeopleAnalyzer(threads=1)


@pytest.fixture(scope="module")
def truth(coco_dir: Path) -> dict[str, list[tuple[list[float], float]]]:
    """File name → [(box x0, y0, x1, y1 in pixels, share of the image)] for annotated persons."""
    data = json.loads((coco_dir / "annotations" / "instances.json").read_text())
    images = {i["id"]: i for i in data["images"]}
    out: dict[str, list[tuple[list[float], float]]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann["category_id"] == 1:
            img = images[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            share = ann["area"] / (img["width"] * img["height"])
            out[img["file_name"]].append(([x, y, x + w, y + h], share))
    return dict(out)


def _load(coco_dir: Path, name: str, min_side: int = 0) -> DecodedImage:
    return decode((coco_dir / "images" / name).read_bytes(), min_side=min_side)


def test_unknown_view_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="full, fast"):
        P.PeopleAnalyzer(views="tiny")


def test_contract(analyzer: P.PeopleAnalyzer) -> None:
    assert isinstance(analyzer, Analyzer)
    assert analyzer.name == "people"
    digest = P.hashlib.sha256(P.model_path().read_bytes()).hexdigest()[:12]
    assert digest in analyzer.version
    assert analyzer.min_side >= P.INPUT


def test_clear_person_is_found_with_its_box(
    analyzer: P.PeopleAnalyzer, coco_dir: Path, truth: dict
) -> None:
    image = _load(coco_dir, CLEAR_PERSON, analyzer.min_side)
    (result,) = analyzer.analyze([image])
    (label,) = result["Labels"]
    assert label.Name == "Person"
    assert label.Confidence >= 55
    assert [a.Name for a in label.Aliases] == ["Human"]
    assert [c.Name for c in label.Categories] == ["Person Description"]
    assert label.Instances and label.Instances[0].Confidence == label.Confidence
    bb = label.Instances[0].BoundingBox
    assert 0 <= bb.Left < bb.Left + bb.Width <= 1.0 + 1e-9
    assert 0 <= bb.Top < bb.Top + bb.Height <= 1.0 + 1e-9
    box = [
        bb.Left * image.width,
        bb.Top * image.height,
        (bb.Left + bb.Width) * image.width,
        (bb.Top + bb.Height) * image.height,
    ]
    (annotated, _), *_ = truth[CLEAR_PERSON]
    assert P.iou(box, annotated) > 0.5
    # Rekognition's JSON shape
    js = label.to_json()
    assert set(js) >= {"Name", "Confidence", "Instances", "Aliases", "Categories"}
    assert set(js["Instances"][0]["BoundingBox"]) == {"Width", "Height", "Left", "Top"}


def test_no_person_photo_has_no_person(analyzer: P.PeopleAnalyzer, coco_dir: Path) -> None:
    assert analyzer.analyze([_load(coco_dir, NO_PERSON, analyzer.min_side)]) == [{"Labels": []}]


def test_draft_decoding_keeps_the_result(analyzer: P.PeopleAnalyzer, coco_dir: Path) -> None:
    """Boxes are ratios of the image, so a draft-reduced decode gives (nearly) the same box."""
    full = analyzer.analyze([_load(coco_dir, CLEAR_PERSON)])[0]["Labels"][0]
    small = decode(
        (coco_dir / "images" / CLEAR_PERSON).read_bytes(), min_side=analyzer.min_side // 2
    )
    assert small.image.size != (small.width, small.height)  # really reduced
    reduced = analyzer.analyze([small])[0]["Labels"][0]
    a, b = full.Instances[0].BoundingBox, reduced.Instances[0].BoundingBox
    assert (
        P.iou(
            (a.Left, a.Top, a.Left + a.Width, a.Top + a.Height),
            (b.Left, b.Top, b.Left + b.Width, b.Top + b.Height),
        )
        > 0.8
    )


def test_batch_keeps_order_and_odd_shapes_do_not_crash(
    analyzer: P.PeopleAnalyzer, coco_dir: Path
) -> None:
    odd = [
        Image.new("RGB", (1, 1)),
        Image.new("RGB", (3, 900), (200, 180, 160)),
        Image.new("RGB", (2000, 40), (10, 10, 10)),
    ]
    batch = [_load(coco_dir, NO_PERSON), _load(coco_dir, CLEAR_PERSON)]
    batch += [DecodedImage(image=im, width=im.width, height=im.height, format="PNG") for im in odd]
    out = analyzer.analyze(batch)
    assert len(out) == 5
    assert out[0] == {"Labels": []} and out[1]["Labels"][0].Name == "Person"
    assert all(o == {"Labels": []} for o in out[2:])


def test_views_cover_the_image_and_grow_small_people() -> None:
    for w, h in [(640, 480), (480, 640), (500, 500), (4000, 1000), (100, 64)]:
        squares = P.views(w, h)
        x, y, side = squares[0]
        assert side == max(w, h) and x <= 0 and y <= 0  # whole image first
        assert min(s for _, _, s in squares) <= 0.6 * max(w, h) + 1e-9 or 0.6 * max(w, h) < 64
        # every pixel of the image is inside some non-letterboxed view when there are several
        for px, py in [(0, 0), (w - 1, h - 1), (w // 2, h // 2), (w - 1, 0)]:
            assert any(vx <= px < vx + s and vy <= py < vy + s for vx, vy, s in squares)


def test_confidence_is_monotone_and_anchored() -> None:
    assert P.confidence(P.SCORE_AT_55) == pytest.approx(55, abs=0.01)
    values = [P.confidence(s / 100) for s in range(1, 100)]
    assert values == sorted(values)
    assert values[0] >= 0 and values[-1] <= 100


def test_person_box_of_an_upright_body() -> None:
    x0, y0, x1, y1 = P.person_box((100.0, 200.0), (100.0, 100.0))  # radius 100, up is -y
    assert (x0, x1) == pytest.approx((100 - 100 * P.BOX_HALF_WIDTH, 100 + 100 * P.BOX_HALF_WIDTH))
    assert (y0, y1) == pytest.approx((200 - 100 * P.BOX_UP, 200 + 100 * P.BOX_DOWN))


# measured by bench/eval_people.py (docs/people.md): recall (person > 1 %) 42/47 = 0.894,
# precision 53 photos, 49 right = 0.925; the floors leave a margin of two photos each
# measured (docs/people.md): full 0.894 / 0.925, fast 0.872 / 0.906; floors about two photos lower
FLOORS = {"full": (0.85, 0.88), "fast": (0.83, 0.87)}


@pytest.mark.parametrize("views", ["full", "fast"])
def test_coco128_recall_and_precision(
    views: str, analyzer: P.PeopleAnalyzer, coco_images: list[Path], truth: dict
) -> None:
    if views != "full":
        analyzer = P.PeopleAnalyzer(threads=1, views=views)
    RECALL_FLOOR, PRECISION_FLOOR = FLOORS[views]  # noqa: N806
    assert len(coco_images) == 128
    called = set()
    for path in coco_images:
        (result,) = analyzer.analyze([decode(path.read_bytes(), min_side=analyzer.min_side)])
        if any(lb.Name == "Person" and lb.Confidence >= 55 for lb in result["Labels"]):
            called.add(path.name)
    big = {f for f, people in truth.items() if max(s for _, s in people) > 0.01}
    assert len(big) == 47 and len(truth) == 61
    recall = len(called & big) / len(big)
    precision = len(called & set(truth)) / len(called)
    assert recall >= RECALL_FLOOR, f"recall {recall:.3f} < {RECALL_FLOOR}"
    assert precision >= PRECISION_FLOOR, f"precision {precision:.3f} < {PRECISION_FLOOR}"
