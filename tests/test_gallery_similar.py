"""More like this, search by photo (file picker and drag and drop) and the duplicates page, in
a real headless Chromium against ``pixdex serve``'s app over a folder indexed by the real
pipeline: coco128 photos and edited copies of two of them."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from PIL import Image
from test_gallery_browser import CHROMIUM, FLAGS, Page, expect, sync_playwright

from pixdex.api.app import create_app
from pixdex.api.server import BackgroundServer
from pixdex.config import load_settings
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.pipeline import build_pipeline
from pixdex.sources.local import LocalSource

ORIGINALS = ("000000000009.jpg", "000000000025.jpg")


@pytest.fixture(scope="module")
def similar_gallery(tmp_path_factory: pytest.TempPathFactory, coco_images: list[Path]):
    tmp = tmp_path_factory.mktemp("similar-gallery")
    folder = tmp / "photos"
    folder.mkdir()
    for path in coco_images[:16]:
        shutil.copy(path, folder / path.name)
    for name in ORIGINALS:
        photo = Image.open(folder / name).convert("RGB")
        photo.resize((photo.width // 2, photo.height // 2)).save(
            folder / f"copy-small-{name}", quality=40
        )
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"copy-mirror-{name}")
    settings = load_settings(index=str(tmp / "index.db"), cache_dir=tmp / "cache", objects=False)
    index = SqliteIndex(settings.index)
    summary = build_pipeline(settings, index).run(LocalSource(folder))
    assert summary.ok and summary.indexed == 20
    app = create_app(settings, index)
    with BackgroundServer(app) as server:
        yield server.url, folder
    index.close()


@pytest.fixture
def page(similar_gallery, tmp_path: Path):
    url, _ = similar_gallery
    problems: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.goto(url + "/")
        yield page
        context.close()
    assert problems == []


def names(page: Page, where: str = "#results") -> list[str]:
    return page.locator(f"{where} .card .name").all_inner_texts()


def settled(page: Page) -> None:
    page.wait_for_function("() => !document.body.hasAttribute('aria-busy')")


def test_more_like_this_from_a_photo(page: Page, tmp_path: Path) -> None:
    settled(page)
    page.locator(f'#results .card:has(.name:text-is("{ORIGINALS[0]}"))').click()
    page.get_by_role("button", name="More like this").click()
    expect(page.locator("#status")).to_contain_text(f"like {ORIGINALS[0]}")
    settled(page)
    shown = names(page)
    assert set(shown[:2]) == {f"copy-small-{ORIGINALS[0]}", f"copy-mirror-{ORIGINALS[0]}"}
    assert ORIGINALS[0] not in shown  # the photo itself is left out
    badges = page.locator("#results .score.similarity").all_inner_texts()
    assert badges and all(b.endswith("%") for b in badges)
    assert int(badges[0].rstrip("%")) >= 80
    assert "like=" in page.url
    page.screenshot(path=str(tmp_path / "more-like-this.png"))
    # a reload shows the same, and Back to search returns to browsing
    page.reload()
    settled(page)
    assert set(names(page)[:2]) == set(shown[:2])
    page.get_by_role("button", name="Back to search").click()
    settled(page)
    expect(page.locator("#status")).to_contain_text("20 photos")


def test_search_by_photo_with_the_picker_and_by_dropping_it(
    page: Page, similar_gallery, tmp_path: Path
) -> None:
    _, folder = similar_gallery
    settled(page)
    upload = tmp_path / "mine.jpg"
    Image.open(folder / ORIGINALS[1]).convert("RGB").crop((20, 20, 600, 400)).save(upload)
    page.set_input_files("#by-photo", str(upload))
    expect(page.locator("#status")).to_contain_text("like mine.jpg")
    settled(page)
    assert names(page)[0] in {ORIGINALS[1], f"copy-mirror-{ORIGINALS[1]}"}

    page.get_by_role("button", name="Back to search").click()
    settled(page)
    data = base64.b64encode((folder / ORIGINALS[0]).read_bytes()).decode()
    page.evaluate(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
            for (const type of ['dragenter', 'dragover', 'drop']) {
                document.body.dispatchEvent(
                    new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        data,
    )
    expect(page.locator("#status")).to_contain_text("like dropped.jpg")
    settled(page)
    assert names(page)[0] == ORIGINALS[0]  # the photo itself, indexed: Similarity 100
    expect(page.locator("#drop")).to_be_hidden()


def test_duplicates_page_shows_each_group_with_the_copy_to_keep_first(
    page: Page, tmp_path: Path
) -> None:
    settled(page)
    page.get_by_role("link", name="Duplicates").click()
    expect(page.locator("#status")).to_contain_text("group(s) of duplicates")
    settled(page)
    groups = page.locator("#groups .group")
    assert groups.count() == 2
    for i in range(2):
        members = groups.nth(i).locator(".card .name").all_inner_texts()
        assert len(members) == 3
        (original,) = (m for m in members if not m.startswith("copy-"))
        assert members[0] in {original, f"copy-mirror-{original}"}  # the full-size ones
        assert set(members) == {original, f"copy-small-{original}", f"copy-mirror-{original}"}
    expect(page.locator("#groups .group-head").first).to_contain_text("keep the first")
    assert page.locator("#groups .keep").count() == 2
    page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=True)
    # a photo of a group opens like any other
    page.locator("#groups .card").first.click()
    expect(page.locator("#detail")).to_be_visible()
