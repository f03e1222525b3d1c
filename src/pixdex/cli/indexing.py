"""``pixdex index``, ``watch``, ``reindex`` and ``check``: filling an index and keeping it right."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pixdex.analyzers.base import usage_lines
from pixdex.cli import app
from pixdex.cli.common import (
    EXIT_PARTIAL,
    AnalyzerOpt,
    DetectorOpt,
    EndpointOpt,
    FacesOpt,
    IndexOpt,
    JsonOpt,
    ModelOpt,
    ObjectsOpt,
    TextOpt,
    err,
    list_failures,
    out,
    progress,
    settings,
)


@app.command()
def index(
    source: Annotated[str, typer.Argument(help="A folder, or s3://bucket/prefix/")],
    index: IndexOpt = None,
    prune: Annotated[
        bool, typer.Option(help="Remove records whose files/objects no longer exist.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Re-analyze even unchanged images.")] = False,
    model: ModelOpt = None,
    objects: ObjectsOpt = None,
    detector: DetectorOpt = None,
    text: TextOpt = None,
    faces: FacesOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per inference batch.")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel fetch/decode workers.")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads (0 = all).")] = None,
    endpoint_url: EndpointOpt = None,
    analyzer: AnalyzerOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Count what would be analyzed (and what Rekognition would cost); change nothing.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index every image under SOURCE: new and changed ones are analyzed, unchanged skipped."""
    from pixdex.pipeline import build_pipeline
    from pixdex.sources import open_source

    config = settings(
        index=index,
        model=model,
        objects=objects,
        detector=detector,
        text=text,
        faces=faces,
        batch_size=batch_size,
        workers=workers,
        threads=threads,
        analyzer=analyzer,
        s3={"endpoint_url": endpoint_url},
    )
    src = open_source(source, config)
    if dry_run:
        from pixdex.estimate import dry_run as estimate

        print(estimate(src, config, force=force))
        return
    pipeline = build_pipeline(config)
    with progress(quiet) as bar:
        summary = pipeline.run(src, prune=prune, force=force, progress=bar)
    table = Table(show_header=False, box=None)
    table.add_row("indexed (analyzed)", str(summary.indexed))
    unchanged = str(summary.unchanged)
    if summary.touched:
        unchanged += f" ({summary.touched} read again: touched, same content, not re-analyzed)"
    table.add_row("unchanged", unchanged)
    table.add_row("failed", str(summary.failed))
    if prune:
        table.add_row("pruned", str(summary.deleted))
    elif summary.gone:
        table.add_row(
            "gone from the source", f"{summary.gone} (still indexed; --prune removes them)"
        )
    if summary.not_indexed:
        table.add_row("not indexed (re-run to finish)", str(summary.not_indexed))
    table.add_row("index", pipeline.index.location)
    for name, usage in usage_lines(pipeline.remote_analyzers):
        table.add_row(name, usage)
    err.print(table)
    list_failures("failed", summary.failures, more="pixdex stats --failures")
    for write_error in summary.write_errors[:5]:
        err.print(f"[red]not indexed[/red] {write_error.key}: {write_error.reason}", soft_wrap=True)
    if any("disk is full" in e.reason for e in summary.write_errors):
        err.print(
            f"the disk holding {pipeline.index.location} is full: free space and re-run; "
            "everything indexed so far is intact",
            soft_wrap=True,
        )
    if not summary.ok:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="Folder to index and keep in step.")],
    index: IndexOpt = None,
    polling: Annotated[
        bool, typer.Option(help="Poll instead of inotify (network mounts).")
    ] = False,
    objects: ObjectsOpt = None,
    text: TextOpt = None,
    faces: FacesOpt = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Index FOLDER, then follow new, changed, moved and deleted files until Ctrl-C."""
    from pixdex.pipeline import build_pipeline
    from pixdex.sources.watch import watch_folder

    config = settings(index=index, objects=objects, text=text, faces=faces, analyzer=analyzer)
    stop = threading.Event()
    pipeline = build_pipeline(config)

    def report(summary: Any) -> None:
        usage = "".join(f"; {n}: {line}" for n, line in usage_lines(pipeline.remote_analyzers))
        err.print(
            f"indexed {summary.indexed}, removed {summary.deleted}, failed {summary.failed}"
            + usage
            + "".join(f"\n  failed {f.key}: {f.reason}" for f in summary.failures)
        )

    err.print(f"watching {folder} → {pipeline.index.location} (Ctrl-C to stop)")
    try:
        watch_folder(folder, pipeline, stop_event=stop, polling=polling, on_change=report)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def reindex(
    index: IndexOpt = None,
    reanalyze: Annotated[
        bool,
        typer.Option(
            "--reanalyze",
            help="Bring every record up to the current analyzers, reading its image from its "
            "folder or bucket. Only new or changed analyzers run when they write fields of their "
            "own (adding --text or --faces re-runs nothing else); otherwise all of them.",
        ),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Copy this index/alias on the same cluster instead."),
    ] = None,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the previous index.")] = False,
    model: ModelOpt = None,
    objects: ObjectsOpt = None,
    text: TextOpt = None,
    faces: FacesOpt = None,
    endpoint_url: EndpointOpt = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Elasticsearch/OpenSearch: build a new index (current mapping, optionally re-analyzed),
    then swap the alias atomically — searches keep working throughout. SQLite: --reanalyze
    updates the records in place."""
    from pixdex.indexes import open_index
    from pixdex.pipeline import Reanalyzer, build_pipeline

    config = settings(
        index=index,
        model=model,
        objects=objects,
        text=text,
        faces=faces,
        analyzer=analyzer,
        s3={"endpoint_url": endpoint_url},
    )
    target = open_index(config.index, config)
    try:
        transform = Reanalyzer(build_pipeline(config, target), config) if reanalyze else None
        result = target.reindex(transform, source=source, keep_old=keep_old)
    finally:
        target.close()
    if result.new is not None:
        old = f" (was {', '.join(result.old)})" if result.old else ""
        err.print(f"copied {result.written} record(s) into {result.new}; alias moved{old}")
    else:
        err.print(f"updated {result.written} record(s) in {target.location}")
    if transform is not None:
        partly = f" ({transform.partial} by the new or changed analyzers only)"
        err.print(
            f"re-analyzed {transform.reanalyzed}{partly if transform.partial else ''}; "
            f"kept {len(transform.kept)} old record(s)"
        )
        for name, usage in usage_lines(transform.pipeline.remote_analyzers):
            err.print(f"{name}: {usage}")
        list_failures("kept old", transform.kept, more="the log has every one")
        if transform.kept:
            raise typer.Exit(EXIT_PARTIAL)


