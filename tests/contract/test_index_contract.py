"""The Index contract (see ``pixdex.indexes.base``), run against every backend alike."""

from __future__ import annotations

import numpy as np

from pixdex.analyzers.faces import encode_descriptor
from pixdex.indexes.base import Index, SearchQuery
from pixdex.records import (
    BoundingBox,
    FaceDetail,
    FacePose,
    FaceQuality,
    Failure,
    Instance,
    Label,
    Landmark,
    Named,
    Record,
)

BUCKET = "photos"


def label(name: str, confidence: float, parents=(), aliases=(), categories=()) -> Label:
    return Label(
        Name=name,
        Confidence=confidence,
        Parents=[Named(Name=p) for p in parents],
        Aliases=[Named(Name=a) for a in aliases],
        Categories=[Named(Name=c) for c in categories],
    )


def rec(key: str, *labels: Label, bucket: str = BUCKET, ts: str | None = None, **extra) -> Record:
    fields = {"timestamp": ts} if ts else {}
    return Record(
        bucket=bucket,
        key=key,
        uri=f"s3://{bucket}/{key}",
        Labels=list(labels),
        fingerprint=f"etag-{key}",
        content_sha256="0" * 64,
        LabelModelVersion="test-model:1",
        analyzers={"labels": "1"},
        **fields,
        **extra,
    )


def corpus() -> list[Record]:
    """Small, hand-labelled corpus with known answers for every query below."""
    return [
        rec(
            "2016/dogs/000000000042.jpg",
            label("Dog", 96.5, ["Canine", "Mammal", "Animal"], ["Domestic Dog"], ["Animals"]),
            label("Animal", 98.0, [], [], ["Animals"]),
            ts="2016-12-25T22:10:41.983000",
        ),
        rec(
            "2016/dogs/000000000074.jpg",
            label("Dog", 71.0, ["Canine", "Mammal", "Animal"], ["Domestic Dog"], ["Animals"]),
            label("Frisbee", 64.0),
            label("Animal", 80.0),
            ts="2016-12-26T08:00:00.000001",
        ),
        rec(
            "2017/street/000000000071.jpg",
            label("Tow Truck", 88.0, ["Truck", "Motor Vehicle", "Vehicle"], ["Wrecker"]),
            label("Truck", 91.0, ["Motor Vehicle", "Vehicle"]),
            label("Vehicle", 95.0, ["Transportation"]),
            ts="2017-03-01T12:00:00.000000",
        ),
        rec(
            "2017/street/000000000089.jpg",
            label("Sports Car", 60.0, ["Car", "Motor Vehicle", "Vehicle"], ["Sport Car"]),
            label("Vehicle", 75.0, ["Transportation"]),
            ts="2017-06-15T09:30:00.500000",
        ),
        rec(
            "other/000000000009.jpg",
            label("Pizza", 83.0, ["Dish", "Food"], [], ["Food and Beverage"]),
            bucket="elsewhere",
            ts="2018-01-01T00:00:00.000000",
        ),
    ]


def filled(index: Index) -> Index:
    assert index.upsert(corpus()) == []
    return index


def keys(index: Index, query: SearchQuery) -> list[str]:
    return [hit.record.key for hit in index.search(query).hits]


# --- storing -------------------------------------------------------------------------------------


