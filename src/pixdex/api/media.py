"""From an indexed record to its image bytes — only for records in the index, never a path a
client names.

Local folders: ``bucket`` is the indexed folder and ``key`` the path under it; the resolved path
must stay inside that folder (a ``..`` key or a symlink swapped in after indexing that points
elsewhere is refused), and must be a regular file. S3 objects: a short-lived presigned URL (the
browser fetches straight from the bucket) or the object's bytes via boto3, with the same endpoint
and credential chain as indexing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixdex.api.errors import ApiError
from pixdex.config import Settings
from pixdex.records import Record

#: Pillow format name → media type browsers understand; anything else is sent as a download.
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "ICO": "image/x-icon",
}

PRESIGN_SECONDS = 900


def media_type(record: Record) -> str | None:
    return MEDIA_TYPES.get((record.format or "").upper())


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path


@dataclass(frozen=True, slots=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None


def locate(record: Record) -> LocalFile | S3Object:
    """Where the record's bytes live; ``ApiError(404)`` when this server cannot reach them."""
    if record.uri.startswith("s3://"):
        return S3Object(record.bucket, record.key, record.version_id)
    if record.uri and not record.uri.startswith("file://"):
        raise ApiError(404, f"images at {record.uri.split(':', 1)[0]}:// cannot be served")
    root = Path(record.bucket)
    if not root.is_absolute():
        raise ApiError(404, f"folder {record.bucket!r} is not an absolute path on this server")
    try:
        real_root = root.resolve(strict=True)
        path = (root / record.key).resolve(strict=True)
    except (OSError, RuntimeError):
        raise ApiError(404, f"image file is gone: {record.key}") from None
    if not path.is_relative_to(real_root):
        raise ApiError(403, f"refusing to serve {record.key}: it resolves outside {record.bucket}")
    if not path.is_file():
        raise ApiError(404, f"not a regular file: {record.key}")
    return LocalFile(path)


class S3Access:
    """A lazily built boto3 S3 client (boto3 is only needed when S3 records are served)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._presigner: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from pixdex.sources.s3 import make_client

                    # Same endpoint, credentials chain, retries and addressing as indexing.
                    self._client = make_client(
                        endpoint_url=self._settings.endpoint_url,
                        region=self._settings.aws_region,
                        read_timeout=30,
                    )
                except ImportError as exc:
                    raise ApiError(503, "serving s3:// images needs boto3 installed") from exc
            return self._client

    def presigner(self) -> Any:
        """A client that signs URLs with SigV4: boto3 still presigns S3 with the legacy SigV2
        by default, which AWS rejects in newer regions and for KMS-encrypted objects."""
        with self._lock:
            if self._presigner is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError as exc:
                    raise ApiError(503, "serving s3:// images needs boto3 installed") from exc
                endpoint = self._settings.endpoint_url
                session = boto3.session.Session()
                region = self._settings.aws_region or session.region_name
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
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    where = f"s3://{obj.bucket}/{obj.key}"
    if code in ("NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket", "NotFound"):
        return ApiError(404, f"image object is gone: {where}")
    if code in ("AccessDenied", "403", "Forbidden"):
        return ApiError(403, f"access denied to {where}")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        # The server's set-up, not a passing fault: say what to configure (not a bare 500).
        return ApiError(403, f"cannot read {where}: this server has no S3 credentials configured")
    return ApiError(503, f"cannot read {where}: {type(exc).__name__}: {exc}")


def read_bytes(record: Record, s3: S3Access) -> bytes:
    where = locate(record)
    if isinstance(where, S3Object):
        return s3.read(where)
    try:
        return where.path.read_bytes()
    except OSError as exc:
        raise ApiError(404, f"cannot read {record.key}: {exc.strerror or exc}") from exc
