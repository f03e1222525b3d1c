"""Settings from flags, environment (``PIXDEX_*``) and a TOML config file, in that precedence.

The config file is ``$PIXDEX_CONFIG`` or ``<user config dir>/pixdex/config.toml``. The core's
settings sit at its top level; each integration owns a section::

    index = "~/photos.db"
    text = true

    [s3]
    endpoint_url = "http://127.0.0.1:9000"

    [rekognition]
    rate = 4

In the environment a section's setting is ``PIXDEX_<SECTION>__<NAME>``, two underscores
(``PIXDEX_REKOGNITION__RATE=4``). Every setting has a description here; ``pixdex config``
prints them all with their values and where each came from, and docs/configuration.md lists
them (a test keeps the two in step).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from platformdirs import user_cache_dir, user_config_dir, user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pixdex.errors import ConfigError

APP = "pixdex"
#: Tokens shorter than this are guessable; pixdex refuses them rather than trusting them.
MIN_TOKEN_CHARS = 16


def check_http_url(url: str) -> None:
    """ValueError with the reason unless ``url`` is http(s)://host[:port][/path]."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"not a usable URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s)://host[:port] URL: {url!r}")
    if port == 0:
        raise ValueError(f"port 0 in {url!r}")


def default_config_file() -> Path:
    return Path(os.environ.get("PIXDEX_CONFIG") or Path(user_config_dir(APP)) / "config.toml")


def default_index() -> str:
    return str(Path(user_data_dir(APP)) / "index.db")


def default_cache_dir() -> Path:
    return Path(user_cache_dir(APP))


#: A list setting: a TOML list, or comma-separated in a flag or ``PIXDEX_*`` variable.
Names = Annotated[list[str], NoDecode]


def _names(value: Any) -> Any:
    """Env vars and flags give ``a,b``; TOML gives a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    check_http_url(value)
    return value.strip()


def _s3_prefixes(value: list[str]) -> list[str]:
    for item in value:
        bucket = item.removeprefix("s3://").partition("/")[0]
        if not item.startswith("s3://") or not bucket:
            raise ValueError(f"{item!r} is not s3://bucket or s3://bucket/prefix")
    return value


def _token(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) < MIN_TOKEN_CHARS or value.strip() != value:
        raise ValueError(
            f"a token needs at least {MIN_TOKEN_CHARS} characters and no surrounding spaces"
            " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return value


class Section(BaseModel):
    """A section of the settings, owned by one part of pixdex; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class ServeSettings(Section):
    """``[serve]``: the HTTP API and gallery of ``pixdex serve`` (docs/security.md)."""

    api_token: str | None = Field(
        default=None,
        description="token every API request must carry (Authorization: Bearer, or ?token= "
        "once in a browser); required to serve beyond loopback",
    )
    allowed_hosts: Names = Field(
        default_factory=list,
        description="Host names the server answers to besides loopback names and IP literals "
        "(DNS rebinding guard)",
    )

    _names = field_validator("allowed_hosts", mode="before")(_names)
    _token = field_validator("api_token")(_token)


class S3Settings(Section):
    """``[s3]``: S3 and S3-compatible buckets and their events (``pixdex[s3]``, docs/s3.md)."""

    endpoint_url: str | None = Field(
        default=None, description="an S3-compatible endpoint (MinIO, Ceph, R2…); none: AWS S3"
    )
    region: str | None = Field(
        default=None, description="AWS region of the buckets and SQS queues; none: the AWS chain"
    )
    max_object_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1,
        description="larger objects are recorded as failures, unread",
    )
    webhook_token: str | None = Field(
        default=None, description="bearer token MinIO must send to /webhooks/minio"
    )
    webhook_sources: Names = Field(
        default_factory=list,
        description="s3://bucket/prefix the MinIO webhook may index; events for others are "
        "refused (none: the webhook is off)",
    )

    _names = field_validator("webhook_sources", mode="before")(_names)
    _prefixes = field_validator("webhook_sources")(_s3_prefixes)
    _url = field_validator("endpoint_url")(_url)
    _token = field_validator("webhook_token")(_token)


