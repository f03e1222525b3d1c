"""Settings from flags, environment (``PIXDEX_*``) and a TOML config file, in that precedence.

The config file is ``$PIXDEX_CONFIG`` or ``<user config dir>/pixdex/config.toml``; every key is a
field name below (e.g. ``index = "es+http://127.0.0.1:9200/photos"``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_cache_dir, user_config_dir, user_data_dir
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP = "pixdex"


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
    detector: Literal["ssdlite+nanodet", "ssdlite", "nanodet"] = Field(
        default="ssdlite+nanodet",
        description="object detectors: both fused (most accurate) or one alone (faster)",
    )
    text: bool = Field(
        default=True, description="read text in photos (OCR; docs/text.md says why it is on)"
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
    max_labels: int = 50
    max_pixels: int = 100_000_000
    batch_size: int = 16
    workers: int = 2
    threads: int = Field(default=0, description="ONNX Runtime intra-op threads; 0 = all cores")
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
        default=100 * 1024 * 1024, description="larger objects are recorded as failures, unread"
    )
    # HTTP API / webhooks
    webhook_token: str | None = None
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

    @field_validator(
        "analyzer",
        "rekognition_features",
        "rekognition_include_labels",
        "rekognition_exclude_labels",
        "rekognition_include_categories",
        "rekognition_exclude_categories",
        mode="before",
    )
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI flags (``None`` means 'not given') taking precedence."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))} = {e.get('input')!r}: {e['msg']}"
            f" (flag, PIXDEX_{str(e['loc'][0]).upper()} or {default_config_file()})"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {default_config_file()} is not valid TOML: {exc}") from None
