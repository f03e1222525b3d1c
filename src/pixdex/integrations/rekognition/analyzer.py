"""Amazon Rekognition as an analyzer: ``DetectLabels`` (and ``DetectText`` when asked) per photo.

A ``RemoteAnalyzer`` (see ``analyzers.base``): it is handed one object at a time and decides how
Rekognition sees it —

- objects of an S3 source go by reference (``Image.S3Object`` with bucket, key and version), so
  nothing is downloaded: Rekognition reads them with the caller's credentials. Only when S3 and
  Rekognition are the same service (both AWS, or one test server that is both) — a MinIO bucket is
  invisible to AWS — and only for JPEG/PNG up to 15 MB; anything else, or an object Rekognition
  refuses as too large or unreadable, is read and sent as bytes instead;
- everything else goes as ``Image.Bytes``, converted only when outside Rekognition's limits
  (``image``), and the record says so (``rekognition.note``).

Records keep Rekognition's answer as it is: ``Labels`` (with its Instances, Parents, Aliases,
Categories), ``LabelModelVersion``, ``ImageProperties`` with the IMAGE_PROPERTIES feature, and
``TextDetections``/``TextModelVersion`` from DetectText. Cost and quota control (rate limit,
backoff on throttling, counters) lives in ``analyzers.calls``. Errors become one line per photo;
errors that concern the account rather than the photo (credentials, permissions, region) stop
further calls for a while so a misconfigured run does not send thousands of doomed requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pixdex.analyzers.base import Photo
from pixdex.errors import ConfigError, ImageError, SourceError
from pixdex.imaging import DEFAULT_MAX_PIXELS
from pixdex.integrations.aws import error_code, error_message
from pixdex.integrations.rekognition.calls import (
    CallStats,
    RateLimiter,
    RetryingCaller,
    retry_kind,
)
from pixdex.integrations.rekognition.image import MAX_S3_BYTES, S3_SUFFIXES, Prepared, prepare
from pixdex.records import Failure, Label
from pixdex.sources.base import Source, transient_keys

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)

FEATURES = ("GENERAL_LABELS", "IMAGE_PROPERTIES")
#: after an error about the account (credentials, permissions, region), calls pause this long
ACCOUNT_PAUSE_S = 30.0
#: Rekognition's answers when an S3Object is beyond its limits: read the object and send bytes
_REFUSED_S3 = frozenset({"ImageTooLargeException", "InvalidImageFormatException"})
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
    }
)
_EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken", "RequestExpired"})


class _AccountError(Exception):
    """An error that every following call would hit too."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason, self.transient = reason, transient