def test_record_round_trips_whole(index: Index) -> None:
    original = rec(
        "a b/ñandú+1.jpg",
        Label(
            Name="Person",
            Confidence=97.25,
            Instances=[
                Instance(
                    BoundingBox=BoundingBox(Width=0.5, Height=0.25, Left=0.1, Top=0.2),
                    Confidence=97.25,
                )
            ],
            Aliases=[Named(Name="Human")],
            Categories=[Named(Name="Person Description")],
        ),
        ts="2016-12-25T22:10:41.983000",
        width=640,
        height=480,
        format="JPEG",
        size=12345,
        exif={"Make": "Canon", "GPS": {"lat": 48.85, "lon": 2.35}},
        FaceDetails=[
            FaceDetail(
                BoundingBox=BoundingBox(Width=0.1, Height=0.15, Left=0.3, Top=0.2),
                Confidence=99.5,
                Landmarks=[Landmark(Type="nose", X=0.35, Y=0.3)],
                Pose=FacePose(Roll=1.5, Yaw=-10.0, Pitch=3.25),
                Quality=FaceQuality(Brightness=45.0, Sharpness=80.5),
                descriptor=encode_descriptor(np.full(128, 128**-0.5, np.float32)),
                Grouping=True,
            )
        ],
        FaceModelVersion="blazeface:test+dlib-resnet:test",
    )
    assert original.FaceDetails and original.FaceDetails[0].FaceId  # given by the record
    assert index.upsert([original]) == []
    stored = index.get(BUCKET, "a b/ñandú+1.jpg")
    assert stored is not None
    assert stored.to_json() == original.to_json()
    assert stored.to_json()["imported-by"].startswith("pixdex/")
    assert index.get_by_id(original.id) is not None
    assert index.get(BUCKET, "missing.jpg") is None


def test_reindex_overwrites_instead_of_duplicating(index: Index) -> None:
    filled(index)
    key = "2016/dogs/000000000042.jpg"
    assert index.upsert([rec(key, label("Cat", 90.0, ["Feline", "Animal"]))]) == []
    assert index.stats().records == len(corpus())
    assert key not in keys(index, SearchQuery(labels=["dog"]))
    assert keys(index, SearchQuery(labels=["cat"])) == [key]
    assert index.get(BUCKET, key).Labels[0].Name == "Cat"


def test_delete_removes_everywhere(index: Index) -> None:
    filled(index)
    removed = index.delete(BUCKET, ["2016/dogs/000000000042.jpg", "never-indexed.jpg"])
    assert removed == 1
    assert keys(index, SearchQuery(labels=["dog"])) == ["2016/dogs/000000000074.jpg"]
    assert "2016/dogs/000000000042.jpg" not in index.known(BUCKET)
    assert index.stats().records == len(corpus()) - 1


def test_known_reports_fingerprints_under_prefix(index: Index) -> None:
    filled(index)
    known = index.known(BUCKET, "2017/")
    assert sorted(known) == ["2017/street/000000000071.jpg", "2017/street/000000000089.jpg"]
    seen = known["2017/street/000000000071.jpg"]
    assert seen.fingerprint == "etag-2017/street/000000000071.jpg"
    assert seen.analysis_version == "labels=1"
    assert seen.content_sha256 == "0" * 64
    assert set(index.known("elsewhere")) == {"other/000000000009.jpg"}


# --- label search --------------------------------------------------------------------------------


def test_label_query_is_case_insensitive_and_ranked_by_confidence(index: Index) -> None:
    filled(index)
    result = index.search(SearchQuery(labels=["DOG"]))
    assert result.total == 2
    assert [h.record.key for h in result.hits] == [
        "2016/dogs/000000000042.jpg",
        "2016/dogs/000000000074.jpg",
    ]
    assert [round(h.score, 1) for h in result.hits] == [96.5, 71.0]


def test_label_query_matches_parents_and_aliases(index: Index) -> None:
    filled(index)
    # "Motor Vehicle" is only ever a parent; "Wrecker" only an alias.
    assert set(keys(index, SearchQuery(labels=["motor vehicle"]))) == {
        "2017/street/000000000071.jpg",
        "2017/street/000000000089.jpg",
    }
    assert keys(index, SearchQuery(labels=["wrecker"])) == ["2017/street/000000000071.jpg"]
    assert keys(index, SearchQuery(labels=["Domestic Dog"]))[0] == "2016/dogs/000000000042.jpg"