@app.command()
def check(
    index: IndexOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Re-derive what disagrees from the stored records; records that cannot be "
            "mended are removed and analyzed again by the next pixdex index.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify the index: records, label terms, free-text rows and facets agree (and, on
    Elasticsearch/OpenSearch, the alias and the mapping). Exit 0 clean, 1 problems found."""
    from pixdex.indexes import open_index

    config = settings(index=index)
    idx = open_index(config.index, config, create=False)
    try:
        report = idx.check(repair=repair)
        after = idx.check() if repair and report.problems else report
    finally:
        idx.close()
    if as_json:
        payload = report.to_json()
        if repair:
            payload["remaining"] = after.problems
        print(json.dumps(payload, indent=2))
    else:
        for problem in report.problems:
            out.print(problem, highlight=False, soft_wrap=True)
        found = f"{len(report.problems)} problem(s)" if report.problems else "clean"
        err.print(f"checked {report.records} record(s) in {report.location}: {found}")
        if repair and report.problems:
            err.print(
                f"repaired {report.repaired} record(s) from their stored documents; "
                f"{report.reanalyze} removed for re-analysis (pixdex index analyzes them again); "
                + (f"{len(after.problems)} problem(s) remain" if after.problems else "now clean")
            )
        elif report.problems:
            err.print("pixdex check --repair mends them")
    if after.problems:
        raise typer.Exit(EXIT_PARTIAL)
