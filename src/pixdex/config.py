"""Settings from flags, environment (``PIXDEX_*``) and a TOML config file, in that precedence.

The config file is ``$PIXDEX_CONFIG`` or ``<user config dir>/pixdex/config.toml``; every key is a
field name below (e.g. ``index = "es+http://127.0.0.1:9200/photos"``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from platformdirs import user_cache_dir, user_config_dir, user_data_dir
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXDEX_", extra="ignore")

    index: str = Field(
        default_factory=default_index,
        description="SQLite file path (or sqlite:///path), es+http(s)://host:port/name, "
        "opensearch+http(s)://host:port/name",
    )
    model: str = Field(default="efficientnet-lite0", description="efficientnet-lite0 | -lite2")
    quantized: bool = Field(default=False, description="int8 model variant where available")
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
        description="read text in photos (OCR); off by default: 1.71x the CPU of pixdex index "
        "on coco128 (docs/text.md)",
    )
    cache_dir: Path = Field(default_factory=default_cache_dir, description="built ONNX models")
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
    max_labels: int = Field(default=50, ge=1, le=1000)
    max_pixels: int = Field(default=100_000_000, ge=1)
    batch_size: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="images per analysis batch (8: as fast as 16 on CPU, ~190 MB less peak RSS)",
    )
    workers: int = Field(default=2, ge=1, le=256)
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
        description="batches analyzed at once, each in its own thread (2: the other core stays "
        "busy while one batch is in Python code)",
    )
    # Elasticsearch / OpenSearch
    es_username: str | None = None
    es_password: str | None = None
    es_api_key: str | None = None
    es_ca_certs: str | None = None
    es_verify_certs: bool = True
    aws_region: str | None = Field(default=None, description="SigV4 signing for Amazon OpenSearch")
    aws_service: str = Field(default="es", description="'es' (managed domains) or 'aoss'")
    # S3
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO…)")
    max_object_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1,
        description="larger objects are recorded as failures, unread",
    )
    # HTTP API / webhooks (what each guards: docs/security.md)
    api_token: str | None = Field(
        default=None,
        description="required by every API request when set; required to serve off loopback",
    )
    allowed_hosts: Names = Field(
        default_factory=list,
        description="Host names the server answers to besides loopback (DNS rebinding guard)",
    )
    webhook_token: str | None = Field(default=None, description="bearer token MinIO must send")
    webhook_sources: Names = Field(
        default_factory=list,
        description="s3://bucket/prefix the MinIO webhook may index; events for others are refused",
    )
    rekognition_s3_sources: Names = Field(
        default_factory=list,
        description="s3://bucket/prefix DetectLabels may read as S3Object; none: S3Object is off",
    )
    # Which analyzers run (docs/rekognition.md has what each combination produces)
    analyzer: Names = Field(
        default=["local"],
        description="local (the default local set) and/or rekognition, or single local "
        "analyzers: labels, objects, properties, exif, text",
    )
    # Amazon Rekognition (analyzer = "rekognition"); min_confidence/max_labels apply to it too
    rekognition_region: str | None = Field(default=None, description="default: the AWS chain")
    rekognition_endpoint_url: str | None = Field(
        default=None, description="a Rekognition-compatible endpoint (pixdex serve, moto)"
    )
    rekognition_features: Names = Field(
        default=["GENERAL_LABELS"], description="GENERAL_LABELS and/or IMAGE_PROPERTIES"
    )
    rekognition_include_labels: Names = Field(default_factory=list)
    rekognition_exclude_labels: Names = Field(default_factory=list)
    rekognition_include_categories: Names = Field(default_factory=list)
    rekognition_exclude_categories: Names = Field(default_factory=list)
    rekognition_text: bool = Field(default=False, description="also call DetectText (billed)")
    rekognition_rate: float = Field(
        default=4.0, gt=0, description="calls per second at most, per operation"
    )
    rekognition_concurrency: int = Field(default=4, ge=1, le=64)
    rekognition_max_attempts: int = Field(default=8, ge=1, le=20)
    rekognition_s3object: Literal["auto", "always", "never"] = Field(
        default="auto", description="send S3 objects by reference (no download)"
    )
    rekognition_price: float = Field(
        default=0.001, ge=0, description="USD per image per call, for --dry-run"
    )

    @field_validator("webhook_sources", "rekognition_s3_sources")
    @classmethod
    def _s3_prefixes(cls, value: list[str]) -> list[str]:
        for item in value:
            bucket = item.removeprefix("s3://").partition("/")[0]
            if not item.startswith("s3://") or not bucket:
                raise ValueError(f"{item!r} is not s3://bucket or s3://bucket/prefix")
        return value

    @field_validator("endpoint_url", "rekognition_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        check_http_url(value)
        return value.strip()

    @model_validator(mode="after")
    def _own_webhook_token(self) -> Settings:
        if self.api_token and self.webhook_token == self.api_token:
            raise ValueError("webhook_token must differ from api_token (each guards one door)")
        return self

    @field_validator("api_token", "webhook_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) < MIN_TOKEN_CHARS or value.strip() != value:
            raise ValueError(
                f"a token needs at least {MIN_TOKEN_CHARS} characters and no surrounding spaces"
                " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        return value

    @field_validator(
        "analyzer",
        "rekognition_features",
        "rekognition_include_labels",
        "rekognition_exclude_labels",
        "rekognition_include_categories",
        "rekognition_exclude_categories",
        "allowed_hosts",
        "webhook_sources",
        "rekognition_s3_sources",
        mode="before",
    )
    @classmethod
    def _names(cls, value: Any) -> Any:
        """Env vars and flags give ``a,b``; TOML gives a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def session_threads(self) -> int:
        """Intra-op threads for each ONNX Runtime session of a pipeline's analyzers (0: all
        cores). When the pipeline analyzes several batches at once (``analysis_workers`` > 1)
        those batches already keep the cores busy, and a second intra-op thread per session only
        adds hand-over work: one thread each cost 12 % less CPU and ran 11 % faster end to end
        (``pixdex index`` of 1,000 photos of the bench corpus, 2 cores, docs/benchmarks.md)."""
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


class ConfigError(ValueError):
    """A setting has a value pixdex cannot use: says which, where it can come from, and why."""


#: Settings whose values never appear in messages or logs.
SECRET_SETTINGS = frozenset({"api_token", "webhook_token", "es_password", "es_api_key"})


def _problem(error: Any) -> str:
    """One setting's problem, naming where it can come from; secrets' values never shown."""
    loc = error.get("loc") or ()
    if not loc:  # a rule across settings
        return f"{error['msg'].removeprefix('Value error, ')} ({default_config_file()} or env)"
    value = "<hidden>" if loc[0] in SECRET_SETTINGS else repr(error.get("input"))
    return (
        f"{'.'.join(map(str, loc))} = {value}: {error['msg']}"
        f" (flag, PIXDEX_{str(loc[0]).upper()} or {default_config_file()})"
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI flags (``None`` means 'not given') taking precedence."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ConfigError(f"invalid setting: {problems}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {default_config_file()} is not valid TOML: {exc}") from None
