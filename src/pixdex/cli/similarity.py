"""``pixdex similar`` and ``pixdex duplicates``: photos like a photo, and copies of photos."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pixdex.cli import app
from pixdex.cli.common import IndexOpt, JsonOpt, err, out, path_of, settings
from pixdex.config import Settings
from pixdex.errors import InputError
from pixdex.indexes.base import Index, SearchQuery, SearchResult
from pixdex.records import Record, record_id

_RECORD_ID = re.compile(r"[0-9a-f]{40}")


def hit_json(record: Record, **extra: Any) -> dict[str, Any]:
    """A hit as search prints it (``Record.public_json``)."""
    return {**extra, **record.public_json()}


def find_record(index: Index, target: str) -> Record | None:
    """The indexed photo ``target`` names: a file's path (under any indexed folder), a record
    id, or a key (the first record with that key)."""
    path = Path(target).expanduser()
    if path.is_file():
        resolved = path.resolve()
        for folder in resolved.parents:
            found = index.get_by_id(record_id(str(folder), str(resolved.relative_to(folder))))
            if found is not None:
                return found
        return None
    if _RECORD_ID.fullmatch(target) and (found := index.get_by_id(target)) is not None:
        return found
    hits = index.search(SearchQuery(prefix=target, limit=50, facets=0)).hits
    return next((h.record for h in hits if h.record.key == target), None)


def _similar(index: Index, config: Settings, target: str, limit: int) -> SearchResult:
    from pixdex import similar

    record = find_record(index, target)
    if record is not None:
        return similar.similar_to_record(index, record, limit)
    path = Path(target).expanduser()
    if not path.is_file():
        raise InputError(f"{target}: neither an indexed photo (path, key or id) nor an image file")
    from pixdex.analyzers.labels import LabelAnalyzer
    from pixdex.imaging import decode

    analyzer = LabelAnalyzer.from_settings(config)
    return similar.similar_to_image(index, analyzer, decode(path.read_bytes()), limit)


@app.command()
def similar(
    targets: Annotated[
        list[str], typer.Argument(help="Indexed photos (path, key or id) or image files.")
    ],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Photos per target.")] = 20,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Photos like each TARGET ("more like this"), most similar first: Similarity 0-100.

    One target: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.indexes import open_index

    config = settings(index=index)
    idx = open_index(config.index, config, create=False)
    for target in targets:
        result = _similar(idx, config, target, limit)
        if as_json:
            payload: dict[str, Any] = {
                "total": result.total,
                "hits": [hit_json(h.record, Similarity=h.score) for h in result.hits],
            }
            if len(targets) > 1:
                print(json.dumps({"Image": target, **payload}))
            else:
                print(json.dumps(payload, indent=2))
            continue
        table = Table(title=f"like {target}", title_justify="left")
        table.add_column("similarity", justify="right")
        table.add_column("image", overflow="fold", min_width=16)
        table.add_column("labels")
        for hit in result.hits:
            labels = ", ".join(f"{lb.Name} {lb.Confidence:.0f}" for lb in hit.record.Labels[:4])
            table.add_row(f"{hit.score:.1f}", path_of(hit.record), labels)
        out.print(table)


@app.command()
def duplicates(
    min_similarity: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            help="Keep in a group only the photos at least this similar (0-100) to the one "
            "to keep; default: the copies the duplicate rule finds.",
        ),
    ] = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Groups of near-duplicates (resized, re-encoded, lightly cropped or re-exposed copies,
    bursts), the copy to keep first and why. Nothing is deleted or moved."""
    from pixdex import similar as similar_photos
    from pixdex.indexes import open_index

    config = settings(index=index)
    idx = open_index(config.index, config, create=False)
    groups = similar_photos.duplicates(idx, min_similarity=min_similarity)
    if as_json:
        print(json.dumps({"groups": [g.to_json() for g in groups]}, indent=2))
        return
    if not groups:
        err.print("no duplicates found")
        return
    copies = sum(len(g.photos) - 1 for g in groups)
    err.print(f"{len(groups)} group(s), {copies} copy(ies) beside the one to keep")
    for number, group in enumerate(groups, 1):
        out.print(f"group {number}: keep the first ({group.reason})", highlight=False)
        for photo in group.photos:
            size = f"{photo['width']}x{photo['height']}, {photo['size'] or 0:,} bytes"
            out.print(
                f"  {photo['Similarity']:5.1f}  {photo['uri'] or photo['key']}  ({size})",
                highlight=False,
                soft_wrap=True,
            )
