"""What the AWS-based integrations (``s3``, ``rekognition``) share: clients with pixdex's retry
and timeout policy, and the error codes and messages of botocore's errors."""

from __future__ import annotations

from typing import Any

DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 5  # standard mode backs off ~1, 2, 4, 8 s (jittered) between them


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    retry_mode: str = DEFAULT_RETRY_MODE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_pool_connections: int = 32,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    service: str = "s3",
) -> Any:
    """A boto3 client with pixdex's retry and timeout policy.

    Credentials come from the standard AWS chain (env vars, shared config/credentials files,
    SSO, container/instance roles). ``endpoint_url`` may also come from ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` (botocore reads those itself)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region = region or session.region_name
    if region is None and endpoint_url:
        region = "us-east-1"  # S3-compatible servers ignore it, but SigV4 needs one
    config = Config(
        # total_max_attempts counts the first try; botocore's "max_attempts" counts only retries.
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        # Self-hosted servers rarely have wildcard DNS for virtual-hosted buckets.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or "")


def error_message(exc: BaseException) -> str:
    """The AWS error message of a botocore ClientError (the exception itself for others)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message") or exc)


def describe(exc: BaseException) -> str:
    """``Code: message`` for an AWS error, ``Type: message`` for anything else."""
    code = error_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
