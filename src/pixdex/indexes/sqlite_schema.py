"""The SQLite index's layout and its migrations (``indexes.migrations``).

Layout, chosen so every search is index lookups rather than scans:
- ``records``: one row per image with the whole record as JSON plus the columns filters need;
- ``label_terms``: one row per (image, label name | parent | alias), indexed on (term, confidence),
  so "label X with confidence ≥ N" and label facets never read the JSON;
- ``label_phrases``: one row per (image, phrase a label term equals: ``words.term_keys``), indexed
  on (phrase, confidence), for the free-text tier "a label equals the query";
- ``label_fts`` / ``path_fts``: FTS5 over label terms (with both numbers of their last word,
  ``words.term_text``) and key paths for free text (porter stemming, so "dogs" finds "Dog");
  their rowids are the rowids of ``label_terms`` / ``records``;
- ``text_fts``: FTS5 over the text read in the photo (its LINEs, docs/text.md), rowid = the
  record's rowid;
- ``embeddings``: the record's embedding (``records.Embedding``), rowid = the record's rowid,
  what "more like this" and duplicates compare;
- ``failures``: objects that could not be indexed, and why;
- ``pixdex_migrations``: the migrations applied to the file.
"""

from __future__ import annotations

import sqlite3

from pixdex.errors import IndexUnavailable
from pixdex.indexes.migrations import Migrations

#: the layout of the first release (``m001_initial``)
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    fingerprint TEXT,
    content_sha256 TEXT,
    analysis_version TEXT NOT NULL,
    label_model TEXT,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_bucket_key ON records (bucket, key);
CREATE INDEX IF NOT EXISTS records_timestamp ON records (timestamp);
CREATE TABLE IF NOT EXISTS label_terms (
    tid INTEGER PRIMARY KEY,
    rid INTEGER NOT NULL,
    term TEXT NOT NULL,          -- lower-cased label name, parent or alias
    name TEXT,                   -- display name, set only on the label's own row (facets)
    confidence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS label_terms_term ON label_terms (term, confidence);
CREATE INDEX IF NOT EXISTS label_terms_rid ON label_terms (rid);
CREATE INDEX IF NOT EXISTS label_terms_name
    ON label_terms (name, confidence) WHERE name IS NOT NULL;
-- the facets of a search count the named rows of the matching records: read from this index
-- alone, without visiting the table (docs/benchmarks.md, "Reading")
CREATE INDEX IF NOT EXISTS label_terms_named_rid
    ON label_terms (rid, confidence, name) WHERE name IS NOT NULL;
CREATE TABLE IF NOT EXISTS label_phrases (
    rid INTEGER NOT NULL,
    phrase TEXT NOT NULL,        -- a term's stemmed words joined by spaces (words.term_keys)
    confidence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS label_phrases_phrase ON label_phrases (phrase, confidence);
CREATE INDEX IF NOT EXISTS label_phrases_rid ON label_phrases (rid);
CREATE VIRTUAL TABLE IF NOT EXISTS label_fts USING fts5 (
    term, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS path_fts USING fts5 (
    path, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5 (
    text, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS embeddings (
    rid INTEGER PRIMARY KEY,     -- the record's rowid
    version TEXT NOT NULL,       -- only embeddings of one version are compared
    vector BLOB NOT NULL,        -- similarity.EMBEDDING_DIM int8
    thumbnail BLOB NOT NULL      -- 8x8 RGB
);
CREATE INDEX IF NOT EXISTS embeddings_version ON embeddings (version);
CREATE TABLE IF NOT EXISTS failures (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    uri TEXT,
    reason TEXT NOT NULL,
    fingerprint TEXT,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
"""

MIGRATIONS = Migrations("SQLite")


def _statements(script: str) -> list[str]:
    """The statements of ``script``, its ``--`` comments dropped first: a ";" in a comment split
    a statement in two and made every index unopenable (executescript would commit the open
    transaction, so the schema runs statement by statement)."""
    text = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [statement for statement in text.split(";") if statement.strip()]


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The layout of pixdex 0.2.0, the first release."""
    for statement in _statements(SCHEMA):
        db.execute(statement)


def migrate(db: sqlite3.Connection, location: str) -> None:
    """(In the open transaction.) Create a new file's layout, or bring an existing one up to
    date; refuse a file of a pre-release or a newer pixdex."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "pixdex_migrations" not in tables:
        if "records" in tables:
            raise IndexUnavailable(
                f"{location} was written by a pre-release pixdex, whose layout this one does not"
                f" read: rebuild it (delete the file, or pick another --index, and run pixdex"
                f" index again)"
            )
        db.execute(
            "CREATE TABLE pixdex_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    applied = [name for (name,) in db.execute("SELECT name FROM pixdex_migrations")]
    for step in MIGRATIONS.pending(applied, location):
        step.apply(db)
        db.execute(
            "INSERT INTO pixdex_migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%f', 'now'))",
            (step.name,),
        )