class ElasticSettings(Section):
    """``[elastic]``: Elasticsearch and OpenSearch indexes (``pixdex[elastic]``,
    docs/elasticsearch.md). The index URL carries only what a URL should: scheme, user and
    password, host, port and the index name."""

    username: str | None = Field(default=None, description="user for HTTP basic auth")
    password: str | None = Field(default=None, description="password for HTTP basic auth")
    api_key: str | None = Field(default=None, description="an API key instead of basic auth")
    ca_certs: str | None = Field(default=None, description="CA bundle for https servers")
    verify_certs: bool = Field(default=True, description="verify the server's TLS certificate")
    aws_region: str | None = Field(
        default=None,
        description="sign requests with SigV4 for Amazon OpenSearch Service in this region "
        "(needs pixdex[s3] too, for the AWS credentials)",
    )
    aws_service: Literal["es", "aoss"] = Field(
        default="es", description="SigV4 service: es (managed domains) or aoss (serverless)"
    )
    refresh: Literal["false", "true", "wait_for"] = Field(
        default="false",
        description="refresh after each write: wait_for makes writes searchable before they "
        "return (slower)",
    )
    shards: int = Field(default=1, ge=1, le=1024, description="primary shards of a new index")
    replicas: int | None = Field(
        default=None, ge=0, le=64, description="replicas of a new index; none: 0-1 automatic"
    )
    batch_docs: int = Field(default=500, ge=1, le=100_000, description="documents per bulk request")
    batch_mb: float = Field(default=5.0, gt=0, le=1024, description="megabytes per bulk request")
    retries: int = Field(
        default=5, ge=0, le=50, description="retries of a refused or unanswered request"
    )
    backoff: float = Field(
        default=0.5, ge=0, le=60, description="seconds before the first retry; doubles each time"
    )
    timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds per request")


Feature = Literal["GENERAL_LABELS", "IMAGE_PROPERTIES"]


class RekognitionSettings(Section):
    """``[rekognition]``: Amazon Rekognition as the analyzer (``pixdex[rekognition]``,
    docs/rekognition.md). ``min_confidence`` and ``max_labels`` apply to it too."""

    region: str | None = Field(default=None, description="AWS region; none: the AWS chain")
    endpoint_url: str | None = Field(
        default=None, description="a Rekognition-compatible endpoint (pixdex serve, moto)"
    )
    features: Names = Field(
        default=["GENERAL_LABELS"], description="GENERAL_LABELS and/or IMAGE_PROPERTIES"
    )
    include_labels: Names = Field(default_factory=list, description="only these labels")
    exclude_labels: Names = Field(default_factory=list, description="never these labels")
    include_categories: Names = Field(default_factory=list, description="only these categories")
    exclude_categories: Names = Field(default_factory=list, description="never these categories")
    text: bool = Field(default=False, description="also call DetectText (billed separately)")
    rate: float = Field(default=4.0, gt=0, description="calls per second at most, per operation")
    concurrency: int = Field(default=4, ge=1, le=64, description="calls in flight at once")
    max_attempts: int = Field(
        default=8, ge=1, le=20, description="attempts per call when throttled"
    )
    s3object: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="send S3 objects by reference (no download): auto when Rekognition can "
        "read the bucket",
    )
    price: float = Field(
        default=0.001, ge=0, description="USD per image per call, for pixdex index --dry-run"
    )
    s3_sources: Names = Field(
        default_factory=list,
        description="s3://bucket/prefix that DetectLabels requests to pixdex serve may name as "
        "S3Object; none: S3Object input is off",
    )

    _names = field_validator(
        "features",
        "include_labels",
        "exclude_labels",
        "include_categories",
        "exclude_categories",
        "s3_sources",
        mode="before",
    )(_names)
    _prefixes = field_validator("s3_sources")(_s3_prefixes)
    _url = field_validator("endpoint_url")(_url)