def _is_aws(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class RekognitionAnalyzer:
    """Labels (and text) from Amazon Rekognition, in the record's own (Rekognition's) shape."""

    name = "rekognition"

    def __init__(
        self,
        client: Any,
        *,
        region: str | None = None,
        min_confidence: float = 55.0,
        max_labels: int = 50,
        features: tuple[str, ...] | list[str] = ("GENERAL_LABELS",),
        include_labels: tuple[str, ...] | list[str] = (),
        exclude_labels: tuple[str, ...] | list[str] = (),
        include_categories: tuple[str, ...] | list[str] = (),
        exclude_categories: tuple[str, ...] | list[str] = (),
        text: bool = False,
        rate: float = 4.0,
        concurrency: int = 4,
        max_attempts: int = 8,
        s3object: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        unavailable: str | None = None,
    ) -> None:
        features = tuple(f.strip().upper() for f in features)
        bad = [f for f in features if f not in FEATURES]
        if bad or not features:
            raise ConfigError(
                f"invalid setting: rekognition.features {list(features)!r}: "
                f"choose one or both of {', '.join(FEATURES)}"
            )
        if s3object not in ("auto", "always", "never"):
            raise ConfigError(f"invalid setting: rekognition.s3object {s3object!r}")
        self.client = client
        self.region = region
        self.endpoint_url = client.meta.endpoint_url
        self.min_confidence = float(min_confidence)
        self.max_labels = int(max_labels)
        self.features = features
        self.filters = {
            "LabelInclusionFilters": list(include_labels),
            "LabelExclusionFilters": list(exclude_labels),
            "LabelCategoryInclusionFilters": list(include_categories),
            "LabelCategoryExclusionFilters": list(exclude_categories),
        }
        self.filters = {k: v for k, v in self.filters.items() if v}
        self.text = text
        self.concurrency = concurrency
        self.s3object = s3object
        self.max_pixels = max_pixels
        self.stats = CallStats()
        self._callers = {
            op: RetryingCaller(RateLimiter(rate), self.stats, max_attempts=max_attempts)
            for op in ("DetectLabels", "DetectText")
        }
        self.max_attempts = max_attempts
        self._unavailable = unavailable
        self._pause: tuple[float, _AccountError] | None = None
        self._lock = threading.Lock()
        self.version = self._version()

    def _version(self) -> str:
        """Changes with every setting that changes what is asked of Rekognition (so records are
        re-analyzed), never with Rekognition's own model updates (that would re-bill every photo
        silently; ``LabelModelVersion`` in each record says which model answered)."""
        parts = ["detectlabels", *(f.lower() for f in self.features)]
        parts += [f"min{self.min_confidence:g}", f"max{self.max_labels}"]
        if self.filters:
            digest = hashlib.sha256(json.dumps(self.filters, sort_keys=True).encode()).hexdigest()
            parts.append(f"filters.{digest[:10]}")
        if self.text:
            parts.append("detecttext")
        return "+".join(parts)

    @property
    def overrides(self) -> tuple[str, ...]:
        """Record fields this analyzer writes that a local analyzer may give too (the text
        analyzer, image properties). Remote answers are merged last, so its own are kept; and
        ``pipeline.Reanalyzer`` never re-runs such a local analyzer alone beside it."""
        fields = ("TextDetections", "TextModelVersion") if self.text else ()
        if "IMAGE_PROPERTIES" in self.features:
            fields += ("ImageProperties",)
        return fields

    @classmethod
    def from_settings(cls, settings: Settings) -> RekognitionAnalyzer:
        client, region, unavailable = make_rekognition_client(settings)
        return cls(
            client,
            region=region,
            min_confidence=settings.min_confidence,
            max_labels=settings.max_labels,
            features=settings.rekognition.features,
            include_labels=settings.rekognition.include_labels,
            exclude_labels=settings.rekognition.exclude_labels,
            include_categories=settings.rekognition.include_categories,
            exclude_categories=settings.rekognition.exclude_categories,
            text=settings.rekognition.text,
            rate=settings.rekognition.rate,
            concurrency=settings.rekognition.concurrency,
            max_attempts=settings.rekognition.max_attempts,
            s3object=settings.rekognition.s3object,
            max_pixels=settings.max_pixels,
            unavailable=unavailable,
        )

    # --- the RemoteAnalyzer contract ----------------------------------------------------------
    def reads_by_reference(self, source: Source) -> bool:
        from pixdex.integrations.s3.source import S3Source

        if self.s3object == "never" or not isinstance(source, S3Source):
            return False
        if self.s3object == "always":
            return True
        s3_url = source.client.meta.endpoint_url
        both_aws = _is_aws(s3_url) and _is_aws(self.endpoint_url)
        return both_aws or _origin(s3_url) == _origin(self.endpoint_url)

    def analyze_object(self, photo: Photo) -> dict[str, Any] | Failure:
        try:
            self._check_account()
            image, note, prepared = self._image(photo)
            try:
                labels = self._call("DetectLabels", self._labels_request(image))
            except Exception as exc:
                if "S3Object" not in image or error_code(exc) not in _REFUSED_S3:
                    raise
                # Over 10,000 px, or not really JPEG/PNG: read it, convert, send the bytes.
                why = _one_line(error_message(exc))
                image, note, prepared = self._bytes(photo, f"S3Object refused ({why})")
                labels = self._call("DetectLabels", self._labels_request(image))
            partial = self._partial(labels, image, note, prepared)
            if self.text:
                found = self._call("DetectText", {"Image": image})
                partial["TextDetections"] = found.get("TextDetections", [])
                if found.get("TextModelVersion"):
                    partial["TextModelVersion"] = found["TextModelVersion"]
            return partial
        except _AccountError as exc:
            return self._failed(photo, exc.reason, exc.transient)
        except ImageError as exc:
            return self._failed(photo, str(exc))
        except SourceError as exc:
            transient = photo.ref.key in transient_keys(photo.source)
            return self._failed(photo, str(exc), transient)
        except Exception as exc:  # noqa: BLE001 - one photo's failure never stops the run
            reason, transient = self._reason(exc, photo)
            return self._failed(photo, reason, transient)

    @property
    def usage(self) -> dict[str, int]:
        """Calls made, throttled answers, retries and failed photos so far (for summaries)."""
        return self.stats.as_dict()

    # --- requests -----------------------------------------------------------------------------
    def _image(self, photo: Photo) -> tuple[dict[str, Any], str | None, Prepared | None]:
        """The request's ``Image``: S3Object where Rekognition can read the object itself."""
        ref = photo.ref
        if self.reads_by_reference(photo.source):
            big = ref.size is not None and ref.size > MAX_S3_BYTES
            if big or not ref.key.lower().endswith(S3_SUFFIXES):
                why = f"{ref.size:,} bytes is over 15 MB" if big else "not a .jpg/.png key"
                return self._bytes(photo, f"read instead of S3Object: {why}")
            s3: dict[str, str] = {"Bucket": ref.bucket, "Name": ref.key}
            if ref.version_id:
                s3["Version"] = ref.version_id
            return {"S3Object": s3}, None, None
        return self._bytes(photo, None)

    def _bytes(
        self, photo: Photo, why: str | None
    ) -> tuple[dict[str, Any], str | None, Prepared | None]:
        data = photo.data if photo.data is not None else photo.source.fetch(photo.ref)
        prepared = prepare(data, max_pixels=self.max_pixels)
        notes = [n for n in (why, prepared.note) if n]
        return {"Bytes": prepared.data}, "; ".join(notes) or None, prepared

    def _labels_request(self, image: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"Image": image, "Features": list(self.features)}
        settings: dict[str, Any] = {}
        if "GENERAL_LABELS" in self.features:
            request["MinConfidence"] = self.min_confidence
            request["MaxLabels"] = self.max_labels
            if self.filters:
                settings["GeneralLabels"] = self.filters
        if settings:
            request["Settings"] = settings
        return request

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        method = (
            self.client.detect_labels if operation == "DetectLabels" else self.client.detect_text
        )
        return self._callers[operation](lambda: method(**request))

    def _partial(
        self,
        response: dict[str, Any],
        image: dict[str, Any],
        note: str | None,
        prepared: Prepared | None,
    ) -> dict[str, Any]:
        partial: dict[str, Any] = {
            "Labels": [Label.model_validate(lb) for lb in response.get("Labels", [])],
        }
        if response.get("LabelModelVersion"):
            partial["LabelModelVersion"] = response["LabelModelVersion"]
        if "IMAGE_PROPERTIES" in self.features and response.get("ImageProperties"):
            partial["ImageProperties"] = response["ImageProperties"]
        how: dict[str, Any] = {"image": "S3Object" if "S3Object" in image else "Bytes"}
        if note:
            how["note"] = note
        partial["rekognition"] = how
        if prepared is not None:  # the header was read anyway: the record gets the size
            partial.update(width=prepared.width, height=prepared.height, format=prepared.format)
        return partial

    # --- errors -------------------------------------------------------------------------------
    def _failed(self, photo: Photo, reason: str, transient: bool = False) -> Failure:
        self.stats.count(failed=1)
        return Failure.of(photo.ref, _one_line(reason), transient=transient)

    def _check_account(self) -> None:
        if self._unavailable:
            raise _AccountError(self._unavailable, False)
        with self._lock:
            pause = self._pause
        if pause is not None and time.monotonic() < pause[0]:
            raise pause[1]

    def _reason(self, exc: Exception, photo: Photo) -> tuple[str, bool]:
        """One line for a failed call, and whether it may pass by itself. Errors about the
        account pause further calls (``ACCOUNT_PAUSE_S``)."""
        code, message = error_code(exc), _one_line(error_message(exc))
        kind = retry_kind(exc)
        tries = f"after {self.max_attempts} attempt(s)"
        if kind == "throttled":
            return (
                f"Rekognition kept throttling {tries} ({code}): lower rekognition.rate or ask "
                "for a higher TPS quota; a rerun retries",
                True,
            )
        if kind == "server":
            return f"Rekognition unavailable {tries}: {code or 'HTTP 5xx'}: {message}", True
        if kind == "connection":
            account = _AccountError(
                f"cannot reach Rekognition at {self.endpoint_url} {tries}: {message}", True
            )
            self._pause_calls(account)
            return account.reason, True
        where = f"s3://{photo.ref.bucket}/{photo.ref.key}"
        account_error = self._account_error(code, message, type(exc).__name__)
        if account_error is not None:
            self._pause_calls(account_error)
            return account_error.reason, account_error.transient
        if code == "InvalidS3ObjectException":
            return (
                f"Rekognition cannot read {where}: {message} (the caller needs s3:GetObject on "
                f"it, and the bucket must be in Rekognition's region {self.region or '?'})",
                False,
            )
        if code == "InvalidImageFormatException":
            return f"Rekognition cannot read the image: {message}", False
        if code == "ImageTooLargeException":
            return f"image too large for Rekognition: {message}", False
        if code == "InvalidParameterException":
            return f"Rekognition refused the request: {message}", False
        if code:
            return f"Rekognition error {code}: {message}", False
        log.exception("unexpected error calling Rekognition for %s", where)
        return f"Rekognition call failed: {type(exc).__name__}: {message}", False

    def _account_error(self, code: str, message: str, name: str) -> _AccountError | None:
        if code in ("AccessDeniedException", "AccessDenied"):
            return _AccountError(
                "access denied by Rekognition: the credentials lack rekognition:DetectLabels"
                f"{'/DetectText' if self.text else ''} ({message})",
                False,
            )
        if code in _EXPIRED_CODES:
            return _AccountError(
                f"AWS credentials expired ({message}): renew them (aws sso login, a new session "
                "token) and rerun",
                True,
            )
        if code in _CREDENTIAL_CODES:
            return _AccountError(
                f"AWS credentials refused by Rekognition: {code}: {message}", False
            )
        if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
            return _AccountError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run where an IAM role is available",
                False,
            )
        return None

    def _pause_calls(self, error: _AccountError) -> None:
        with self._lock:
            self._pause = (time.monotonic() + ACCOUNT_PAUSE_S, error)


