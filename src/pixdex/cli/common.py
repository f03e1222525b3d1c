"""What every ``pixdex`` command shares: the consoles, the options that recur, settings, progress
bars, and how failures are listed. Errors are not handled here: commands raise ``PixdexError``
and ``pixdex.cli.app`` turns each into one line and its exit code (``pixdex.errors``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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

from pixdex import logs
from pixdex.config import Settings, load_settings

out = Console()
err = Console(stderr=True)

#: exit code when some objects failed or were not indexed (the rest of the work was done)
EXIT_PARTIAL = 1

IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index", "-i", help="Index: SQLite path, es+http(s)://…, opensearch+http(s)://…"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
ModelOpt = Annotated[str | None, typer.Option(help="efficientnet-lite0 | efficientnet-lite2")]
ObjectsOpt = Annotated[
    bool | None, typer.Option(help="Detect objects: Person, Car, Dog… with boxes.")
]
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
FacesOpt = Annotated[
    bool | None,
    typer.Option(
        "--faces/--no-faces", help="Find faces and group them into people (off by default)."
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 (setting s3.endpoint_url)."
    ),
]


def settings(**overrides: Any) -> Settings:
    """Settings for a command (flags win over environment and config file); its secrets are
    hidden from every log line from now on."""
    loaded = load_settings(**overrides)
    logs.redactor().add(*logs.settings_secrets(loaded))
    return loaded


def log_as_configured(config: Settings) -> None:
    """A long-running command (serve, worker) logs pixdex's lines down to ``log_level``
    (``--verbose``: everything, as for every command)."""
    import logging

    from pixdex import cli

    if not cli.verbose():
        logging.getLogger("pixdex").setLevel(config.log_level)


def list_failures(tag: str, failures: list[Any], *, more: str, limit: int = 20) -> None:
    """One line per failed object (key: reason), the first ``limit`` of them."""
    for failure in failures[:limit]:
        err.print(f"[yellow]{tag}[/yellow] {failure.key}: {failure.reason}", soft_wrap=True)
    if len(failures) > limit:
        err.print(f"… and {len(failures) - limit} more: {more}")


def print_one_or_many(images: list[Path], path: Path, response: dict[str, Any]) -> None:
    """AWS CLI output for one image; one JSON object per line with ``"Image"`` for several."""
    import json

    if len(images) == 1:
        print(json.dumps(response, indent=4))
    else:
        print(json.dumps({"Image": str(path), **response}))


def path_of(record: Any) -> str:
    """Where a record's photo is, as a user would type it."""
    if record.uri.startswith("file://"):
        return str(Path(record.bucket) / record.key)
    return record.uri or f"{record.bucket}/{record.key}"


Advance = Callable[[int], None]


@contextmanager
def progress(
    quiet: bool, description: str = "reading new/changed"
) -> Iterator[Callable[[int | None], Advance] | None]:
    """A progress bar on stderr: yields ``start(total) -> advance(n)``, or None when quiet."""
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

        def start(total: int | None) -> Advance:
            # Every object counted here is read; most are analyzed, some only hashed (touched
            # files with the same content): the summary after the bar says which.
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield start