def test_min_confidence_filters_on_the_matching_label(index: Index) -> None:
    filled(index)
    assert keys(index, SearchQuery(labels=["dog"], min_confidence=80)) == [
        "2016/dogs/000000000042.jpg"
    ]
    # Vehicle ≥ 80: the tow truck (Vehicle 95) qualifies; the sports car's best is Vehicle 75.
    assert keys(index, SearchQuery(labels=["Vehicle"], min_confidence=80)) == [
        "2017/street/000000000071.jpg"
    ]
    assert keys(index, SearchQuery(labels=["dog"], min_confidence=99)) == []


def test_several_labels_must_all_match(index: Index) -> None:
    filled(index)
    assert keys(index, SearchQuery(labels=["dog", "frisbee"])) == ["2016/dogs/000000000074.jpg"]
    assert keys(index, SearchQuery(labels=["dog", "pizza"])) == []


# --- free text -----------------------------------------------------------------------------------


def test_text_matches_label_words_and_paths(index: Index) -> None:
    filled(index)
    assert set(keys(index, SearchQuery(text="dog"))) == {
        "2016/dogs/000000000042.jpg",
        "2016/dogs/000000000074.jpg",
    }
    assert keys(index, SearchQuery(text="truck"))[0] == "2017/street/000000000071.jpg"
    assert set(keys(index, SearchQuery(text="street"))) == {
        "2017/street/000000000071.jpg",
        "2017/street/000000000089.jpg",
    }
    assert keys(index, SearchQuery(text="pizza")) == ["other/000000000009.jpg"]
    assert keys(index, SearchQuery(text="giraffe")) == []


def test_text_label_matches_rank_by_confidence(index: Index) -> None:
    filled(index)
    hits = index.search(SearchQuery(text="vehicle")).hits
    assert [h.record.key for h in hits] == [
        "2017/street/000000000071.jpg",
        "2017/street/000000000089.jpg",
    ]
    assert hits[0].score >= hits[1].score > 0


# --- free text: ranking tiers (a label equal to the query first) ----------------------------------

PERSON_ALIASES = ["Human", "People", "Man", "Woman", "Child", "Kid"]


def tier_corpus() -> list[Record]:
    """Labels that equal a query, labels that merely contain a query word (some more confident),
    everyday words as aliases, a phrase, and a path-only match."""
    return [
        rec("t/dog.jpg", label("Dog", 70.0, ["Canine", "Animal"])),
        rec("t/puppy.jpg", label("Dog", 55.5, ["Canine", "Animal"])),
        rec("t/hot-dog.jpg", label("Hot Dog", 95.0, ["Food"])),
        # ImageNet's "hotdog, hot dog, red hot": the more confident, with "Hot Dog" as an alias
        rec("t/hotdog.jpg", label("Hotdog", 99.0, ["Food"], ["Hot Dog", "Red Hot"])),
        # a dog photo with another label that has the word "hot"
        rec(
            "t/spa.jpg",
            label("Dog", 90.0, ["Canine", "Animal"]),
            label("Hot Spring", 85.0, ["Body Of Water"]),
        ),
        rec("t/faint.jpg", label("Dog", 30.0, ["Canine", "Animal"]), label("Frisbee", 80.0)),
        rec("t/dogs-folder/cat.jpg", label("Cat", 88.0, ["Feline", "Animal"])),
        rec("t/crowd.jpg", label("Person", 97.0, [], PERSON_ALIASES)),
        rec(
            "t/family.jpg",
            label("Person", 64.0, [], PERSON_ALIASES),
            label("Couch", 58.0, ["Furniture"], ["Sofa"]),
        ),
        rec("t/car.jpg", label("Car Seat", 93.0, ["Seat"], ["Child Seat"])),
        rec("t/living.jpg", label("Couch", 81.0, ["Furniture"], ["Sofa"])),
        rec("t/junction.jpg", label("Traffic Light", 72.0, ["Light"], ["Traffic Signal"])),
        rec(
            "t/avenue.jpg",
            label("Street Light", 96.0, ["Light"]),
            label("Traffic Sign", 92.0, ["Sign"]),
        ),
    ]


