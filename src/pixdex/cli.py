"""The ``pixdex`` command: thin wiring of settings, sources, pipeline and indexes.

Exit codes: 0 success; 1 some images failed or were not indexed (details printed and, for
failures, kept in the index: ``pixdex stats --failures``); 2 usage error; 3 the index or source
cannot be used at all (server down, bad URL).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperOption

from pixdex import __version__, logs
from pixdex.config import ConfigError, Settings, check_http_url, load_settings
from pixdex.indexes.base import IndexUnavailable, SearchQuery
from pixdex.query import QueryError, check_query, parse_instant
from pixdex.sources.base import SourceError

_type_column = TyperOption.display_type_rich


def _flags_untyped(self: TyperOption, ctx: Any) -> str | None:
    """Typer's help prints ``<bool>`` after every on/off flag (--prune, --help); a flag takes no
    value, so its type column stays empty. Typer has no setting for it: this one override."""
    return None if self.is_flag else _type_column(self, ctx)


TyperOption.display_type_rich = _flags_untyped  # type: ignore[method-assign]

app = typer.Typer(
    help="Index photos from a folder or S3 bucket by what is in them, and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index", "-i", help="Index: SQLite path, es+http(s)://…, opensearch+http(s)://…"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
DetectorOpt = Annotated[
    str | None,
    typer.Option(
        help="Object detectors: ssdlite+nanodet (default: NanoDet where SSDLite is unsure)"
        " | ssdlite+nanodet-always (both on every photo) | ssdlite (fastest) | nanodet."
    ),
]
AnalyzerOpt = Annotated[
    str | None,
    typer.Option(
        "--analyzer",
        help="local (default), rekognition (Amazon Rekognition, billed per image), or a comma "
        "list such as rekognition,exif (docs/rekognition.md).",
    ),
]

TextOpt = Annotated[
    bool | None, typer.Option("--text/--no-text", help="Read text in photos (OCR; off by default).")
]

EXIT_PARTIAL = 1
EXIT_UNAVAILABLE = 3
_verbose = False


def _settings(**overrides: Any) -> Settings:
    """Settings for a command; a bad value (flag, env var, config file) is a usage error."""
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    logs.redactor().add(*logs.settings_secrets(settings))
    return settings


def _usage_error(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(2)


def _list_failures(tag: str, failures: list[Any], *, more: str, limit: int = 20) -> None:
    """One line per failed object (key: reason), the first ``limit`` of them."""
    for failure in failures[:limit]:
        err.print(f"[yellow]{tag}[/yellow] {failure.key}: {failure.reason}", soft_wrap=True)
    if len(failures) > limit:
        err.print(f"… and {len(failures) - limit} more: {more}")


@contextmanager
def _fatal_errors():
    """Errors that make the whole command impossible: one clear line, exit code 3."""
    try:
        yield
    except (IndexUnavailable, SourceError) as exc:
        err.print(f"[red]error:[/red] {logs.redactor()(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"pixdex {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    global _verbose
    _verbose = verbose
    logs.setup(verbose)


@app.command()
def index(
    source: Annotated[str, typer.Argument(help="A folder, or s3://bucket/prefix/")],
    index: IndexOpt = None,
    prune: Annotated[
        bool, typer.Option(help="Remove records whose files/objects no longer exist.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Re-analyze even unchanged images.")] = False,
    model: Annotated[
        str | None, typer.Option(help="efficientnet-lite0 | efficientnet-lite2")
    ] = None,
    objects: Annotated[
        bool | None, typer.Option(help="Detect objects: Person, Car, Dog… with boxes.")
    ] = None,
    detector: DetectorOpt = None,
    text: TextOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per inference batch.")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel fetch/decode workers.")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads (0 = all).")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    ] = None,
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

    settings = _settings(
        index=index,
        model=model,
        objects=objects,
        detector=detector,
        text=text,
        batch_size=batch_size,
        workers=workers,
        threads=threads,
        endpoint_url=endpoint_url,
        analyzer=analyzer,
    )
    with _fatal_errors(), _config_errors():
        src = open_source(source, settings)
        if dry_run:
            from pixdex.estimate import dry_run as estimate

            print(estimate(src, settings, force=force))
            return
        pipeline = build_pipeline(settings)
        with _progress(quiet) as progress:
            summary = pipeline.run(src, prune=prune, force=force, progress=progress)
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
        gone = f"{summary.gone} (still indexed; --prune removes them)"
        table.add_row("gone from the source", gone)
    if summary.not_indexed:
        table.add_row("not indexed (re-run to finish)", str(summary.not_indexed))
    table.add_row("index", pipeline.index.location)
    for name, usage in _remote_usage(pipeline):
        table.add_row(name, usage)
    err.print(table)
    _list_failures("failed", summary.failures, more="pixdex stats --failures")
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


@contextmanager
def _config_errors():
    """A setting only an analyzer can check (an unknown analyzer name, no AWS region): exit 2."""
    try:
        yield
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _remote_usage(pipeline: Any) -> list[tuple[str, str]]:
    """(analyzer, "calls N, throttled N, retried N, failed N") for each remote analyzer."""
    return [
        (a.name, ", ".join(f"{k} {v}" for k, v in a.usage.items()))
        for a in getattr(pipeline, "remote_analyzers", [])
        if hasattr(a, "usage")
    ]


@contextmanager
def _progress(quiet: bool, description: str = "reading new/changed"):
    if quiet:
        yield None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as bar:

        def start(total: int | None):
            # Every object counted here is read; most are analyzed, some only hashed (touched
            # files with the same content): the summary after the bar says which.
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield start


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
        err.print("[red]error:[/red] give a search text, --label, or a filter")
        raise typer.Exit(2)
    settings = _settings(index=index)
    try:
        query = SearchQuery(
            text=text,
            labels=tuple(label or ()),
            min_confidence=settings.min_confidence if min_confidence is None else min_confidence,
            bucket=bucket,
            prefix=prefix,
            since=parse_instant("--since", since),
            until=parse_instant("--until", until),
            limit=limit,
            offset=offset,
            facets=facets,
        )
        check_query(query)
    except QueryError as exc:
        raise _usage_error(str(exc)) from None
    with _fatal_errors():
        idx = open_index(settings.index, settings, create=False)
        result = idx.search(query)
    if as_json:
        payload = {
            "total": result.total,
            "min_confidence": query.min_confidence,
            "hits": [{"score": h.score, **h.record.to_json()} for h in result.hits],
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
        table.add_row(f"{hit.score:.1f}", _path_of(hit.record), labels)
    out.print(table)
    if result.facets:
        out.print("facets: " + ", ".join(f"{n} ({c})" for n, c in result.facets))


def _path_of(record: Any) -> str:
    if record.uri.startswith("file://"):
        return str(Path(record.bucket) / record.key)
    return record.uri or f"{record.bucket}/{record.key}"


@app.command("detect-labels")
def detect_labels(
    images: Annotated[list[Path], typer.Argument(help="Image file(s).")],
    max_labels: Annotated[int | None, typer.Option(help="At most this many labels.")] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="Default 55, as Rekognition.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="efficientnet-lite0 | efficientnet-lite2")
    ] = None,
    objects: Annotated[
        bool | None, typer.Option(help="Detect objects: Person, Car, Dog… with boxes.")
    ] = None,
    detector: DetectorOpt = None,
) -> None:
    """Print labels as `aws rekognition detect-labels` does; nothing is indexed.

    One image: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.analyzers.detect import LabelDetector
    from pixdex.imaging import ImageError

    settings = _settings(
        model=model,
        objects=objects,
        detector=detector,
        min_confidence=min_confidence,
        max_labels=max_labels,
    )
    detector = LabelDetector(settings)
    failed = 0
    for path, response in detector.detect_files(images):
        if isinstance(response, OSError | ImageError):
            failed += 1
            exc = response
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            err.print(f"[red]error:[/red] {path}: {reason}")
            continue
        if len(images) == 1:
            print(json.dumps(response, indent=4))
        else:
            print(json.dumps({"Image": str(path), **response}))
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("detect-text")
def detect_text(
    images: Annotated[list[Path], typer.Argument(help="Image file(s).")],
    min_confidence: Annotated[
        float | None, typer.Option(help="Drop words below this confidence (0-100).")
    ] = None,
) -> None:
    """Print text as `aws rekognition detect-text` does: LINEs, then WORDs; nothing is indexed.

    One image: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.analyzers.text import TextDetector, WordFilter
    from pixdex.imaging import ImageError

    settings = _settings()
    detector = TextDetector(settings)
    filters = WordFilter(min_confidence=min_confidence) if min_confidence is not None else None
    failed = 0
    for path in images:
        try:
            response = detector.detect_file(path, filters)
        except (OSError, ImageError) as exc:
            failed += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            err.print(f"[red]error:[/red] {path}: {reason}")
            continue
        if len(images) == 1:
            print(json.dumps(response, indent=4))
        else:
            print(json.dumps({"Image": str(path), **response}))
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def stats(
    failures: Annotated[bool, typer.Option("--failures", help="List images that failed.")] = False,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts, top labels, index location, model versions (and failures)."""
    from pixdex.indexes import open_index

    settings = _settings(index=index)
    with _fatal_errors():
        idx = open_index(settings.index, settings, create=False)
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

    settings = _settings(index=index)
    with _fatal_errors():
        idx = open_index(settings.index, settings, create=False)
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


