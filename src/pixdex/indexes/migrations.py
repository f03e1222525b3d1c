"""Named schema migrations, each applied once, in order (sqlite-utils' ``migrations.py`` is the
model).

Each kind of index keeps one ``Migrations`` list. Its history starts at the first release: the
first migration makes that release's layout, and a later release that changes the layout
appends a migration with the next name — an applied one is never edited. An index remembers
the names it has applied (SQLite: the ``pixdex_migrations`` table; Elasticsearch/OpenSearch:
``_meta.pixdex.migrations`` in the mapping) and is given the missing ones when it is opened.

An index that remembers none was written before the first release, whose layouts were never
promised to last: it is refused with one line saying how to rebuild it. One that remembers a
name this pixdex does not know was written by a newer pixdex: refused too, rather than guessed
at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pixdex.errors import IndexUnavailable


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    apply: Callable[..., Any]


class Migrations:
    """The ordered migrations of one kind of index; register them with the instance as a
    decorator (the function's name is the migration's)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._steps: list[Migration] = []

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if any(step.name == function.__name__ for step in self._steps):
            raise ValueError(f"{self.kind} migration {function.__name__} registered twice")
        self._steps.append(Migration(function.__name__, function))
        return function

    def __iter__(self) -> Iterator[Migration]:
        return iter(self._steps)

    @property
    def names(self) -> list[str]:
        return [step.name for step in self._steps]

    def pending(self, applied: Iterable[str], where: str) -> list[Migration]:
        """The migrations ``where`` (an index, for messages) still needs, in order."""
        applied = list(applied)
        unknown = sorted(set(applied) - set(self.names))
        if unknown:
            raise IndexUnavailable(
                f"{where} was written by a newer pixdex (its {self.kind} layout has"
                f" {', '.join(unknown)}): upgrade pixdex to use it"
            )
        return [step for step in self._steps if step.name not in applied]
