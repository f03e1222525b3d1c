"""Micro-batching of the image endpoints (``pixdex.api.batching``).

The batcher's own rules (bounded queue, pixel budget, window, one bad image failing only its own
request, cancelled requests skipped) are checked with run functions whose pace the test controls,
on real decoded coco128 photos; then the real DetectLabels and DetectText endpoints, served over
a real socket with the real analyzers, batch concurrent requests and answer each as
``LabelDetector`` / ``TextDetector`` answer it alone (with its own MaxLabels, MinConfidence or
Filters); a flood is refused with 503 + Retry-After (ThrottlingException) instead of queueing
without bound, and answered again once it is over.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pixdex.api.batching import ImageBatcher
from pixdex.errors import ImageError, Overloaded


class Gate:
    """A run function that records its batches and holds each until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[tuple[int, int]]] = []

    def __call__(self, images, options):
        self.started.set()
        self.release.wait(30)
        if any(o == "boom" for o in options):
            raise RuntimeError("analyzer choked")
        self.batches.append([(im.width, im.height) for im in images])
        return [
            {"size": [im.width, im.height], "option": o}
            for im, o in zip(images, options, strict=True)
        ]


async def _gather(batcher: ImageBatcher, items: list[tuple[bytes, object]]) -> list[object]:
    return await asyncio.gather(
        *(batcher.submit(data, opt) for data, opt in items), return_exceptions=True
    )


def test_concurrent_requests_share_batches_and_get_their_own_answers(coco_images: list[Path]):
    gate = Gate()
    batcher = ImageBatcher(gate, max_batch=4, window=0.5, max_queue=16)
    photos = [p.read_bytes() for p in coco_images[:9]]

    async def scenario():
        first = asyncio.ensure_future(batcher.submit(photos[0], 0))
        await asyncio.to_thread(gate.started.wait, 10)  # batch 1 = the lone first request
        rest = asyncio.ensure_future(
            _gather(batcher, [(p, i) for i, p in enumerate(photos[1:], 1)])
        )
        await asyncio.sleep(0.5)  # the 8 others decode and queue while batch 1 is held
        gate.release.set()
        return [await first, *(await rest)]

    try:
        answers = asyncio.run(scenario())
    finally:
        gate.release.set()
        batcher.close()
    assert [len(b) for b in gate.batches] == [1, 4, 4]
    assert [a["option"] for a in answers] == list(range(9))  # each request its own answer
    from PIL import Image

    for path, answer in zip(coco_images[:9], answers, strict=True):
        with Image.open(path) as im:
            assert answer["size"] == [im.width, im.height]
    assert batcher.stats.batches == 3 and batcher.stats.largest == 4


def test_several_batch_threads_run_batches_at_the_same_time(coco_images: list[Path]):
    """With ``runners=2`` a second batch starts while the first is still running (what keeps
    both cores busy when each model runs on one thread), and every request still gets its own
    answer."""
    running = 0
    most = 0
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=10)

    def run(images, options):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            both.wait()  # returns only once two batches are running at once
        finally:
            with lock:
                running -= 1
        return [{"option": o} for o in options]

    batcher = ImageBatcher(run, max_batch=4, runners=2, window=0.2, max_queue=16)
    photos = [p.read_bytes() for p in coco_images[:8]]
    try:
        answers = asyncio.run(_gather(batcher, [(p, i) for i, p in enumerate(photos)]))
    finally:
        batcher.close()
    assert [a["option"] for a in answers] == list(range(8))
    assert most == 2
    assert batcher.stats.images == 8 and batcher.stats.batches >= 2


def test_a_full_queue_refuses_at_once_with_a_retry_time(coco_images: list[Path]):
    gate = Gate()
    batcher = ImageBatcher(gate, max_batch=2, window=0, max_queue=3)
    photo = coco_images[0].read_bytes()

    async def scenario():
        held = asyncio.ensure_future(batcher.submit(photo, "held"))
        await asyncio.to_thread(gate.started.wait, 10)  # being analyzed: no longer queued
        waiting = [asyncio.ensure_future(batcher.submit(photo, i)) for i in range(3)]
        await asyncio.sleep(0.3)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(photo, "one too many")
        gate.release.set()
        return refused.value, await held, await asyncio.gather(*waiting)

    try:
        refused, held, waiting = asyncio.run(scenario())
    finally:
        gate.release.set()
        batcher.close()
    assert refused.retry_after >= 1 and "3 requests already waiting" in str(refused)
    assert held["option"] == "held" and [w["option"] for w in waiting] == [0, 1, 2]
    assert batcher.stats.refused == 1


