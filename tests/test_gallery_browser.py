"""The web gallery in a real headless Chromium (Debian's), served by uvicorn on 127.0.0.1.

A user's path through it: browse, type a query, click a label facet, move the confidence slider,
load more, open a photo (full image, Person boxes, all labels, EXIF), step and close with the
keyboard. The page must load nothing from outside the server and log no errors (a CSP violation
would). Without /usr/bin/chromium it is skipped, or fails under scripts/test (``_tools``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _tools import everything_required
from test_api import COCO, FLOOR, build_index, with_label

from pixdex.api.app import create_app
from pixdex.api.server import BackgroundServer
from pixdex.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    if everything_required():
        pytest.fail("needs Chromium: apt-get install chromium", pytrace=False)
    pytest.skip("needs Chromium: apt-get install chromium", allow_module_level=True)
try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:
    if everything_required():
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory):
    if not (COCO / "images").is_dir():
        pytest.fail(f"coco128 not found at {COCO} (set PIXDEX_SHARED)")
    tmp = tmp_path_factory.mktemp("gallery")
    index, records = build_index(tmp / "index.db")
    app = create_app(Settings(index=index.location, cache_dir=tmp / "cache"), index)
    with BackgroundServer(app) as server:
        yield server.url, records
    index.close()


@pytest.fixture(scope="module")
def browser_page(gallery, tmp_path_factory: pytest.TempPathFactory):
    url, _ = gallery
    profile = tmp_path_factory.mktemp("chromium-profile")  # new and empty
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.goto(url + "/")
        yield page, requests, problems
        context.close()


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PIXDEX_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def card_ids(page: Page) -> set[str]:
    return set(page.locator("#results .card").evaluate_all("cards => cards.map(c => c.dataset.id)"))


def wait_for_cards(page: Page, expected: set[str]) -> None:
    page.wait_for_function(
        """ids => {
            const shown = [...document.querySelectorAll('#results .card')].map(c => c.dataset.id);
            return shown.length === ids.length && ids.every(id => shown.includes(id))
                && !document.body.hasAttribute('aria-busy');
        }""",
        arg=sorted(expected),
    )


def thumbnails_loaded(page: Page, count: int) -> None:
    page.wait_for_function(
        """n => {
            const imgs = [...document.querySelectorAll('#results .card img')].slice(0, n);
            return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=count,
    )


