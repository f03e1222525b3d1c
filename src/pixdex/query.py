"""Search input from people (CLI flags, ``/api/search`` parameters) checked before any index sees
it: the same bounds and the same one-line reasons for the CLI (exit 2) and the API (400).

Why bounds: each text word and label becomes one join (SQLite) or clause (Elasticsearch), and
SQLite refuses more than 64 tables in a join — 64 words were a 503 "index unavailable" for what
is the client's mistake. A text with no searchable word at all (only emoji or punctuation) used to
match every image, because no word means no condition; it is refused instead of silently
answering something else than was asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pixdex.errors import QueryError
from pixdex.indexes.base import SearchQuery, date_range
from pixdex.records import utc_timestamp

#: Words in a text query and labels in one query. Far above what people type, well below
#: SQLite's 64-table join limit (words + labels + the records table).
MAX_WORDS = 24
MAX_LABELS = 16
MAX_TEXT_CHARS = 500
MAX_LABEL_CHARS = 200

# What the indexes treat as a word: SQLite FTS5's unicode61 tokens, the standard analyzer's too.
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def parse_instant(name: str, value: str | None) -> str | None:
    """A date or date-time as the indexes compare it (``timestamp``'s UTC format). A bare date
    stays a date (``until=2024-01-31`` means the whole 31st); an offset is converted to UTC."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"{name}: not an ISO 8601 date or date-time: {value[:60]!r} (e.g. 2024-01-31 or "
            "2024-01-31T18:00:00+01:00)"
        ) from None
    if len(value) == 10:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_timestamp(moment)


def check_query(query: SearchQuery) -> None:
    """Raise QueryError when the query is outside the bounds above or could not mean anything."""
    text = query.text
    if text is not None:
        if len(text) > MAX_TEXT_CHARS:
            raise QueryError(f"text: at most {MAX_TEXT_CHARS} characters, got {len(text)}")
        found = words(text)
        if not found:
            raise QueryError(
                f"text: no searchable word in {text[:40]!r} (words are letters or digits)"
            )
        if len(found) > MAX_WORDS:
            raise QueryError(f"text: at most {MAX_WORDS} words, got {len(found)}")
    labels: Sequence[str] = query.labels
    if len(labels) > MAX_LABELS:
        raise QueryError(f"label: at most {MAX_LABELS} labels, got {len(labels)}")
    for label in labels:
        if not label.strip():
            raise QueryError("label: empty label")
        if len(label) > MAX_LABEL_CHARS:
            raise QueryError(f"label: at most {MAX_LABEL_CHARS} characters")
    if not 0 <= query.min_confidence <= 100:
        raise QueryError(f"min_confidence: must be between 0 and 100, got {query.min_confidence:g}")
    since, until = date_range(query.since, query.until)
    if since and until and since > until:
        raise QueryError(f"since ({query.since}) is after until ({query.until})")
