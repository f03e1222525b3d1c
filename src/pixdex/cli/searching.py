"""``pixdex search`` and ``pixdex stats``: what is in the index."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pixdex.cli import app
from pixdex.cli.common import IndexOpt, JsonOpt, err, out, path_of, settings
from pixdex.errors import QueryError
from pixdex.indexes.base import SearchQuery
from pixdex.query import check_query, parse_instant


@app.command()
def search(
    text: Annotated[
        str | None, typer.Argument(help="Free text: label names, aliases, paths.")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Required label (matches parents/aliases too)."),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            help="Minimum label confidence (0-100). Default: the min_confidence setting (55, what"
            " DetectLabels emits); lower, down to store_min_confidence (20), finds weaker labels.",
        ),
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="Only this bucket (or folder).")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    since: Annotated[str | None, typer.Option(help="Indexed at or after (ISO date/time).")] = None,
    until: Annotated[str | None, typer.Option(help="Indexed at or before (ISO date/time).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    facets: Annotated[
        int, typer.Option(min=0, max=100, help="How many label facets to show.")
    ] = 10,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find images by what is in them; best matching label confidence first."""
    from pixdex.indexes import open_index

    if not text and not label and not (bucket or prefix or since or until):
        raise QueryError("give a search text, --label, or a filter")
    config = settings(index=index)
    query = SearchQuery(
        text=text,
        labels=tuple(label or ()),
        min_confidence=config.min_confidence if min_confidence is None else min_confidence,
        bucket=bucket,
        prefix=prefix,
        since=parse_instant("--since", since),
        until=parse_instant("--until", until),
        limit=limit,
        offset=offset,
        facets=facets,
    )
    check_query(query)
    idx = open_index(config.index, config, create=False)
    result = idx.search(query)
    if as_json:
        payload = {
            "total": result.total,
            "min_confidence": query.min_confidence,
            "hits": [{"score": h.score, **h.record.public_json()} for h in result.hits],
            "facets": [{"name": n, "count": c} for n, c in result.facets],
        }
        out.print_json(data=payload) if out.is_terminal else print(json.dumps(payload))
        return
    floor = query.min_confidence
    if not result.hits:
        hint = f" with confidence ≥ {floor:g}" if floor > 0 else ""
        more = " (--min-confidence 0 searches every stored label)" if floor > 0 else ""
        err.print(f"no matches{hint} ({result.total} total){more}")
        return
    title = f"{result.total} match(es)" + (f", confidence ≥ {floor:g}" if floor > 0 else "")
    table = Table(title=title, title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("image", overflow="fold", min_width=16)  # paths are what users act on
    table.add_column("labels")
    for hit in result.hits:
        shown = [lb for lb in hit.record.Labels if lb.Confidence >= floor][:5]
        labels = ", ".join(f"{lb.Name} {lb.Confidence:.0f}" for lb in shown)
        table.add_row(f"{hit.score:.1f}", path_of(hit.record), labels)
    out.print(table)
    if result.facets:
        out.print("facets: " + ", ".join(f"{n} ({c})" for n, c in result.facets))


@app.command()
def stats(
    failures: Annotated[bool, typer.Option("--failures", help="List images that failed.")] = False,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts, top labels, index location, model versions (and failures)."""
    from pixdex.indexes import open_index

    config = settings(index=index)
    idx = open_index(config.index, config, create=False)
    st = idx.stats()
    failed = idx.failures() if failures else []
    if as_json:
        payload: dict[str, Any] = st.to_json()
        if failures:
            payload["failed"] = [f.to_json() for f in failed]
        print(json.dumps(payload, indent=2))
        return
    table = Table(show_header=False, box=None)
    table.add_row("index", st.location)
    table.add_row("images", str(st.records))
    table.add_row("failed", str(st.failures))
    table.add_row("distinct labels", str(st.labels))
    table.add_row("model versions", ", ".join(f"{v or '-'} ({c})" for v, c in st.model_versions))
    table.add_row("top labels", ", ".join(f"{n} ({c})" for n, c in st.top_labels[:15]))
    out.print(table)
    if failures:
        for f in failed:
            out.print(f"{f.bucket}/{f.key}: {f.reason}", highlight=False, soft_wrap=True)
