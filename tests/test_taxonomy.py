"""The label vocabularies read the way people search (issue: 'a parking meter must not become a
Clock, a surfboard a Boat'), and the detector's labels merge with the classifier's."""

from __future__ import annotations

import pytest

from pixdex.taxonomy import coco, imagenet


def _parents(name: str) -> set[str]:
    """Every parent a label can have in either vocabulary."""
    out: set[str] = set()
    for info in (*coco().classes, *imagenet().classes):
        if info.name == name:
            out |= set(info.parents)
    return out


@pytest.mark.parametrize(
    ("name", "not_a"),
    [
        ("Parking Meter", "Clock"),
        ("Surfboard", "Boat"),
        ("Surfboard", "Watercraft"),
        ("Hot Dog", "Sandwich"),
        ("Hot Dog", "Dog"),
        ("Teddy Bear", "Bear"),
        ("Teddy Bear", "Animal"),
        ("Mouse", "Animal"),
        ("Kite", "Bird"),
        ("Home Theater", "Building"),
        ("Home Theater", "Architecture"),
        ("Skateboard", "Vehicle"),
        ("Cup", "Alcohol"),
        ("Tv", "Furniture"),
    ],
)
def test_no_misleading_parents(name: str, not_a: str) -> None:
    assert _parents(name) or name in {i.name for i in coco().classes}
    assert not_a not in _parents(name)


def test_everyday_words_are_aliases() -> None:
    labels = {i.name: i for i in coco().classes}
    assert {"People", "Man", "Woman", "Child", "Kid", "Human"} <= set(labels["Person"].aliases)
    assert "Sofa" in labels["Couch"].aliases
    assert {"TV", "Television"} <= set(labels["Tv"].aliases)
    assert "Cellphone" in labels["Cell Phone"].aliases
    assert "TV" in next(i for i in imagenet().classes if i.name == "Television").aliases


def test_detector_names_are_unique_and_parents_known() -> None:
    vocab = coco()
    names = [i.name for i in vocab.classes]
    assert len(names) == len(set(names)) == 80
    for info in vocab.classes:
        for parent in info.parents:
            assert parent in vocab.parents, (info.name, parent)
        assert len(info.categories) == 1


def test_shared_names_agree_between_vocabularies() -> None:
    """Where both vocabularies name the same thing, the labels merge into one: same category,
    and the detector's parents cover the classifier's."""
    imagenet_labels = {i.name: i for i in (*imagenet().classes, *imagenet().parents.values())}
    shared = [i for i in coco().classes if i.name in imagenet_labels]
    assert len(shared) >= 30  # Dog, Car, Cat, Bus, Pizza, Laptop, Traffic Light, …
    for info in shared:
        other = imagenet_labels[info.name]
        assert info.categories == other.categories, info.name
        assert set(other.parents) <= set(info.parents), info.name
