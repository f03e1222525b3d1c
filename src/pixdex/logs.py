"""Logging that tells a user what happened, and nothing they should not see.

- ``setup``: pixdex's own warnings on stderr; third-party libraries (Elasticsearch/OpenSearch
  clients, botocore, urllib3, uvicorn) only at ERROR and without tracebacks unless ``--verbose``:
  the OpenSearch client alone logged a 47-line traceback for a server that was merely down, while
  pixdex already says so in one line.
- ``Redactor``: secrets (tokens, passwords, AWS secret keys) and credentials inside URLs are
  replaced by ``<hidden>`` in every log line and every HTTP error body.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixdex.config import Settings

#: Loggers of libraries that log their own retries and tracebacks for conditions pixdex reports.
NOISY = (
    "elastic_transport",
    "elasticsearch",
    "opensearch",
    "urllib3",
    "botocore",
    "boto3",
    "s3transfer",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "watchdog",
    "PIL",
    "py.warnings",
)

# user:password@ in URLs, and the usual secret-carrying parameters/headers.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_SECRET_PARAMS = re.compile(
    r"(?i)(?P<name>\b(?:token|api_key|apikey|password|secret|signature|x-amz-signature|"
    r"x-amz-credential|aws_secret_access_key)=)[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)(?P<name>\bbearer\s+)[A-Za-z0-9._~+/=-]+")
HIDDEN = "<hidden>"


class Redactor:
    """Replaces known secrets and credential-looking parts of a text by ``<hidden>``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._replace: dict[str, str] = {}
        self._lock = threading.Lock()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._replace.update({s: HIDDEN for s in secrets if s and len(s) >= 4})

    def add_path(self, path: str | None, label: str) -> None:
        """Show ``label`` instead of a server path (error bodies: clients need not know it)."""
        if path and len(path) >= 4:
            with self._lock:
                self._replace.setdefault(path, label)

    def __call__(self, text: str) -> str:
        with self._lock:
            pairs = sorted(self._replace.items(), key=lambda kv: len(kv[0]), reverse=True)
        for secret, label in pairs:
            if secret in text:
                text = text.replace(secret, label)
        text = _URL_CREDENTIALS.sub(rf"\g<scheme>{HIDDEN}@", text)
        text = _SECRET_PARAMS.sub(rf"\g<name>{HIDDEN}", text)
        return _BEARER.sub(rf"\g<name>{HIDDEN}", text)


def settings_secrets(settings: Settings) -> list[str | None]:
    """The secrets a Settings object and the process environment hold."""
    from pixdex.config import secrets

    values: list[str | None] = list(secrets(settings))
    values += [os.environ.get(name) for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return values


class RedactingFilter(logging.Filter):
    """Formats the record once, redacts it, and drops the traceback unless ``keep_tracebacks``
    (the one-line message already says what failed; ``--verbose`` brings tracebacks back)."""

    def __init__(self, redactor: Redactor, keep_tracebacks: bool) -> None:
        super().__init__()
        self.redactor = redactor
        self.keep_tracebacks = keep_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the program
            message = str(record.msg)
        if record.exc_info:
            exc = record.exc_info[1]
            if self.keep_tracebacks:  # --verbose: the traceback, redacted like the message
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            elif exc is not None:
                message = f"{message}: {type(exc).__name__}: {exc}"
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redactor(message)
        record.args = None
        return True


_redactor = Redactor()
_handler: logging.Handler | None = None


def redactor() -> Redactor:
    """The process-wide redactor (secrets are added as settings are loaded)."""
    return _redactor


def setup(verbose: bool = False) -> None:
    """Configure the root logger on stderr, quiet third-party loggers, redact secrets."""
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(_redactor, keep_tracebacks=verbose))
    root = logging.getLogger()
    if _handler is not None:  # set up again (tests run many commands in one process)
        root.removeHandler(_handler)
    _handler = handler
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)
    # Library warnings (Pillow's "Corrupt EXIF data", deprecations) are about files or code the
    # user cannot change; pixdex records what matters. --verbose shows them.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if verbose else logging.ERROR)
