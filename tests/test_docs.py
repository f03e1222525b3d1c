"""The docs keep up with the code (datasette's tests/test_docs.py is the model): every setting
is documented and every documented setting exists, every command is in the README, links
resolve, and the README stays a short guide without a diary's dates and hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pixdex import __version__
from pixdex.cli import app
from pixdex.config import setting_fields

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONFIGURATION = REPO / "docs" / "configuration.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
SETTINGS = [name for name, _ in setting_fields()]


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in CONFIGURATION.read_text(), f"{name} is not in docs/configuration.md"


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_has_a_description(name: str) -> None:
    described = dict(setting_fields())[name].description
    assert described and len(described) > 10, f"{name} has no description (pixdex config)"


def test_every_documented_setting_exists() -> None:
    """The first column of configuration.md's settings tables names real settings only."""
    rows = [line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z0-9_.]+)`", row.split("|")[1])}
    assert named and named <= set(SETTINGS), named - set(SETTINGS)


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        assert f"pixdex {name}" in text, name


def test_the_readme_is_a_short_guide() -> None:
    text = README.read_text()
    assert len(text.encode()) <= 13_000
    assert "scripts/quickstart" in text and "scripts/test" in text
    assert not re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", text)
    assert not re.search(r"\d\d:\d\d( UTC|Z)|\b20\d\d-\d\d-\d\d\b", text)
    assert not re.search(r"\bissue \d+", text, re.I)


def test_the_changelog_has_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in text


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"