@app.command()
def reindex(
    index: IndexOpt = None,
    reanalyze: Annotated[
        bool,
        typer.Option(
            "--reanalyze",
            help="Bring every record up to the current analyzers, reading its image from its "
            "folder or bucket. Only new or changed analyzers run when they write fields of their "
            "own (adding --text re-runs nothing else); otherwise all of them.",
        ),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Copy this index/alias on the same cluster instead."),
    ] = None,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the previous index.")] = False,
    model: Annotated[str | None, typer.Option(help="efficientnet-lite0 | -lite2")] = None,
    objects: Annotated[
        bool | None, typer.Option(help="Detect objects: Person, Car, Dog… with boxes.")
    ] = None,
    text: TextOpt = None,
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint.")] = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Elasticsearch/OpenSearch: build a new index (current mapping, optionally re-analyzed),
    then swap the alias atomically — searches keep working throughout. SQLite: --reanalyze
    updates the records in place."""
    from pixdex.indexes import SERVER_SCHEMES

    settings = _settings(
        index=index,
        model=model,
        objects=objects,
        text=text,
        endpoint_url=endpoint_url,
        analyzer=analyzer,
    )
    server = settings.index.startswith(SERVER_SCHEMES)
    if not server and (not reanalyze or source or keep_old):
        err.print(
            "[red]error:[/red] a SQLite index is not copied: use pixdex reindex --reanalyze to "
            "bring its records up to the current analyzers in place (--from and --keep-old need "
            "an es+… or opensearch+… index URL)"
        )
        raise typer.Exit(2)
    with _fatal_errors(), _config_errors():
        if server:
            from pixdex.indexes.elastic import ElasticIndex

            target: Any = ElasticIndex.from_url(settings.index, settings, upgrade=True)
        else:
            from pixdex.indexes import open_index

            target = open_index(settings.index, settings)
        transform = None
        if reanalyze:
            from pixdex.pipeline import Reanalyzer, build_pipeline

            transform = Reanalyzer(build_pipeline(settings, target), settings)
        try:
            if server:
                result = target.reindex(transform=transform, source=source, keep_old=keep_old)
            else:
                from pixdex.pipeline import reanalyze_in_place

                assert transform is not None
                updated = reanalyze_in_place(target, transform)
        finally:
            target.close()
    if server:
        old = f" (was {', '.join(result.old)})" if result.old else ""
        err.print(
            f"copied {result.copied} record(s) into {result.new}; alias {target.name} moved{old}"
        )
    else:
        err.print(f"updated {updated} record(s) in {settings.index}")
    if transform is not None:
        partly = f" ({transform.partial} by the new or changed analyzers only)"
        err.print(
            f"re-analyzed {transform.reanalyzed}{partly if transform.partial else ''}; "
            f"kept {len(transform.kept)} old record(s)"
        )
        for name, usage in _remote_usage(transform.pipeline):
            err.print(f"{name}: {usage}")
        _list_failures("kept old", transform.kept, more="the log has every one")
        if transform.kept:
            raise typer.Exit(EXIT_PARTIAL)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback needs --api-token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    index: IndexOpt = None,
    api_token: Annotated[
        str | None,
        typer.Option(help="Token every request must carry (Authorization: Bearer, ?token=)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="A Host name to answer to besides loopback/IPs."),
    ] = None,
    webhook_token: Annotated[
        str | None, typer.Option(help="Bearer token MinIO must send to /webhooks/minio.")
    ] = None,
    webhook_source: Annotated[
        list[str] | None,
        typer.Option("--webhook-source", help="s3://bucket/prefix the webhook may index."),
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint.")] = None,
) -> None:
    """HTTP API, web gallery and the MinIO notification webhook (docs/security.md)."""
    from pixdex.api.guard import BindError, check_bind
    from pixdex.api.server import serve as run_server

    settings = _settings(
        index=index,
        api_token=api_token,
        allowed_hosts=allowed_host or None,
        webhook_token=webhook_token,
        webhook_sources=webhook_source or None,
        endpoint_url=endpoint_url,
    )
    try:
        check_bind(host, settings.api_token)
    except BindError as exc:
        raise _usage_error(str(exc)) from None
    where = f"[{host}]" if ":" in host else host
    shown = logs.redactor()(settings.index)  # no password from an es+http://user:pw@ URL
    err.print(f"pixdex serving {shown} on http://{where}:{port}/", highlight=False)
    try:
        run_server(settings, host=host, port=port, log_level="warning")
    except OSError as exc:  # port in use, address not on this machine
        err.print(f"[red]error:[/red] cannot listen on {where}:{port}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="Folder to index and keep in step.")],
    index: IndexOpt = None,
    polling: Annotated[
        bool, typer.Option(help="Poll instead of inotify (network mounts).")
    ] = False,
    objects: Annotated[
        bool | None, typer.Option(help="Detect objects: Person, Car, Dog… with boxes.")
    ] = None,
    text: TextOpt = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Index FOLDER, then follow new, changed, moved and deleted files until Ctrl-C."""
    import threading

    from pixdex.pipeline import build_pipeline
    from pixdex.sources.watch import watch_folder

    settings = _settings(index=index, objects=objects, text=text, analyzer=analyzer)
    stop = threading.Event()
    with _fatal_errors(), _config_errors():
        pipeline = build_pipeline(settings)

        def report(summary: Any) -> None:
            usage = "".join(f"; {name}: {line}" for name, line in _remote_usage(pipeline))
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
def enqueue(
    source: Annotated[str, typer.Argument(help="s3://bucket/prefix/ to back-fill")],
    sqs_queue_url: Annotated[str, typer.Option(help="SQS queue that pixdex workers read.")],
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint.")] = None,
    sqs_endpoint_url: Annotated[str | None, typer.Option(help="SQS-compatible endpoint.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Back-fill a bucket through the queue: one message per object under SOURCE, for any number
    of `pixdex worker` processes to drain (already indexed objects are skipped unread)."""
    from pixdex.enqueue import enqueue as send_all
    from pixdex.sources.s3 import S3Source
    from pixdex.worker import sqs_client

    if not source.startswith("s3://"):
        raise _usage_error(f"enqueue takes an s3://bucket/prefix (workers read S3), not {source!r}")
    for name, url in (("--sqs-queue-url", sqs_queue_url), ("--sqs-endpoint-url", sqs_endpoint_url)):
        if url is not None:
            try:
                check_http_url(url)
            except ValueError as exc:
                raise _usage_error(f"{name}: {exc}") from None
    settings = _settings(endpoint_url=endpoint_url)
    with _fatal_errors():
        src = S3Source.from_uri(source, settings)
        sqs = sqs_client(endpoint_url=sqs_endpoint_url, region=settings.aws_region)
        with _progress(quiet, "enqueueing") as progress:
            advance = progress(None) if progress else None
            stats_ = send_all(src.list(), sqs_queue_url, sqs, progress=advance)
    err.print(f"enqueued {stats_.sent} of {stats_.listed} object(s) under {src.uri}")
    _list_failures(
        "not enqueued",
        [SimpleNamespace(key=k, reason=r) for k, r in stats_.failed],
        more="enqueue again: objects already indexed are skipped",
    )
    if stats_.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def worker(
    sqs_queue_url: Annotated[str, typer.Option(help="SQS queue receiving S3 notifications.")],
    index: IndexOpt = None,
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint.")] = None,
    sqs_endpoint_url: Annotated[str | None, typer.Option(help="SQS-compatible endpoint.")] = None,
    batch: Annotated[int, typer.Option(min=1, max=10, help="Messages per receive.")] = 10,
    visibility_timeout: Annotated[
        int | None,
        typer.Option(min=0, max=43200, help="Override the queue's visibility timeout (s)."),
    ] = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Long-poll S3 notifications from SQS and index/delete accordingly; run as many as needed."""
    from pixdex.worker import run_worker

    for name, url in (("--sqs-queue-url", sqs_queue_url), ("--sqs-endpoint-url", sqs_endpoint_url)):
        if url is not None:
            try:
                check_http_url(url)
            except ValueError as exc:
                raise _usage_error(f"{name}: {exc}") from None
    settings = _settings(index=index, endpoint_url=endpoint_url, analyzer=analyzer)
    with _fatal_errors(), _config_errors():
        stats_ = run_worker(
            settings,
            sqs_queue_url,
            max_messages=batch,
            sqs_endpoint_url=sqs_endpoint_url,
            visibility_timeout=visibility_timeout,
            handle_signals=True,
        )
    err.print(str(stats_))


def run(prog_name: str | None = None) -> None:
    """The ``pixdex`` command: anything unexpected is one line (and exit 1) unless --verbose."""
    try:
        app(prog_name=prog_name)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if _verbose:
            raise
        reason = logs.redactor()(f"{type(exc).__name__}: {exc}")
        err.print(f"[red]error:[/red] {reason} (--verbose shows the traceback)", highlight=False)
        sys.exit(EXIT_PARTIAL)


if __name__ == "__main__":  # pragma: no cover
    run()
