"""The Index contract for text read in photos (``TextDetections``), every backend alike: stored
whole, and found by ``SearchQuery.text`` like words in the path (see ``pixdex.indexes.base``)."""

from __future__ import annotations

from test_index_contract import keys, label, rec

from pixdex.indexes.base import Index, SearchQuery
from pixdex.records import BoundingBox, Geometry, Point, Record, TextDetection


def detection(text: str, kind: str, ident: int, parent: int | None = None) -> TextDetection:
    return TextDetection(
        DetectedText=text,
        Type=kind,  # type: ignore[arg-type]
        Id=ident,
        ParentId=parent,
        Confidence=97.5,
        Geometry=Geometry(
            BoundingBox=BoundingBox(Width=0.2, Height=0.05, Left=0.4, Top=0.5),
            Polygon=[
                Point(X=0.4, Y=0.5),
                Point(X=0.6, Y=0.5),
                Point(X=0.6, Y=0.55),
                Point(X=0.4, Y=0.55),
            ],
        ),
    )


def with_text(key: str, *lines: str, labels=()) -> Record:
    found: list[TextDetection] = [detection(line, "LINE", i) for i, line in enumerate(lines)]
    for i, line in enumerate(lines):
        for word in line.split():
            found.append(detection(word, "WORD", len(found), i))
    return rec(key, *labels, TextDetections=found, TextModelVersion="test-ocr:1")


def corpus() -> list[Record]:
    return [
        with_text("signs/001.jpg", "STOP"),
        with_text("signs/002.jpg", "GREENWICH ST", "VESEY ST"),
        with_text("shop/003.jpg", "Fresh Bread Daily", labels=[label("Bakery", 70.0)]),
        rec("plain/004.jpg", label("Bread", 90.0)),  # the word only as a label
        rec("plain/005.jpg", label("Dog", 90.0), TextDetections=[], TextModelVersion="t"),
    ]


def test_text_round_trips_whole(index: Index) -> None:
    records = corpus()
    assert index.upsert(records) == []
    for original in records:
        stored = index.get(original.bucket, original.key)
        assert stored is not None and stored.to_json() == original.to_json()
    assert index.get_by_id(records[1].id).text_lines() == ["GREENWICH ST", "VESEY ST"]
    nothing = index.get(records[4].bucket, records[4].key)
    assert nothing.TextDetections == [] and records[3].TextDetections is None


def test_search_finds_words_read_in_photos(index: Index) -> None:
    assert index.upsert(corpus()) == []
    assert keys(index, SearchQuery(text="stop")) == ["signs/001.jpg"]
    assert keys(index, SearchQuery(text="STOPS")) == ["signs/001.jpg"]  # stemmed, any case
    assert keys(index, SearchQuery(text="vesey")) == ["signs/002.jpg"]
    assert keys(index, SearchQuery(text="greenwich vesey")) == ["signs/002.jpg"]
    assert keys(index, SearchQuery(text="greenwich bread")) == []  # every word must match
    assert keys(index, SearchQuery(text="dreams")) == []


def test_label_matches_rank_above_text_matches(index: Index) -> None:
    assert index.upsert(corpus()) == []
    hits = index.search(SearchQuery(text="bread")).hits
    assert [h.record.key for h in hits] == ["plain/004.jpg", "shop/003.jpg"]
    assert hits[0].score == 90.0 and hits[1].score == 0.0
    # a label filter still applies on top of a text match
    assert keys(index, SearchQuery(text="fresh", labels=["bakery"])) == ["shop/003.jpg"]
    assert keys(index, SearchQuery(text="fresh", labels=["dog"])) == []


def test_text_follows_updates_and_deletes(index: Index) -> None:
    records = corpus()
    assert index.upsert(records) == []
    stop = records[0]
    assert index.upsert([stop.model_copy(update={"TextDetections": []})]) == []
    assert keys(index, SearchQuery(text="stop")) == []
    assert index.upsert([stop]) == []
    assert keys(index, SearchQuery(text="stop")) == ["signs/001.jpg"]
    assert index.delete(stop.bucket, [stop.key]) == 1
    assert keys(index, SearchQuery(text="stop")) == []
