"""Integrations: everything that needs a cloud SDK or a search-server client, each behind an
extra of its own, with its own settings section and docs page.

============  ======================  =====================================  ==============
integration   extra                   what it adds                           settings
============  ======================  =====================================  ==============
``s3``        ``pixdex[s3]``          S3 and S3-compatible buckets; their    ``[s3]``
                                      events: ``pixdex worker`` (SQS),
                                      ``pixdex enqueue``, the Lambda
                                      function, the MinIO webhook
``elastic``   ``pixdex[elastic]``     Elasticsearch and OpenSearch indexes   ``[elastic]``
                                      (SigV4 for Amazon OpenSearch also
                                      needs ``pixdex[s3]``)
``rekognition`` ``pixdex[rekognition]`` Amazon Rekognition as the analyzer   ``[rekognition]``
============  ======================  =====================================  ==============

The core (folders, SQLite, the local models, the CLI, the HTTP API and gallery) never imports
an integration's modules: it reaches them through its registries (``sources.open_source``,
``indexes.open_index``, ``analyzers.select``), which call ``require`` first, so asking for an
integration that is not installed is one line naming the ``pip install`` that adds it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pixdex.errors import MissingExtra

#: the packages each extra installs, by import name (pyproject.toml's optional dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "s3": ("boto3",),
    "elastic": ("elasticsearch", "opensearchpy"),
    "rekognition": ("boto3",),
}


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtra`` (exit 2, one line with the pip command) unless ``extra``'s
    packages can be imported; ``what`` names what the user asked for."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(what, extra) from None


def load(extra: str, what: str, module: str) -> ModuleType:
    """``pixdex.integrations.<extra>.<module>``, once ``require`` found its packages: how the
    core reaches into an integration (never by an import statement of its own)."""
    require(extra, what)
    return importlib.import_module(f"pixdex.integrations.{extra}.{module}")


def installed(extra: str) -> bool:
    try:
        require(extra, extra)
    except MissingExtra:
        return False
    return True