class Settings(BaseSettings):
    """The core's settings, and a section per integration."""

    model_config = SettingsConfigDict(
        env_prefix="PIXDEX_", env_nested_delimiter="__", extra="forbid"
    )

    index: str = Field(
        default_factory=default_index,
        description="SQLite file path (or sqlite:///path), es+http(s)://host:port/name, "
        "opensearch+http(s)://host:port/name",
    )
    model: str = Field(
        default="efficientnet-lite0",
        description="the classifier: efficientnet-lite0, or efficientnet-lite2 (pixdex[lite2])",
    )
    quantized: bool = Field(default=False, description="the int8 classifier (faster, coarser)")
    objects: bool = Field(
        default=True, description="run the object detector (80 kinds of things, Person included)"
    )
    detector: Literal["ssdlite+nanodet", "ssdlite+nanodet-always", "ssdlite", "nanodet"] = Field(
        default="ssdlite+nanodet",
        description="object detectors: SSDLite, and NanoDet fused in where SSDLite is unsure "
        "(default); both on every photo (a little more accurate, slower); or one alone",
    )
    text: bool = Field(
        default=False,
        description="read text in photos (OCR); off by default: it costs more than labels and "
        "objects together (docs/text.md)",
    )
    faces: bool = Field(
        default=False,
        description="find faces and group them into people; off by default: faces are personal "
        "data, and nothing about them is computed or stored unless turned on (docs/faces.md)",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir, description="built models and gallery thumbnails"
    )
    min_confidence: float = Field(
        default=55.0,
        ge=0,
        le=100,
        description="what DetectLabels emits and search shows by default (Rekognition's 55)",
    )
    store_min_confidence: float = Field(
        default=20.0,
        ge=0,
        le=100,
        description="labels down to this are stored, so a search with a lower floor finds them",
    )
    max_labels: int = Field(default=50, ge=1, le=1000, description="labels per photo at most")
    max_pixels: int = Field(
        default=100_000_000, ge=1, description="larger images are refused, undecoded"
    )
    batch_size: int = Field(default=8, ge=1, le=1024, description="images per analysis batch")
    workers: int = Field(
        default=2, ge=1, le=256, description="threads that fetch and decode images"
    )
    threads: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="ONNX Runtime intra-op threads per model; 0 = automatic (one per batch "
        "analyzed at once when analysis_workers > 1, else all cores)",
    )
    analysis_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="batches analyzed at once, each in its own thread (the other core stays "
        "busy while one batch is in Python code)",
    )
    analyzer: Names = Field(
        default=["local"],
        description="local (the default local set) and/or rekognition, or single local "
        "analyzers: labels, objects, properties, exif, text, faces",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="what long-running processes log (serve, worker, Lambda)"
    )
    serve: ServeSettings = Field(default_factory=ServeSettings, description=ServeSettings.__doc__)
    s3: S3Settings = Field(default_factory=S3Settings, description=S3Settings.__doc__)
    elastic: ElasticSettings = Field(
        default_factory=ElasticSettings, description=ElasticSettings.__doc__
    )
    rekognition: RekognitionSettings = Field(
        default_factory=RekognitionSettings, description=RekognitionSettings.__doc__
    )

    _names = field_validator("analyzer", mode="before")(_names)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _own_webhook_token(self) -> Settings:
        if self.serve.api_token and self.s3.webhook_token == self.serve.api_token:
            raise ValueError(
                "s3.webhook_token must differ from serve.api_token (each guards one door)"
            )
        return self

    @property
    def session_threads(self) -> int:
        """Intra-op threads for each ONNX Runtime session of a pipeline's analyzers (0: all
        cores). When the pipeline analyzes several batches at once (``analysis_workers`` > 1)
        those batches already keep the cores busy, and a second intra-op thread per session only
        adds hand-over work (docs/benchmarks.md, "Threads")."""
        if self.threads:
            return self.threads
        return 1 if self.analysis_workers > 1 else 0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_config_file())
        return (init_settings, env_settings, toml)


#: Settings whose values never appear in messages, logs or ``pixdex config``.
SECRET_SETTINGS = frozenset(
    {"serve.api_token", "s3.webhook_token", "elastic.password", "elastic.api_key"}
)
SECTIONS: dict[str, type[Section]] = {
    "serve": ServeSettings,
    "s3": S3Settings,
    "elastic": ElasticSettings,
    "rekognition": RekognitionSettings,
}


def env_name(dotted: str) -> str:
    """``s3.endpoint_url`` → ``PIXDEX_S3__ENDPOINT_URL``."""
    return "PIXDEX_" + dotted.upper().replace(".", "__")


def setting_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(dotted name, field) of every setting, core first, then each section's."""
    for name, info in Settings.model_fields.items():
        if name not in SECTIONS:
            yield name, info
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            yield f"{section}.{name}", info


def lookup(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def secrets(settings: Settings) -> list[str]:
    """The values of the secret settings that are set (for redaction)."""
    return [v for name in SECRET_SETTINGS if (v := lookup(settings, name))]


def _problem(error: Any) -> str:
    """One setting's problem, naming where it can come from; secrets' values never shown."""
    loc = tuple(str(part) for part in error.get("loc") or ())
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # a rule across settings
        return f"{message} ({default_config_file()} or env)"
    dotted = ".".join(loc[:2]) if loc[0] in SECTIONS else loc[0]
    value = "<hidden>" if dotted in SECRET_SETTINGS else repr(error.get("input"))
    if error.get("type") == "extra_forbidden":
        return f"{'.'.join(loc)}: no such setting (pixdex config lists them)"
    where = f"[{loc[0]}] in " if loc[0] in SECTIONS else ""
    return f"{'.'.join(loc)} = {value}: {message} ({env_name(dotted)} or {where}" + (
        f"{default_config_file()})"
    )


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides without the ``None`` ones (a flag not given), sections too."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _given(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI flags (``None`` means 'not given') taking precedence; a section's
    flags as a dict (``s3={"endpoint_url": …}``). Every entry point builds its settings here."""
    try:
        return Settings(**_given(overrides))
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ConfigError(f"invalid setting: {problems}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {default_config_file()} is not valid TOML: {exc}") from None
