"""Text in photos in the web gallery, in a real headless Chromium: a search by a word read in a
photo finds it, and the detail view lists the text read and boxes the matching word where it is.
The photos are indexed by the real pipeline with the text analyzer (coco128's stop sign and
hotel sign, and a photo without text)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_gallery_browser import CHROMIUM, FLAGS, shots_dir, wait_for_cards

from pixdex.api.app import create_app
from pixdex.api.server import BackgroundServer
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.pipeline import build_pipeline
from pixdex.sources.local import LocalSource

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

FIXTURE = json.loads((Path(__file__).parent / "data" / "coco128_text.json").read_text())


@pytest.fixture(scope="module")
def text_gallery(tmp_path_factory: pytest.TempPathFactory, coco_dir: Path):
    tmp = tmp_path_factory.mktemp("gallery-text")
    folder = tmp / "photos"
    folder.mkdir()
    for name in ("000000000151.jpg", "000000000094.jpg", FIXTURE["text_free"][0]):
        shutil.copy(coco_dir / "images" / name, folder / name)
    settings = Settings(index=str(tmp / "index.db"), cache_dir=tmp / "cache", text=True)
    index = SqliteIndex(settings.index)
    summary = build_pipeline(settings, index).run(LocalSource(folder))
    assert summary.indexed == 3, summary
    records = {
        r.key: r
        for r in (index.get(str(folder), n) for n in sorted(p.name for p in folder.iterdir()))
        if r
    }
    app = create_app(settings, index)
    with BackgroundServer(app) as server:
        yield server.url, records
    index.close()


def test_search_by_text_and_the_matching_word_boxed(text_gallery, tmp_path: Path):
    url, records = text_gallery
    stop = records["000000000151.jpg"]
    word = next(d for d in stop.TextDetections if d.Type == "WORD" and d.DetectedText == "STOP")
    problems: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto(url + "/")
        page.get_by_label("Search photos by label, alias or path").fill("stop")
        page.keyboard.press("Enter")
        wait_for_cards(page, {stop.id})
        page.locator(f'#results .card[data-id="{stop.id}"]').click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        page.wait_for_function(
            "() => { const i = document.getElementById('detail-image');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        # the text section, the matching word marked
        expect(dialog.locator(".text-lines li")).to_have_count(len(stop.text_lines()))
        expect(dialog.locator(".text-lines mark")).to_have_text(["STOP"])
        # one text box, where the word is in the photo
        boxes = dialog.locator(".box.text-box.match")
        expect(boxes).to_have_count(1)
        expect(boxes.first).to_have_attribute(
            "aria-label", f"Text “STOP” {round(word.Confidence)}%"
        )
        frame = dialog.locator("#detail-frame").bounding_box()
        drawn = boxes.first.bounding_box()
        assert frame and drawn
        b = word.Geometry.BoundingBox
        assert drawn["x"] - frame["x"] == pytest.approx(b.Left * frame["width"], abs=4)
        assert drawn["y"] - frame["y"] == pytest.approx(b.Top * frame["height"], abs=4)
        assert drawn["width"] == pytest.approx(b.Width * frame["width"], abs=4)
        page.screenshot(path=str(shots_dir(tmp_path) / "gallery-text-stop.png"))
        dialog.get_by_label("Show bounding boxes").uncheck()
        expect(boxes.first).to_be_hidden()
        page.keyboard.press("Escape")

        # the floor is about labels: at 100 no label box is drawn, the matched word still is
        page.goto(url + "/?q=stop&min_confidence=100")
        wait_for_cards(page, {stop.id})
        page.locator(f'#results .card[data-id="{stop.id}"]').click()
        dialog = page.get_by_role("dialog")
        expect(dialog.locator(".box.text-box.match")).to_have_count(1)
        expect(dialog.locator(".box:not(.text-box)")).to_have_count(0)
        assert any(lb.Instances for lb in stop.Labels)  # label boxes exist, under the floor
        page.keyboard.press("Escape")

        # the hotel sign ("PEACE WAY HOTEL"): found by its words; a photo without text says so
        page.get_by_label("Search photos by label, alias or path").fill("peace way")
        page.keyboard.press("Enter")
        wait_for_cards(page, {records["000000000094.jpg"].id})
        free = records[FIXTURE["text_free"][0]]
        page.goto(url + "/")
        page.locator(f'#results .card[data-id="{free.id}"]').click()
        expect(page.get_by_role("dialog").locator(".info")).to_contain_text(
            "No text read in this photo."
        )
        browser.close()
    assert problems == []
