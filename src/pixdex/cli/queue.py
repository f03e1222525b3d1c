"""``pixdex worker`` and ``pixdex enqueue``: S3 events through an SQS queue (the ``s3``
integration, ``pip install 'pixdex[s3]'``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated

import typer

from pixdex.cli import app
from pixdex.cli.common import (
    EXIT_PARTIAL,
    AnalyzerOpt,
    EndpointOpt,
    IndexOpt,
    err,
    list_failures,
    log_as_configured,
    progress,
    settings,
)
from pixdex.config import check_http_url
from pixdex.errors import ConfigError
from pixdex.integrations import load

SqsEndpointOpt = Annotated[str | None, typer.Option(help="SQS-compatible endpoint.")]


def _check_urls(**urls: str | None) -> None:
    for name, url in urls.items():
        if url is not None:
            try:
                check_http_url(url)
            except ValueError as exc:
                raise ConfigError(f"--{name.replace('_', '-')}: {exc}") from None


@app.command()
def enqueue(
    source: Annotated[str, typer.Argument(help="s3://bucket/prefix/ to back-fill")],
    sqs_queue_url: Annotated[str, typer.Option(help="SQS queue that pixdex workers read.")],
    endpoint_url: EndpointOpt = None,
    sqs_endpoint_url: SqsEndpointOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Back-fill a bucket through the queue: one message per object under SOURCE, for any number
    of `pixdex worker` processes to drain (already indexed objects are skipped unread)."""
    if not source.startswith("s3://"):
        raise ConfigError(f"enqueue takes an s3://bucket/prefix (workers read S3), not {source!r}")
    _check_urls(sqs_queue_url=sqs_queue_url, sqs_endpoint_url=sqs_endpoint_url)
    s3_source = load("s3", "pixdex enqueue", "source")
    queue = load("s3", "pixdex enqueue", "enqueue")
    worker = load("s3", "pixdex enqueue", "worker")
    config = settings(s3={"endpoint_url": endpoint_url})
    src = s3_source.S3Source.from_uri(source, config)
    sqs = worker.sqs_client(endpoint_url=sqs_endpoint_url, region=config.s3.region)
    with progress(quiet, "enqueueing") as bar:
        advance = bar(None) if bar else None
        sent = queue.enqueue(src.list(), sqs_queue_url, sqs, progress=advance)
    err.print(f"enqueued {sent.sent} of {sent.listed} object(s) under {src.uri}")
    list_failures(
        "not enqueued",
        [SimpleNamespace(key=k, reason=r) for k, r in sent.failed],
        more="enqueue again: objects already indexed are skipped",
    )
    if sent.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def worker(
    sqs_queue_url: Annotated[str, typer.Option(help="SQS queue receiving S3 notifications.")],
    index: IndexOpt = None,
    endpoint_url: EndpointOpt = None,
    sqs_endpoint_url: SqsEndpointOpt = None,
    batch: Annotated[int, typer.Option(min=1, max=10, help="Messages per receive.")] = 10,
    visibility_timeout: Annotated[
        int | None,
        typer.Option(min=0, max=43200, help="Override the queue's visibility timeout (s)."),
    ] = None,
    analyzer: AnalyzerOpt = None,
) -> None:
    """Long-poll S3 notifications from SQS and index/delete accordingly; run as many as needed."""
    _check_urls(sqs_queue_url=sqs_queue_url, sqs_endpoint_url=sqs_endpoint_url)
    run_worker = load("s3", "pixdex worker", "worker").run_worker
    config = settings(index=index, analyzer=analyzer, s3={"endpoint_url": endpoint_url})
    log_as_configured(config)
    stats = run_worker(
        config,
        sqs_queue_url,
        max_messages=batch,
        sqs_endpoint_url=sqs_endpoint_url,
        visibility_timeout=visibility_timeout,
        handle_signals=True,
    )
    err.print(str(stats))
