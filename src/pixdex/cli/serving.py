"""``pixdex serve``: the HTTP API, the gallery and the Rekognition-compatible endpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from pixdex import logs
from pixdex.cli import app
from pixdex.cli.common import EndpointOpt, IndexOpt, err, log_as_configured, settings
from pixdex.errors import Unavailable


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
    endpoint_url: EndpointOpt = None,
) -> None:
    """HTTP API, web gallery and the MinIO notification webhook (docs/security.md)."""
    from pixdex.api.guard import check_bind
    from pixdex.api.server import serve as run_server

    config = settings(
        index=index,
        serve={"api_token": api_token, "allowed_hosts": allowed_host or None},
        s3={
            "webhook_token": webhook_token,
            "webhook_sources": webhook_source or None,
            "endpoint_url": endpoint_url,
        },
    )
    check_bind(host, config.serve.api_token)
    log_as_configured(config)
    where = f"[{host}]" if ":" in host else host
    shown = logs.redactor()(config.index)  # no password from an es+http://user:pw@ URL
    err.print(f"pixdex serving {shown} on http://{where}:{port}/", highlight=False)
    try:
        run_server(config, host=host, port=port, log_level="warning")
    except OSError as exc:  # port in use, address not on this machine
        raise Unavailable(f"cannot listen on {where}:{port}: {exc.strerror or exc}") from None
