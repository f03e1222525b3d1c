"""The ``pixdex`` command: thin wiring of settings, sources, pipeline and indexes.

One module per job: ``indexing`` (index, watch, reindex, check), ``searching`` (search, stats),
``similarity`` (similar, duplicates),
``detecting`` (detect-labels, detect-text), ``serving`` (serve), ``queue`` (worker, enqueue: the
``s3`` integration), ``configuring`` (config).

Exit codes: 0 success; 1 some images failed or were not indexed (details printed and, for
failures, kept in the index: ``pixdex stats --failures``); 2 a usage or setting error (an extra
that is not installed too); 3 the index or source cannot be used at all (server down, bad URL).
Every ``PixdexError`` becomes one line and its code here (``PixdexGroup``); anything unexpected
one line and exit 1, its traceback only with ``--verbose``.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from pixdex import __version__, logs
from pixdex.cli.common import EXIT_PARTIAL, err, out
from pixdex.errors import PixdexError, exit_code

_verbose = False


class PixdexGroup(TyperGroup):
    """Typer's group, turning every ``PixdexError`` a command raises into one line on stderr
    and its exit code (``pixdex.errors.EXIT_CODES``) — the one place that does."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PixdexError as exc:
            if _verbose:  # the traceback too, and the same exit code
                traceback.print_exc()
            message = escape(logs.redactor()(str(exc)))  # "pixdex[s3]" is no markup
            err.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    cls=PixdexGroup,
    help="Index photos from a folder or S3 bucket by what is in them, and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: on/off flags without a type column
)


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


def verbose() -> bool:
    """Whether ``--verbose`` was given."""
    return _verbose


def run(prog_name: str | None = None) -> None:
    """The ``pixdex`` command: anything unexpected is one line (and exit 1) unless --verbose."""
    try:
        app(prog_name=prog_name)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if _verbose:
            raise
        reason = escape(logs.redactor()(f"{type(exc).__name__}: {exc}"))
        err.print(f"[red]error:[/red] {reason} (--verbose shows the traceback)", highlight=False)
        sys.exit(EXIT_PARTIAL)


# the commands register themselves on ``app``
from pixdex.cli import (  # noqa: E402, F401
    configuring,
    detecting,
    indexing,
    queue,
    searching,
    serving,
    similarity,
)

__all__ = ["app", "run"]
