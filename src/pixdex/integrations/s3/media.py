"""Photos in S3 as the HTTP API serves them: presigned URLs, streams, capped reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from pixdex.api.errors import ApiError
from pixdex.api.media import S3Object
from pixdex.config import S3Settings
from pixdex.integrations.aws import error_code, make_client

PRESIGN_SECONDS = 900


class S3Media:
    """Photos in S3 for the API: presigned URLs (the browser fetches straight from the bucket),
    streams and capped reads, with the same endpoint and credential chain as indexing."""

    def __init__(self, s3: S3Settings) -> None:
        self._s3 = s3
        self._client: Any = None
        self._presigner: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                # Same endpoint, credentials chain, retries and addressing as indexing.
                self._client = make_client(
                    endpoint_url=self._s3.endpoint_url, region=self._s3.region, read_timeout=30
                )
            return self._client

    def presigner(self) -> Any:
        """A client that signs URLs with SigV4: boto3 still presigns S3 with the legacy SigV2
        by default, which AWS rejects in newer regions and for KMS-encrypted objects."""
        with self._lock:
            if self._presigner is None:
                import boto3
                from botocore.config import Config

                endpoint = self._s3.endpoint_url
                session = boto3.session.Session()
                region = self._s3.region or session.region_name
                if region is None and endpoint:
                    region = "us-east-1"  # S3-compatible servers ignore it; SigV4 needs one
                self._presigner = session.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name=region,
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"} if endpoint else None,
                    ),
                )
            return self._presigner

    @staticmethod
    def _params(obj: S3Object) -> dict[str, str]:
        params = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        return params

    def presigned_url(self, obj: S3Object, media: str | None) -> str:
        params: dict[str, str] = self._params(obj)
        if media:
            params["ResponseContentType"] = media
        try:
            return self.presigner().generate_presigned_url(
                "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
            )
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - no credentials, bad region: say which
            raise ApiError(503, f"cannot presign s3://{obj.bucket}/{obj.key}: {exc}") from exc

    def open(self, obj: S3Object) -> tuple[Iterator[bytes], int | None]:
        """A streaming body (chunks) and its length."""
        try:
            response = self.client().get_object(**self._params(obj))
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _s3_error(obj, exc) from exc
        return response["Body"].iter_chunks(1 << 16), response.get("ContentLength")

    def head(self, obj: S3Object) -> int | None:
        """The object's size from HeadObject (nothing downloaded); None when S3 gives none."""
        try:
            meta = self.client().head_object(**self._params(obj))
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _s3_error(obj, exc) from exc
        size = meta.get("ContentLength")
        return int(size) if size is not None else None

    def read(self, obj: S3Object, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with ``max_bytes``, ApiError(413) as soon as the stream passes
        it (the object may have grown since a HEAD, or S3 may not have said its size)."""
        chunks, _ = self.open(obj)
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ApiError(413, f"s3://{obj.bucket}/{obj.key} is over {max_bytes:,} bytes")
                parts.append(chunk)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection dropped mid-body
            raise _s3_error(obj, exc) from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return b"".join(parts)


def _s3_error(obj: S3Object, exc: Exception) -> ApiError:
    code = error_code(exc)
    where = f"s3://{obj.bucket}/{obj.key}"
    if code in ("NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket", "NotFound"):
        return ApiError(404, f"image object is gone: {where}")
    if code in ("AccessDenied", "403", "Forbidden"):
        return ApiError(403, f"access denied to {where}")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        # The server's set-up, not a passing fault: say what to configure (not a bare 500).
        return ApiError(403, f"cannot read {where}: this server has no S3 credentials configured")
    return ApiError(503, f"cannot read {where}: {type(exc).__name__}: {exc}")
