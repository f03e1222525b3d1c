"""Every error pixdex raises on purpose, in one tree (httpx's ``_exceptions.py`` is the model).

Each message is one line a user can act on; the class says what happens next. One place turns
them into the CLI's messages and exit codes (``pixdex.cli.errors``), one into the HTTP API's
JSON errors (``pixdex.api.errors``)::

    PixdexError
    ├── ConfigError ·················· a setting pixdex cannot use (exit 2)
    │   ├── MissingExtra ············· an integration whose extra is not installed (exit 2)
    │   └── BindError ················ serving beyond loopback without a token (exit 2)
    ├── QueryError ··················· a search pixdex cannot run (exit 2; HTTP 400)
    ├── InputError ··················· one input that cannot be used: reported, skipped (HTTP 400)
    │   ├── ImageError ··············· not an image, truncated, too many pixels
    │   └── JsonError ················ a request body that is not the JSON asked for
    ├── ModelError ··················· a model that cannot be loaded or built (exit 1)
    └── Unavailable ·················· something the whole command needs is out of reach
        │                              (exit 3; HTTP 503): retrying later may work
        ├── IndexUnavailable ········· the index: server down, bad URL, locked or newer file
        ├── SourceError ·············· the folder or bucket (per object: a recorded failure)
        └── Overloaded ··············· the server holds as much work as it should

Objects that could not be indexed are not exceptions but values: ``records.Failure``.
"""

from __future__ import annotations


class PixdexError(Exception):
    """Base of every error pixdex raises on purpose; ``str()`` is one line for a user."""


class ConfigError(PixdexError, ValueError):
    """A setting has a value pixdex cannot use: says which, where it can come from, and why."""


class MissingExtra(ConfigError):
    """Something was asked of an integration whose optional dependencies are not installed."""

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs the {extra} extra: pip install 'pixdex[{extra}]'")


class BindError(ConfigError):
    """``pixdex serve`` asked to listen where it must not without a token."""


class QueryError(PixdexError, ValueError):
    """A search that cannot be run as given (a bad date, an empty label, too long a text)."""


class InputError(PixdexError, ValueError):
    """One input (an image, a request body) that cannot be used; the others go on."""


class ImageError(InputError):
    """Not a decodable image, truncated, or beyond the pixel limit: a one-line reason."""


class JsonError(InputError):
    """A request body that is not the JSON asked for (malformed, too deep, too large)."""


class ModelError(PixdexError, ValueError):
    """Unknown model name, model package not installed, or an unusable weights file."""


class Unavailable(PixdexError):
    """Something the whole command needs cannot be used right now."""


class IndexUnavailable(Unavailable):
    """The index cannot be used (server down, mapping conflict, locked file): a clear message."""


class SourceError(Unavailable):
    """A folder or bucket (or one object in it) cannot be read; the reason in one line."""


class Overloaded(Unavailable):
    """More work is waiting than the server should hold; ``retry_after`` seconds is a hint."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: exit codes of the ``pixdex`` command, by class (the first that matches)
EXIT_CODES: tuple[tuple[type[PixdexError], int], ...] = (
    (ConfigError, 2),
    (QueryError, 2),
    (Unavailable, 3),
    (PixdexError, 1),
)


def exit_code(error: PixdexError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))