def test_search_facets_slider_detail_and_keyboard(browser_page, gallery, tmp_path: Path):
    page, requests, problems = browser_page
    url, records = gallery
    shots = shots_dir(tmp_path)
    by_key = sorted(records, key=lambda r: r.key)

    # Browse: the first page of everything, thumbnails really loaded, stats in the footer; the
    # slider shows the server's default floor (the min_confidence setting).
    wait_for_cards(page, {r.id for r in by_key[:24]})
    expect(page.locator("#min-confidence-value")).to_have_text(f"{FLOOR:g}%")
    assert "min_confidence" not in page.url
    expect(page.locator("#status")).to_have_text(f"{len(records)} photos · showing 24")
    thumbnails_loaded(page, 8)
    expect(page.locator("#footer")).to_contain_text(f"{len(records)} photos indexed")
    page.screenshot(path=str(shots / "gallery-browse.png"))

    # Load more appends the next page.
    page.get_by_role("button", name="Load more").click()
    wait_for_cards(page, {r.id for r in by_key[:48]})

    # Type a query: free text matches words of labels, parents, aliases (so "Hot Dog" too), at
    # or above the floor; the photos labelled Dog come first, then those with "dog" in a label.
    dogs = {
        r.id
        for r in records
        if any("dog" in t.lower().split() and c >= FLOOR for t, c in r.label_terms())
    }
    labelled_dog = set(with_label(records, "dog"))
    assert labelled_dog < dogs
    page.get_by_label("Search photos by label, alias or path").fill("dog")
    page.keyboard.press("Enter")
    wait_for_cards(page, set(dogs))
    expect(page.locator("#status")).to_have_text(f"{len(dogs)} photos")
    shown = page.locator("#results .card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert set(shown[: len(labelled_dog)]) == labelled_dog
    assert "q=dog" in page.url
    thumbnails_loaded(page, len(dogs))
    page.screenshot(path=str(shots / "gallery-dog.png"))

    # Clear the text, click a facet chip: a label filter.
    page.get_by_label("Search photos by label, alias or path").fill("")
    page.keyboard.press("Enter")
    wait_for_cards(page, {r.id for r in by_key[:24]})
    page.get_by_role("button", name="Filter by Car").click()
    cars = with_label(records, "car")
    wait_for_cards(page, set(cars))
    expect(page.get_by_role("button", name="Remove label filter Car")).to_be_visible()
    assert "label=Car" in page.url

    # Swap to Person, then raise the minimum confidence with the keyboard on the slider.
    page.get_by_role("button", name="Remove label filter Car").click()
    page.get_by_role("button", name="Filter by Person").click()
    people = with_label(records, "person")
    first_people = sorted(
        people.items(), key=lambda kv: (-kv[1], next(r.key for r in records if r.id == kv[0]))
    )
    wait_for_cards(page, {i for i, _ in first_people[:24]})
    slider = page.get_by_label("Min. confidence")
    slider.focus()
    for _ in range(5):  # 5 steps of 5: 55 → 80
        page.keyboard.press("ArrowRight")
    expect(page.locator("#min-confidence-value")).to_have_text("80%")
    strong = {i for i, c in people.items() if c >= 80}
    wait_for_cards(page, strong)
    assert "min_confidence=80" in page.url

    # Open the best Person photo: full image, a box per person (and object), all labels, EXIF.
    best_id = max(strong, key=lambda i: people[i])
    best = next(r for r in records if r.id == best_id)
    page.locator(f'#results .card[data-id="{best_id}"]').click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-title")).to_have_text(best.key)
    page.wait_for_function(
        "() => { const i = document.getElementById('detail-image');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    natural = page.evaluate("() => document.getElementById('detail-image').naturalWidth")
    assert natural == best.width  # the original, not a thumbnail
    person = next(lb for lb in best.Labels if lb.Name == "Person")
    # a box per object at or above the floor (80 now): the people and whatever else was found
    shown = [i for lb in best.Labels for i in lb.Instances if i.Confidence >= 80]
    assert len(shown) >= len([i for i in person.Instances if i.Confidence >= 80]) >= 1
    expect(dialog.locator(".box")).to_have_count(len(shown))
    expect(dialog.locator(".labels-table tbody tr")).to_have_count(len(best.Labels))
    # every stored label is listed; those under the search's floor (80 now) are dimmed
    weak = [lb for lb in best.Labels if lb.Confidence < 80]
    expect(dialog.locator(".labels-table tbody tr.below-floor")).to_have_count(len(weak))
    expect(dialog.locator(".labels-table")).to_contain_text("Human")  # alias shown
    expect(dialog.locator(".info")).to_contain_text("Software")  # EXIF
    expect(dialog.locator(".swatch")).to_have_count(1)  # dominant colour from ImageProperties
    frame = dialog.locator("#detail-frame").bounding_box()
    first_box = dialog.locator(".box").first.bounding_box()
    assert frame and first_box
    bbox = shown[0].BoundingBox
    assert first_box["width"] == pytest.approx(bbox.Width * frame["width"], abs=4)
    assert first_box["x"] - frame["x"] == pytest.approx(bbox.Left * frame["width"], abs=4)
    page.screenshot(path=str(shots / "gallery-detail.png"))

    # Boxes can be hidden; arrows step through results; Escape closes and returns focus.
    dialog.get_by_label("Show bounding boxes").uncheck()
    expect(dialog.locator(".box").first).to_be_hidden()
    dialog.get_by_label("Show bounding boxes").check()
    page.locator("#detail-close").focus()
    page.keyboard.press("ArrowRight")
    expect(dialog.locator("#detail-title")).not_to_have_text(best.key)
    page.keyboard.press("ArrowLeft")
    expect(dialog.locator("#detail-title")).to_have_text(best.key)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    focused = page.evaluate("() => document.activeElement.dataset.id")
    assert focused == best_id

    # Every card is a keyboard-reachable button with a descriptive name; images have alt text.
    alts = page.locator("#results .card img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert alts and all(alt.strip() for alt in alts)
    assert all(r.startswith(url) for r in requests), [r for r in requests if not r.startswith(url)]
    assert problems == []


def test_narrow_screen_and_api_errors_are_shown(browser_page, gallery, tmp_path: Path):
    page, _, problems = browser_page
    url, _ = gallery
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + "/?q=zebra-unicorn")
    expect(page.locator("#status")).to_have_text("No photos match.")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # The page layout fits a phone: nothing wider than the viewport.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.goto(url + "/?label=" + "x" * 300)
    expect(page.locator("#status")).to_contain_text("label: at most 200 characters")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots_dir(tmp_path) / "gallery-phone-error.png"))
    problems.clear()  # the failed search logs its 400 in the console, as browsers do