def test_the_pixel_budget_bounds_what_waits_in_memory(coco_images: list[Path]):
    gate = Gate()
    photo = coco_images[0].read_bytes()
    from PIL import Image

    with Image.open(coco_images[0]) as im:
        pixels = im.width * im.height
    # room for one waiting photo's pixels, not two
    batcher = ImageBatcher(gate, window=0, max_queue=10, max_pixels=int(pixels * 1.5))

    async def scenario():
        held = asyncio.ensure_future(batcher.submit(photo, "held"))
        await asyncio.to_thread(gate.started.wait, 10)
        queued = asyncio.ensure_future(batcher.submit(photo, "queued"))
        await asyncio.sleep(0.3)
        with pytest.raises(Overloaded, match="MP of images already waiting"):
            await batcher.submit(photo, "over budget")
        gate.release.set()
        return await held, await queued

    try:
        held, queued = asyncio.run(scenario())
    finally:
        gate.release.set()
        batcher.close()
    assert (held["option"], queued["option"]) == ("held", "queued")


def test_a_bad_image_or_a_failing_analysis_fails_only_its_own_request(coco_images: list[Path]):
    gate = Gate()
    gate.release.set()
    batcher = ImageBatcher(gate, max_batch=8, window=0.2, max_queue=8)
    photos = [p.read_bytes() for p in coco_images[:3]]
    items = [(photos[0], 0), (b"GIF89a not really", 1), (photos[1], "boom"), (photos[2], 3)]
    try:
        answers = asyncio.run(_gather(batcher, items))
    finally:
        batcher.close()
    assert answers[0]["option"] == 0 and answers[3]["option"] == 3
    assert isinstance(answers[1], ImageError)
    assert isinstance(answers[2], RuntimeError) and "choked" in str(answers[2])


