"""Any S3-compatible bucket/prefix as a source (AWS S3, MinIO, Ceph RGW, R2, …) via boto3.

- Listing is ``ListObjectsV2`` paginated; the fingerprint is the ETag, the one change marker that
  listing, ``HeadObject`` and event notifications all carry (a version id is not in
  ``ListObjectsV2`` output, so mixing it in would make listing and events disagree and re-download
  every evented object on the next back-fill; the version id is kept on the record instead).
- Retries on throttling (503 SlowDown), 5xx and timeouts come from botocore's retry modes
  (``standard`` by default, ``adaptive`` adds client-side rate limiting), not hand-written loops;
  the only loop here re-issues a GET whose *body* broke mid-stream, which botocore cannot retry
  because the response had already arrived.
- One client serves every thread: boto3 clients are thread-safe, sessions are not, so the client
  is created once up front.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pixdex.config import S3Settings, load_settings
from pixdex.errors import SourceError
from pixdex.integrations.aws import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_MODE,
    error_code,
    error_message,
    make_client,
)
from pixdex.records import utc_timestamp
from pixdex.sources.base import IMAGE_SUFFIXES, ObjectRef, has_image_suffix

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)

#: Objects larger than this are not downloaded (recorded as failures): a photo is rarely above
#: 50 MB; a 2 GB video misnamed .jpg must not be pulled into memory. Same default as Settings.
DEFAULT_MAX_OBJECT_BYTES: int = S3Settings.model_fields["max_object_bytes"].default
#: Re-issues of a GET whose body broke mid-stream (botocore does not retry those).
BODY_READ_ATTEMPTS = 3

# Error codes that say "try again later" rather than "this object is bad".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
        "XMinioServerNotInitialized",
    }
)
GONE_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix). The prefix is a plain S3 key prefix, as in
    ListObjectsV2: ``photos`` also matches ``photos2/…``; write ``photos/`` to mean the folder."""
    if not uri.startswith("s3://"):
        raise SourceError(f"not an S3 URI (expected s3://bucket/prefix): {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise SourceError(f"no bucket in S3 URI {uri!r} (expected s3://bucket/prefix)")
    return bucket, prefix


def s3_uri(bucket: str, key: str) -> str:
    """The key verbatim, as the AWS console's "S3 URI" and ``aws s3`` write it."""
    return f"s3://{bucket}/{key}"


def clean_etag(etag: str | None) -> str | None:
    """ETag without the quotes S3 puts around it in listings/HEAD (events carry it bare)."""
    return etag.strip('"') if etag else None


class S3Source:
    """Images under ``s3://bucket/prefix``.

    ``transient`` collects keys whose fetch failed for a reason that may pass (throttling that
    outlasted the retries, timeouts, connection errors), so event consumers can ask for
    redelivery instead of treating the object as bad."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
        max_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
        retry_mode: str = DEFAULT_RETRY_MODE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        page_size: int = 1000,
    ) -> None:
        self.bucket = bucket
        self.page_size = page_size
        self.prefix = prefix
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.max_bytes = max_bytes
        self.client = client or make_client(
            endpoint_url=endpoint_url,
            region=region,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
        )
        self._lock = threading.Lock()
        self.transient: set[str] = set()

    @classmethod
    def from_uri(
        cls,
        uri: str,
        settings: Settings | None = None,
        *,
        endpoint_url: str | None = None,
        suffixes: tuple[str, ...] | None = None,
        max_bytes: int | None = None,
        client: Any | None = None,
        page_size: int = 1000,
    ) -> S3Source:
        """Source for ``s3://bucket/prefix``; explicit arguments win over settings."""
        bucket, prefix = parse_s3_uri(uri)
        s3 = (settings or load_settings()).s3
        return cls(
            bucket,
            prefix,
            client=client,
            endpoint_url=endpoint_url or s3.endpoint_url,
            region=s3.region,
            suffixes=suffixes or IMAGE_SUFFIXES,
            max_bytes=max_bytes or s3.max_object_bytes,
            page_size=page_size,
        )

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # --- listing ------------------------------------------------------------------------------
    def list(self) -> Iterator[ObjectRef]:
        """Every object under the prefix with an image suffix, in S3's (UTF-8 binary) key order.
        Pages are fetched lazily, so a back-fill of 100k objects starts after the first page."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=self.prefix,
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"]
                    if key.endswith("/") or not has_image_suffix(key, self.suffixes):
                        continue  # folder markers, sidecars (.json, .xmp), unrelated files
                    yield self.ref(
                        key,
                        size=obj.get("Size"),
                        etag=obj.get("ETag"),
                        last_modified=obj.get("LastModified"),
                    )
        except Exception as exc:
            raise self._listing_error(exc) from exc

    def ref(
        self,
        key: str,
        *,
        size: int | None = None,
        etag: str | None = None,
        version_id: str | None = None,
        last_modified: datetime | str | None = None,
    ) -> ObjectRef:
        """An ObjectRef for a key known from listing, HEAD or an event notification."""
        etag = clean_etag(etag)
        if isinstance(last_modified, datetime):
            last_modified = utc_timestamp(last_modified)
        return ObjectRef(
            bucket=self.bucket,
            key=key,
            uri=s3_uri(self.bucket, key),
            size=size,
            fingerprint=etag,
            etag=etag,
            version_id=version_id if version_id not in (None, "", "null") else None,
            last_modified=last_modified,
        )

    def head(self, key: str) -> ObjectRef | None:
        """The object's current ref, or None when it does not exist (raises SourceError for any
        other error, e.g. access denied or a server that stays unavailable)."""
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in GONE_CODES:
                return None
            raise self._object_error(key, exc) from exc
        return self.ref(
            key,
            size=meta.get("ContentLength"),
            etag=meta.get("ETag"),
            version_id=meta.get("VersionId"),
            last_modified=meta.get("LastModified"),
        )

    # --- fetching -----------------------------------------------------------------------------
    def fetch(self, ref: ObjectRef) -> bytes:
        """The object's current bytes (the latest version: an event may name an older one, and
        indexing what is there now is what converges). Thread-safe."""
        self._check_size(ref.key, ref.size)
        last: Exception | None = None
        for attempt in range(1, BODY_READ_ATTEMPTS + 1):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=ref.key)
            except Exception as exc:
                raise self._object_error(ref.key, exc) from exc
            body = response["Body"]
            try:
                self._check_size(ref.key, response.get("ContentLength"))
                data: bytes = body.read()
                with self._lock:
                    self.transient.discard(ref.key)
                return data
            except SourceError:
                raise
            except Exception as exc:  # body broke mid-stream: reconnect and read again
                last = exc
                log.warning(
                    "reading %s failed (attempt %d/%d): %s",
                    ref.uri,
                    attempt,
                    BODY_READ_ATTEMPTS,
                    exc,
                )
            finally:
                body.close()
        self._mark_transient(ref.key)
        raise SourceError(f"download kept failing: {type(last).__name__}: {last}")

    def _check_size(self, key: str, size: int | None) -> None:
        if size is not None and size > self.max_bytes:
            raise SourceError(
                f"object too large: {size:,} bytes (limit {self.max_bytes:,}; "
                "raise max_object_bytes to index it)"
            )

    def _mark_transient(self, key: str) -> None:
        with self._lock:
            self.transient.add(key)

    def _object_error(self, key: str, exc: Exception) -> SourceError:
        code = error_code(exc)
        if code in GONE_CODES:
            return SourceError("object is gone (deleted before it could be read)")
        if code in ("AccessDenied", "403", "Forbidden"):
            return SourceError("access denied (the credentials lack s3:GetObject on this key)")
        if code in ("InvalidObjectState",):
            return SourceError("object is archived (Glacier/Deep Archive): restore it first")
        if code in TRANSIENT_CODES or not code:
            # Throttling/5xx that outlasted botocore's retries, timeouts, connection errors.
            self._mark_transient(key)
            if code:
                return SourceError(f"S3 unavailable after retries: {error_message(exc)}")
            return SourceError(f"S3 request failed: {type(exc).__name__}: {exc}")
        return SourceError(f"S3 error {code}: {error_message(exc)}")

    def _listing_error(self, exc: Exception) -> SourceError:
        code = error_code(exc)
        where = f"s3://{self.bucket}/{self.prefix}"
        if code == "NoSuchBucket":
            return SourceError(f"no such bucket: {self.bucket}")
        if code in ("AccessDenied", "403"):
            return SourceError(f"access denied listing {where} (needs s3:ListBucket)")
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return SourceError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or run where an IAM role is available"
            )
        if code:
            return SourceError(f"cannot list {where}: {code}: {error_message(exc)}")
        return SourceError(f"cannot list {where}: {type(exc).__name__}: {exc}")


def open_source(location: str, settings: Settings | None = None) -> S3Source:
    """The ``s3://`` source of ``sources.open_source``."""
    return S3Source.from_uri(location, settings)