def ranked(index: Index, text: str, **kw) -> list[tuple[str, float]]:
    hits = index.search(SearchQuery(text=text, limit=100, **kw)).hits
    return [(h.record.key.removeprefix("t/"), round(h.score, 3)) for h in hits]


def test_a_label_equal_to_the_query_ranks_above_one_that_contains_its_word(index: Index) -> None:
    assert index.upsert(tier_corpus()) == []
    expected = [
        ("dog.jpg", 70.0),  # equal: Dog, by confidence …
        ("puppy.jpg", 55.5),
        ("hotdog.jpg", 99.0),  # … then labels containing "dog", even far more confident ones
        ("hot-dog.jpg", 95.0),
        ("dogs-folder/cat.jpg", 0.0),  # and last, the path-only match
    ]
    # spa.jpg: Dog 90 is equal too; faint.jpg's Dog (30) is below the floor
    expected.insert(0, ("spa.jpg", 90.0))
    for text in ("dog", "Dog", "DOGS", "dogs"):
        assert ranked(index, text, min_confidence=55) == expected, text


def test_a_multi_word_query_equals_the_multi_word_label(index: Index) -> None:
    assert index.upsert(tier_corpus()) == []
    # "hot dog" equals "Hot Dog" (a name, and an alias of Hotdog); the dog in the hot spring has
    # both words, in two labels, and comes after them although its Dog is 90
    assert ranked(index, "hot dog") == [
        ("hotdog.jpg", 99.0),
        ("hot-dog.jpg", 95.0),
        ("spa.jpg", 85.0),
    ]
    assert ranked(index, "hot dogs") == ranked(index, "hot dog")
    assert ranked(index, "hotdog") == [("hotdog.jpg", 99.0)]
    # the phrase, in any case and number, before labels with both words
    for text in ("traffic light", "Traffic Lights", "TRAFFIC LIGHT"):
        assert ranked(index, text) == [("junction.jpg", 72.0), ("avenue.jpg", 92.0)], text
    assert ranked(index, "traffic signal") == [("junction.jpg", 72.0)]  # an alias phrase
    assert ranked(index, "light traffic")[0] == ("avenue.jpg", 92.0)  # word order matters


def test_everyday_words_reach_labels_through_aliases(index: Index) -> None:
    assert index.upsert(tier_corpus()) == []
    people = [("crowd.jpg", 97.0), ("family.jpg", 64.0)]
    words = ["people", "People", "person", "persons", "human", "humans", "man", "men", "woman"]
    words += ["women", "kid", "kids", "child", "children"]
    for text in words:
        hits = ranked(index, text)
        assert hits[:2] == people, text
    # "child" is also a word of the car seat's alias "Child Seat": found, after the people
    assert ranked(index, "child") == [*people, ("car.jpg", 93.0)]
    for text in ("sofa", "sofas", "couch", "couches"):
        assert ranked(index, text) == [("living.jpg", 81.0), ("family.jpg", 58.0)], text


def test_the_floor_applies_to_every_tier(index: Index) -> None:
    assert index.upsert(tier_corpus()) == []
    # below 55 only when asked: the faint dog (30) is then an equal match
    assert ("faint.jpg", 30.0) not in ranked(index, "dog", min_confidence=55)
    low = ranked(index, "dog", min_confidence=30)
    assert low.index(("faint.jpg", 30.0)) == 3  # last of the equal tier
    assert ranked(index, "dog", min_confidence=31) == ranked(index, "dog", min_confidence=55)
    # a floor above the equal label drops the record to a lower tier, if any: dog.jpg (Dog 70)
    # is then found by its path only
    assert ranked(index, "dog", min_confidence=75) == [
        ("spa.jpg", 90.0),
        ("hotdog.jpg", 99.0),
        ("hot-dog.jpg", 95.0),
        ("dog.jpg", 0.0),
        ("dogs-folder/cat.jpg", 0.0),
    ]
    result = index.search(SearchQuery(text="person", min_confidence=60))
    assert dict(result.facets) == {"Person": 2}  # facets follow the floor: no Couch 58


