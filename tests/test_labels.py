"""Label taxonomy and the local label analyzer, on real coco128 photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tools import missing

from pixdex.analyzers.labels import GUESS_FLOOR, MIN_LABELS, LabelAnalyzer
from pixdex.config import load_settings
from pixdex.imaging import decode
from pixdex.taxonomy import imagenet

REPO = Path(__file__).resolve().parents[1]
TAXONOMY = REPO / "src" / "pixdex" / "taxonomy" / "imagenet.json"


@pytest.fixture(scope="module")
def analyzer() -> LabelAnalyzer:
    return LabelAnalyzer.from_settings(load_settings())


def analyze(analyzer: LabelAnalyzer, path: Path) -> dict[str, dict]:
    image = decode(path.read_bytes(), min_side=analyzer.min_side)
    result = analyzer.analyze([image])[0]
    assert result["LabelModelVersion"].startswith("efficientnet-lite0:")
    return {lb.Name: lb.to_json() for lb in result["Labels"]}


def test_taxonomy_names_are_unique_and_parents_known() -> None:
    tax = imagenet()
    names = [c.name for c in tax.classes]
    assert len(names) == 1000 and len(set(names)) == 1000
    for c in tax.classes:
        assert len(c.parents) <= 5
        assert all(p in tax.parents for p in c.parents), c
        assert c.name not in c.parents and c.name not in c.aliases


def test_taxonomy_reads_like_rekognition() -> None:
    tax = imagenet()
    tow = tax.info("Tow Truck")
    assert tow is not None
    assert tow.parents[0] == "Truck" and {"Vehicle", "Transportation"} <= set(tow.parents)
    assert tow.categories == ("Vehicles and Automotive",)
    assert "Wrecker" in tow.aliases
    retriever = tax.info("Golden Retriever")
    assert retriever is not None and {"Dog", "Mammal", "Animal"} <= set(retriever.parents)
    assert tax.info("Dog").parents[:1] == ("Canine",)
    # a car is not a Container, though WordNet files wheeled vehicles under "container"
    assert "Container" not in tax.info("Sports Car").parents
    # two classes named "crane" in WordNet stay two distinct labels
    assert tax.info("Crane (Wading Bird)") and tax.info("Crane (Lifting Device)")


def test_taxonomy_regenerates_identically(tmp_path: Path) -> None:
    if not Path("/usr/share/wordnet/data.noun").exists():
        missing("needs WordNet: apt-get install wordnet-base")
    wnids = [c["wnid"] for c in json.loads(TAXONOMY.read_text())["classes"]]
    (tmp_path / "synsets.txt").write_text("\n".join(wnids) + "\n")
    out = tmp_path / "imagenet.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build_taxonomy.py"),
            "--synsets",
            str(tmp_path / "synsets.txt"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == TAXONOMY.read_bytes(), "imagenet.json is stale: rerun the script"


def test_zebra_photo(analyzer: LabelAnalyzer, coco_dir: Path) -> None:
    labels = analyze(analyzer, coco_dir / "images" / "000000000034.jpg")
    assert labels["Zebra"]["Confidence"] > 90
    assert [p["Name"] for p in labels["Zebra"]["Parents"]][:1] == ["Equine"]
    assert labels["Zebra"]["Categories"] == [{"Name": "Animals and Pets"}]
    # a parent is at least as confident as any class below it
    assert labels["Animal"]["Confidence"] >= labels["Zebra"]["Confidence"]
    assert labels["Mammal"]["Confidence"] >= labels["Zebra"]["Confidence"]


def test_dog_breeds_add_up_to_dog(analyzer: LabelAnalyzer, coco_dir: Path) -> None:
    """A dog photo: the breed probabilities are spread out, their sum makes a confident Dog."""
    labels = analyze(analyzer, coco_dir / "images" / "000000000074.jpg")
    assert labels["Dog"]["Confidence"] >= 55
    breeds = [n for n, lb in labels.items() if "Dog" in [p["Name"] for p in lb["Parents"]]]
    assert all(labels[b]["Confidence"] <= labels["Dog"]["Confidence"] for b in breeds)


def test_labels_are_sorted_bounded_and_floored(analyzer: LabelAnalyzer, coco_images) -> None:
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images[:8]]
    for result in analyzer.analyze(images):
        conf = [lb.Confidence for lb in result["Labels"]]
        assert conf == sorted(conf, reverse=True)
        assert all(c <= 100 for c in conf) and len(conf) <= analyzer.max_labels
        # under the floor only the best few guesses, and never below the guess floor
        assert all(c >= analyzer.min_confidence for c in conf[MIN_LABELS:])
        assert all(c >= GUESS_FLOOR for c in conf)


def test_every_photo_keeps_its_best_guesses(analyzer: LabelAnalyzer, coco_images) -> None:
    """A photo with no label ≥ 55 is still findable by its best guesses, at their confidence."""
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images[:40]]
    results = analyzer.analyze(images)
    weak = [r for r in results if not any(lb.Confidence >= 55 for lb in r["Labels"])]
    assert weak, "expected some coco photos without a confident label"
    assert all(r["Labels"] for r in results)


def test_scores_sum_parents_over_their_classes(analyzer: LabelAnalyzer) -> None:
    tax = analyzer.taxonomy
    probs = np.zeros(1000)
    index = {c.name: i for i, c in enumerate(tax.classes)}
    probs[index["Tow Truck"]] = 0.3
    probs[index["Garbage Truck"]] = 0.3
    probs[index["Sports Car"]] = 0.4
    scores = analyzer.scores(probs)
    assert scores["Truck"] == pytest.approx(60, abs=1e-3)
    assert scores["Vehicle"] == pytest.approx(100, abs=1e-3)
    assert scores["Dog"] == 0


def test_batch_matches_single_images(analyzer: LabelAnalyzer, coco_images) -> None:
    images = [decode(p.read_bytes(), min_side=analyzer.min_side) for p in coco_images[:4]]
    batch = analyzer.analyze(images)
    for image, together in zip(images, batch, strict=True):
        alone = analyzer.analyze([image])[0]
        assert [lb.Name for lb in alone["Labels"]] == [lb.Name for lb in together["Labels"]]