# --- the real endpoint --------------------------------------------------------------------------
def _post(
    url: str, payload: bytes, path: str = "/rekognition/detect-labels"
) -> tuple[int, http.client.HTTPMessage, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from pixdex.api.app import create_app
    from pixdex.api.server import BackgroundServer
    from pixdex.config import Settings

    index = tmp_path_factory.mktemp("batching") / "index.db"
    app = create_app(Settings(index=str(index)))
    with BackgroundServer(app) as running:
        yield app, running.url


def test_detect_labels_batches_concurrent_requests_with_the_real_analyzers(
    server, coco_images: list[Path]
):
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.config import Settings

    app, url = server
    photos = coco_images[:12]
    payloads = [
        json.dumps({"Image": {"Bytes": base64.b64encode(p.read_bytes()).decode()}}).encode()
        for p in photos
    ]
    with ThreadPoolExecutor(len(payloads)) as pool:
        results = list(pool.map(lambda body: _post(url, body), payloads))
    assert [status for status, _, _ in results] == [200] * len(photos)
    stats = app.state.pixdex.detector.batcher().stats
    assert stats.images == len(photos) and stats.largest > 1, stats
    alone = LabelDetector(Settings())
    for path, (_, _, answer) in zip(photos, results, strict=True):
        expected = alone.detect_bytes(path.read_bytes())
        assert answer["LabelModelVersion"] == expected["LabelModelVersion"]
        # batched inference may differ from a batch of one in the last float bits
        got = {lb["Name"]: lb["Confidence"] for lb in answer["Labels"]}
        want = {lb["Name"]: lb["Confidence"] for lb in expected["Labels"]}
        borderline = {n for n, c in {**got, **want}.items() if abs(c - 55) < 0.05}
        assert got.keys() - borderline == want.keys() - borderline, path.name
        for name in got.keys() & want.keys():
            assert got[name] == pytest.approx(want[name], abs=0.05), (path.name, name)


def test_detect_labels_answers_a_flood_with_503_and_retry_after(server, coco_images: list[Path]):
    app, url = server
    batcher = app.state.pixdex.detector.batcher()
    flood = batcher.max_queue + 40
    body = json.dumps(
        {"Image": {"Bytes": base64.b64encode(coco_images[0].read_bytes()).decode()}}
    ).encode()
    with ThreadPoolExecutor(flood) as pool:
        results = list(pool.map(lambda _: _post(url, body), range(flood)))
    refused = [(headers, answer) for status, headers, answer in results if status == 503]
    answered = [answer for status, _, answer in results if status == 200]
    assert len(refused) + len(answered) == flood
    assert refused, "a flood beyond the queue must be refused, not queued"
    assert len(answered) >= batcher.max_batch
    for headers, answer in refused:
        assert answer["__type"] == "ThrottlingException"
        assert int(headers["Retry-After"]) >= 1
        assert "retry in" in answer["Message"]
    assert all(a["Labels"] == answered[0]["Labels"] for a in answered)
    status, _, again = _post(url, body)  # the flood is over: answered again
    assert status == 200 and again["Labels"] == answered[0]["Labels"]


def test_detect_text_batches_concurrent_requests_and_applies_each_ones_filters(
    server, coco_dir: Path
):
    from pixdex.analyzers.text import TextDetector, WordFilter
    from pixdex.config import Settings

    app, url = server
    stop_sign = (coco_dir / "images" / "000000000151.jpg").read_bytes()
    plain = {"Image": {"Bytes": base64.b64encode(stop_sign).decode()}}
    strict = {**plain, "Filters": {"WordFilter": {"MinConfidence": 100}}}
    bodies = [json.dumps(strict if i % 2 else plain).encode() for i in range(8)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        results = list(pool.map(lambda b: _post(url, b, "/rekognition/detect-text"), bodies))
    assert [status for status, _, _ in results] == [200] * len(bodies)
    stats = app.state.pixdex.text.batcher().stats
    assert stats.images == len(bodies) and stats.largest > 1, stats
    alone = TextDetector(Settings())
    want_plain = alone.detect_bytes(stop_sign)
    want_strict = alone.detect_bytes(stop_sign, WordFilter(min_confidence=100))
    assert any(d["DetectedText"] == "STOP" for d in want_plain["TextDetections"])
    for i, (_, _, answer) in enumerate(results):
        assert answer == json.loads(json.dumps(want_strict if i % 2 else want_plain))


def test_detect_files_analyzes_batches_on_two_threads_and_answers_in_order(
    coco_images: list[Path], tmp_path: Path
):
    """``pixdex detect-labels`` over many files: batches go to both analysis threads at once,
    yet the answers come back in the files' order, each as ``detect_bytes`` gives it alone, and
    an unreadable file yields its own error in its place."""
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.config import Settings

    detector = LabelDetector(Settings(batch_size=3))
    assert detector.parallel == 2
    threads: set[str] = set()
    first = detector.analyzers[0]
    analyze = first.analyze

    def spy(images):
        threads.add(threading.current_thread().name)
        return analyze(images)

    first.analyze = spy  # type: ignore[method-assign]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    files = [*coco_images[:5], bad, *coco_images[5:10]]
    answers = list(detector.detect_files(iter(files)))  # an iterator: no evenly split batches
    assert [path for path, _ in answers] == files
    assert isinstance(answers[5][1], ImageError)
    assert len(threads) == 2, threads
    for path, answer in answers[:5] + answers[6:]:
        assert isinstance(answer, dict)
        alone = detector.detect_bytes(path.read_bytes())
        got = {lb["Name"]: lb["Confidence"] for lb in answer["Labels"]}
        want = {lb["Name"]: lb["Confidence"] for lb in alone["Labels"]}
        borderline = {n for n, c in {**got, **want}.items() if abs(c - 55) < 0.05}
        assert got.keys() - borderline == want.keys() - borderline, path.name