def test_tiers_with_a_label_filter_and_pages(index: Index) -> None:
    assert index.upsert(tier_corpus()) == []
    # with a required label, the score is the lower of the two, the tier the text's
    assert ranked(index, "dog", labels=["animal"]) == [
        ("spa.jpg", 90.0),
        ("dog.jpg", 70.0),
        ("puppy.jpg", 55.5),
        ("faint.jpg", 30.0),
        ("dogs-folder/cat.jpg", 0.0),
    ]
    whole = [k for k, _ in ranked(index, "dog")]
    for size in (1, 2, 3, 4):  # pages that end on a tier's edge and pages across it
        pages = [
            [h.record.key.removeprefix("t/") for h in index.search(q).hits]
            for q in (
                SearchQuery(text="dog", limit=size, offset=o, facets=0) for o in range(0, 9, size)
            )
        ]
        assert [k for page in pages for k in page] == whole, size
        assert index.search(SearchQuery(text="dog", limit=size, offset=2)).total == len(whole)


def test_ties_within_a_tier_go_by_key_not_by_other_labels(index: Index) -> None:
    # equal Dog labels: the Hot Dog (more confident, and containing "dog") of one must not
    # lift it above the other; neither for the label query
    assert (
        index.upsert(
            [
                rec("t/b.jpg", label("Dog", 80.0, ["Animal"]), label("Hot Dog", 95.0, ["Food"])),
                rec("t/a.jpg", label("Dog", 80.0, ["Animal"])),
                rec("t/c.jpg", label("Hot Dog", 90.0, ["Food"]), label("Corn Dog", 90.0)),
                rec("t/d.jpg", label("Corn Dog", 90.0, ["Food"])),
            ]
        )
        == []
    )
    assert ranked(index, "dog") == [
        ("a.jpg", 80.0),
        ("b.jpg", 80.0),
        ("c.jpg", 90.0),
        ("d.jpg", 90.0),
    ]
    assert keys(index, SearchQuery(labels=["dog"])) == ["t/a.jpg", "t/b.jpg"]
    assert keys(index, SearchQuery(labels=["food"])) == ["t/b.jpg", "t/c.jpg", "t/d.jpg"]


# --- filters, facets, pagination -----------------------------------------------------------------


def test_bucket_prefix_and_date_filters(index: Index) -> None:
    filled(index)
    everything = SearchQuery(limit=100)
    assert index.search(everything).total == 5
    assert keys(index, SearchQuery(bucket="elsewhere")) == ["other/000000000009.jpg"]
    assert set(keys(index, SearchQuery(bucket=BUCKET, prefix="2016/dogs/"))) == {
        "2016/dogs/000000000042.jpg",
        "2016/dogs/000000000074.jpg",
    }
    assert set(keys(index, SearchQuery(since="2017-01-01", until="2017-12-31"))) == {
        "2017/street/000000000071.jpg",
        "2017/street/000000000089.jpg",
    }
    # a bare date as the upper bound includes that whole day
    assert keys(index, SearchQuery(until="2016-12-25")) == ["2016/dogs/000000000042.jpg"]


def test_facets_count_labels_over_the_whole_result_set(index: Index) -> None:
    filled(index)
    result = index.search(SearchQuery(labels=["animal"], limit=1))
    assert result.total == 2 and len(result.hits) == 1
    facets = dict(result.facets)
    assert facets["Dog"] == 2
    assert facets["Animal"] == 2
    assert facets["Frisbee"] == 1
    assert "Pizza" not in facets
    # parents and aliases are not facets of their own
    assert "Canine" not in facets and "Domestic Dog" not in facets
    assert result.facets[0][1] >= result.facets[-1][1]


