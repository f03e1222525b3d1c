"""Words as the indexes compare them, the same for every backend.

SQLite's FTS5 ``porter unicode61 remove_diacritics 2`` tokenizer is the reference: the SQLite index
matches free text with it, and the Elasticsearch/OpenSearch index stores the words it makes (run
here, in Python, through an in-memory FTS5 table) so that both find the same images without any
analysis plugin on the cluster (the minimal server distributions have no stemmers).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache


class Words:
    """Words as SQLite FTS5 ``porter unicode61 remove_diacritics 2`` makes them (one per thread)."""

    _local = threading.local()

    @classmethod
    def _db(cls) -> sqlite3.Connection:
        db = getattr(cls._local, "db", None)
        if db is None:
            db = sqlite3.connect(":memory:")
            db.execute(
                "CREATE VIRTUAL TABLE t USING fts5"
                "(x, tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
            cls._local.db = db
        return db

    @classmethod
    def many(cls, texts: Sequence[str]) -> list[list[str]]:
        """Words of each text, in order."""
        if not texts:
            return []
        db = cls._db()
        with db:
            db.executemany(
                "INSERT INTO t (rowid, x) VALUES (?, ?)", [(i + 1, t) for i, t in enumerate(texts)]
            )
            out: list[list[str]] = [[] for _ in texts]
            for doc, term in db.execute("SELECT doc, term FROM v ORDER BY doc, col, offset"):
                out[doc - 1].append(term)
            db.execute("DELETE FROM t")
        return out


# --- label terms and queries ------------------------------------------------------------------
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # unicode61's token characters: letters and digits


@lru_cache(maxsize=4096)
def _numbers(word: str) -> tuple[str, ...]:
    """Every singular and plural form of an English noun, irregular ones included ("child",
    "children"; "knife", "knives"); just the word when it is not a known noun.

    The porter stemmer already equates regular plurals ("dogs" = "dog"), not irregular ones
    ("children", "men", "mice", "knives", "buses" stem differently from their singulars); the
    forms come from lemminflect's English lexicon (data loaded on first use, about a second)
    rather than a hand-kept list."""
    if not word.isalpha():
        return (word,)
    from lemminflect import getAllInflections, getAllLemmas

    lemmas = {word, *getAllLemmas(word, upos="NOUN").get("NOUN", ())}
    forms = set(lemmas)
    for lemma in lemmas:
        for inflected in getAllInflections(lemma, upos="NOUN").values():
            forms.update(inflected)
    return tuple(sorted(f.lower() for f in forms))


def _last_word_forms(term: str) -> list[str]:
    """``term`` with its last word in each of its numbers ("Traffic Light" → "Traffic light",
    "Traffic lights"): English compounds inflect their last word."""
    matches = list(_TOKEN.finditer(term))
    if not matches:
        return [term]
    last = matches[-1]
    head, tail = term[: last.start()], term[last.end() :]
    return [f"{head}{form}{tail}" for form in _numbers(last.group().lower())]


@lru_cache(maxsize=65536)
def term_keys(term: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(phrases, words) a label term (name, parent or alias) is matched by.

    - phrases: its words joined by spaces, once per number of its last word ("traffic light";
      "man" and "men"): a free-text query *equals* the term when its own words joined by spaces
      (``query_phrase``) are one of these;
    - words: every word of those forms: a query word is *contained* in the term when it is one
      of these.
    """
    forms = _last_word_forms(term)
    stemmed = Words.many(forms)
    phrases = tuple(sorted({" ".join(ws) for ws in stemmed if ws}))
    words = tuple(sorted({w for ws in stemmed for w in ws}))
    return phrases, words


@lru_cache(maxsize=65536)
def term_text(term: str) -> str:
    """The text the SQLite index gives FTS5 for a term: the term and the other numbers of its
    last word, so that FTS5 finds the same words as ``term_keys``."""
    forms = _last_word_forms(term)
    return " ".join(dict.fromkeys(forms))


def query_tokens(text: str) -> list[str]:
    """The tokens of a free-text query; each must be found (``query_words``) for a match."""
    return _TOKEN.findall(text)


def query_words(tokens: Sequence[str]) -> list[list[str]]:
    """The words of each query token (usually one; "ñandú" or "x2" may make other counts)."""
    return Words.many(tokens)


def query_phrase(text: str) -> str:
    """The query's words joined by spaces, compared with ``term_keys`` phrases: made exactly as
    a term's phrase is, so "Traffic Lights" and "traffic light" give the same."""
    return " ".join(Words.many([text])[0])


def fts_phrase(token: str) -> str:
    """``token`` as an FTS5 phrase (quoted, its quotes doubled): matched as a word, never read
    as FTS5 query syntax (a token like ``NOT`` or ``a*b`` from a user's search)."""
    return '"' + token.replace('"', '""') + '"'