def make_rekognition_client(settings: Settings) -> tuple[Any, str | None, str | None]:
    """A boto3 Rekognition client (botocore's retries off: ``analyzers.calls`` retries), its
    region, and why Rekognition cannot be used there (a region without Rekognition), if so."""
    import boto3
    from botocore.exceptions import NoRegionError

    from pixdex.integrations.aws import make_client

    endpoint = settings.rekognition.endpoint_url
    session = boto3.session.Session()
    # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what Lambda and the other SDKs set.
    region = (
        settings.rekognition.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or session.region_name
    )
    try:
        client = make_client(
            endpoint_url=endpoint,
            region=region,
            max_attempts=1,
            max_pool_connections=max(10, settings.rekognition.concurrency * 2),
            service="rekognition",
        )
    except NoRegionError:
        raise ConfigError(
            "no AWS region for Rekognition: set rekognition.region (PIXDEX_REKOGNITION__REGION), "
            "AWS_REGION, or a region in your AWS profile"
        ) from None
    region = client.meta.region_name
    unavailable = None
    offered = session.get_available_regions("rekognition")
    if endpoint is None and offered and region not in offered:
        unavailable = (
            f"Rekognition is not offered in region {region}: set rekognition.region to one "
            f"of {', '.join(sorted(offered))}"
        )
    return client, region, unavailable