def test_a_record_holds_one_label_per_name_and_counts_once_in_the_facets(index: Index) -> None:
    """A writer that repeats a name (another tool, an analyzer merging badly) still leaves one
    label per name, the higher confidence with the other's boxes, and the record counts once."""
    box = Instance(BoundingBox=BoundingBox(Width=0.5, Height=0.5, Left=0, Top=0), Confidence=70.0)
    boxed, sure = label("Dog", 62.0, ["Animal"]), label("Dog", 90.0, ["Pet"])
    boxed.Instances = [box]
    twice = rec("dup.jpg", boxed, sure, label("Frisbee", 64.0))
    assert [p.Name for p in sure.Parents] == ["Pet"] and sure.Instances == []  # not edited
    assert [lb.Name for lb in twice.Labels] == ["Dog", "Frisbee"]
    dog = twice.Labels[0]
    assert dog.Confidence == 90.0 and dog.Instances == [box]
    assert {p.Name for p in dog.Parents} == {"Animal", "Pet"}
    assert index.upsert([twice, rec("other.jpg", label("Dog", 80.0))]) == []
    result = index.search(SearchQuery(labels=["dog"]))
    assert dict(result.facets)["Dog"] == 2 and result.total == 2
    stored = index.get(BUCKET, "dup.jpg")
    assert stored is not None and [lb.Name for lb in stored.Labels] == ["Dog", "Frisbee"]


def test_facets_count_exactly_at_every_floor(index: Index) -> None:
    """Facets at any floor count the records whose label of that name reaches it, whether the
    index counts them from lists kept at fixed floors (Elasticsearch/OpenSearch at 50, 55 … 95)
    or from the labels themselves (every other floor; SQLite always); confidences sit on and
    just under those floors."""
    confidences = [30.0, 54.99, 55.0, 57.5, 60.0, 79.9, 80.0, 95.0, 99.0]
    records = [
        rec(f"f/{i}.jpg", label("Dog", c, ["Animal"]), label("Ball", 100.0 - c))
        for i, c in enumerate(confidences)
    ]
    assert index.upsert(records) == []
    for floor in (0.0, 30.0, 50.0, 54.99, 55.0, 57.5, 60.0, 79.9, 80.0, 95.0, 99.5):
        dogs = [c for c in confidences if c >= floor]
        balls = [c for c in confidences if 100.0 - c >= floor]
        result = index.search(SearchQuery(min_confidence=floor, labels=["Dog"], facets=10))
        with_dog = {"Dog": len(dogs), "Ball": len(set(dogs) & set(balls))}
        assert dict(result.facets) == {n: k for n, k in with_dog.items() if k}, floor
        assert result.total == len(dogs), floor
        every = index.search(SearchQuery(min_confidence=floor, facets=10))
        assert dict(every.facets) == {
            n: k for n, k in (("Dog", len(dogs)), ("Ball", len(balls))) if k
        }, floor


def test_pagination_is_stable_and_complete(index: Index) -> None:
    filled(index)
    pages = [
        keys(index, SearchQuery(limit=2, offset=offset, facets=0)) for offset in range(0, 6, 2)
    ]
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [k for page in pages for k in page]
    assert len(set(flat)) == 5
    assert index.search(SearchQuery(limit=2, offset=4)).total == 5


# --- failures and stats --------------------------------------------------------------------------


def test_failures_are_recorded_and_cleared_by_success(index: Index) -> None:
    filled(index)
    index.record_failures(
        [
            Failure(bucket=BUCKET, key="broken.jpg", reason="corrupt image: truncated image data"),
            Failure(bucket=BUCKET, key="notes.jpg", reason="not an image"),
        ]
    )
    index.record_failures([Failure(bucket=BUCKET, key="notes.jpg", reason="still not an image")])
    failures = {f.key: f.reason for f in index.failures()}
    assert failures == {
        "broken.jpg": "corrupt image: truncated image data",
        "notes.jpg": "still not an image",
    }
    assert index.stats().failures == 2
    index.upsert([rec("broken.jpg", label("Cat", 70.0))])
    assert [f.key for f in index.failures(BUCKET)] == ["notes.jpg"]
    index.delete(BUCKET, ["notes.jpg"])
    assert index.failures() == []


def test_stats_summarise_the_index(index: Index) -> None:
    filled(index)
    stats = index.stats()
    assert stats.records == 5
    assert stats.failures == 0
    assert dict(stats.top_labels)["Vehicle"] == 2
    assert stats.top_labels[0][1] >= stats.top_labels[-1][1]
    assert dict(stats.model_versions) == {"test-model:1": 5}
    assert stats.labels == len({lb.Name for r in corpus() for lb in r.Labels})
    assert stats.location


# --- similar photos ---------------------------------------------------------------------------


def embedded(key: str, vector: np.ndarray, version: str = "emb:1", **extra) -> Record:
    from pixdex.records import Embedding
    from pixdex.similarity import encode_embedding, normalize

    thumbnail = bytes(range(192))
    embedding = Embedding.of(version, encode_embedding(normalize(vector)), thumbnail)
    return rec(key, label("Dog", 90.0), embedding=embedding, width=640, height=480, **extra)


def test_similar_finds_the_nearest_of_the_same_version(index: Index) -> None:
    from pixdex.indexes.base import SimilarQuery
    from pixdex.similar import vector_of

    rng = np.random.default_rng(7)
    base = rng.normal(size=256)
    photos = [
        embedded("a.jpg", base),
        embedded("a-copy.jpg", base + 0.1 * rng.normal(size=256)),
        embedded("other.jpg", rng.normal(size=256)),
        embedded("a-other-model.jpg", base, version="emb:2"),
        rec("no-embedding.jpg", label("Dog", 90.0)),
    ]
    assert index.upsert(photos) == []
    query = SimilarQuery(vector_of(photos[0].embedding), "emb:1", limit=5, exclude=photos[0].id)
    found = index.similar(query)
    assert [h.record.key for h in found.hits] == ["a-copy.jpg", "other.jpg"]
    assert found.hits[0].score > 95 and found.hits[1].score < 30
    assert found.hits[0].record.embedding == photos[1].embedding  # records keep it whole
    with_itself = index.similar(SimilarQuery(query.vector, "emb:1", limit=1))
    assert [h.record.key for h in with_itself.hits] == ["a.jpg"] and with_itself.hits[0].score > 99
    # writes are followed: a deleted photo is no longer similar, a new one is
    index.delete(BUCKET, ["a-copy.jpg"])
    assert index.upsert([embedded("a-again.jpg", base + 0.05 * rng.normal(size=256))]) == []
    found = index.similar(query)
    assert [h.record.key for h in found.hits] == ["a-again.jpg", "other.jpg"]


def test_embeddings_of_a_version_for_duplicates(index: Index) -> None:
    rng = np.random.default_rng(8)
    photos = [embedded(f"{i}.jpg", rng.normal(size=256), size=1000 + i) for i in range(3)]
    photos.append(embedded("old.jpg", rng.normal(size=256), version="emb:0"))
    assert index.upsert(photos) == []
    assert index.embedding_versions() == [("emb:1", 3), ("emb:0", 1)]
    found = index.embeddings("emb:1")
    assert found.vectors.shape == (3, 256) and found.vectors.dtype == np.int8
    assert found.thumbnails.shape == (3, 8, 8, 3)
    by_key = {p["key"]: (p, found.vectors[i]) for i, p in enumerate(found.photos)}
    assert set(by_key) == {"0.jpg", "1.jpg", "2.jpg"}
    for photo in photos[:3]:
        info, vector = by_key[photo.key]
        assert info["id"] == photo.id and info["size"] == photo.size and info["width"] == 640
        assert vector.tobytes() == photo.embedding.vector_bytes()
    index.delete(BUCKET, ["0.jpg"])
    assert index.embedding_versions() == [("emb:1", 2), ("emb:0", 1)]
