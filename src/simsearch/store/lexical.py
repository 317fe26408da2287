"""The lexical index: SQLite FTS5 over each item's text, kept by triggers in every write.

Three candidates were measured on SciFact (title + abstract, 5,183 documents, the 300
test queries, depth 100, one query a call, the same stopwords dropped from every query;
``bench/bench_lexical_choice.py``, ``bench/results/lexical_choice.json``):

=========  =======  ==========  =========  =======  ===================================
index      nDCG@10  recall@100  queries/s  build    add 100 documents to the built index
=========  =======  ==========  =========  =======  ===================================
FTS5       0.682    0.929       267        0.18 s   0.010 s (inside the write)
bm25s      0.686    0.913       8,169      0.59 s   0.62 s (no update: index all again)
tantivy    0.689    0.918       4,961      0.36 s   0.034 s (a segment commit)
=========  =======  ==========  =========  =======  ===================================

The three rank about equally well. FTS5 is chosen for the cost of keeping it current:
its table lives in the collection's own database and triggers on ``items`` change it
inside the transaction of every write (insert, upsert, text update, delete, whatever
code or process makes it), as the field catalogue (``store/catalogue.py``) is kept. It
is never behind the store, a crash cannot leave it half-applied (a write and its
postings commit or roll back together), another process sees it at once, a search
reads it in the same snapshot as the vectors and the hits' descriptions, and its
statistics (document count, average length) are exactly the live items', deletions
included. bm25s has no incremental update at all. tantivy is fast, but it would be a
second store to keep in step with SQLite by sequence number: one writer per index
folder (two processes catching up would contend for it), a catch-up and a commit
before a search can see a write, and deleted documents counted in its BM25 statistics
until their segment is merged. The price is speed: FTS5 scores every document that
holds any query word before it sorts, about 30x slower per query than bm25s here.

Tokenisation (saved with the collection as ``CollectionConfig.lexical``): FTS5's
``unicode61`` tokenizer (Unicode case folding, diacritics removed) under the Porter
stemmer, over every word of a text. Queries are split into words the same way, the
English stopwords of Lucene's list are dropped from them (FTS5 keeps no stopword list;
the IDF weighs them little, but their long posting lists cost time), and the distinct
words are OR-joined as quoted strings, so no query text is ever read as FTS5 syntax.
Scores are FTS5's ``bm25()`` (k1 = 1.2, b = 0.75, IDF ``log((N - n + 0.5) / (n + 0.5))``),
negated so that higher is better.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.config import LEXICAL_SPEC
from simsearch.errors import InvalidArgumentError

__all__ = [
    "LEXICAL_SCHEMA",
    "LEXICAL_SPEC",
    "MAX_QUERY_WORDS",
    "STOPWORDS",
    "best_of",
    "fill_lexical",
    "lexical_matches",
    "lexical_search",
    "match_expression",
    "query_words",
]

#: The FTS5 tokenizer of the lexical index (as ``LEXICAL_SPEC`` names it).
TOKENIZER = "porter unicode61 remove_diacritics 2"
#: Lucene's English stopwords (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
#: The most distinct words a lexical query may hold (a longer one is refused).
MAX_QUERY_WORDS = 10_000

#: Statements (run one at a time) creating the FTS5 table over ``items.text`` and the
#: triggers that keep it in every write; vector-only items (no text) are not in it.
LEXICAL_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(text, content='items', "
    f"content_rowid='row', tokenize='{TOKENIZER}')",
    "CREATE TRIGGER IF NOT EXISTS lexical_insert AFTER INSERT ON items "
    "WHEN NEW.text IS NOT NULL BEGIN "
    "INSERT INTO lexical (rowid, text) VALUES (NEW.row, NEW.text); END",
    "CREATE TRIGGER IF NOT EXISTS lexical_delete AFTER DELETE ON items "
    "WHEN OLD.text IS NOT NULL BEGIN "
    "INSERT INTO lexical (lexical, rowid, text) VALUES ('delete', OLD.row, OLD.text); END",
    # One trigger for both halves of an update: SQLite runs several triggers of one event
    # newest first, which would index the new text before the old one is taken out.
    "CREATE TRIGGER IF NOT EXISTS lexical_update AFTER UPDATE OF text ON items "
    "WHEN OLD.text IS NOT NEW.text BEGIN "
    "INSERT INTO lexical (lexical, rowid, text) SELECT 'delete', OLD.row, OLD.text "
    "WHERE OLD.text IS NOT NULL; "
    "INSERT INTO lexical (rowid, text) SELECT NEW.row, NEW.text WHERE NEW.text IS NOT NULL; END",
)

Int64Array = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
#: Runs one statement in a snapshot (``ReadTxn.query``).
Run = Callable[[str, Sequence[Any]], sqlite3.Cursor]


def fill_lexical(conn: sqlite3.Connection) -> None:
    """Index the texts already stored (a collection written before the lexical index)."""
    conn.execute("INSERT INTO lexical (lexical) VALUES ('rebuild')")


def _word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def query_words(query: str) -> list[str]:
    """The distinct words of ``query`` the index is asked for, in order: letters, digits
    and marks kept together, case folded, stopwords dropped.

    >>> query_words('The "NEAR" (cat) AND -dog* dogs')
    ['near', 'cat', 'dog', 'dogs']
    """
    text = unicodedata.normalize("NFKC", query)
    cleaned = "".join(ch if _word_char(ch) else " " for ch in text)
    words = dict.fromkeys(w for w in cleaned.casefold().split() if w not in STOPWORDS)
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgumentError(
            f"a lexical query may hold at most {MAX_QUERY_WORDS} distinct words, this one "
            f"holds {len(words)}"
        )
    return list(words)


def match_expression(query: str) -> str | None:
    """The FTS5 ``MATCH`` expression of ``query`` (its words OR-joined, each one quoted so
    that nothing in it is FTS5 syntax), or ``None`` when it has no word to look for."""
    words = query_words(query)
    return " OR ".join(f'"{w}"' for w in words) if words else None


def lexical_matches(run: Run, match: str, allowed: Int64Array | None) -> tuple[F64, Int64Array]:
    """Every row ``match`` finds among ``allowed`` (``None``: all), ascending, and its
    score (higher better; in double precision, as BM25 scores of many items can differ
    by less than a float32 step, and a ranking must not turn them into ties); ``run``
    runs a statement in the search's snapshot (``ReadTxn.query``)."""
    found = run(
        "SELECT rowid, -bm25(lexical) FROM lexical WHERE lexical MATCH ? ORDER BY rowid",
        (match,),
    ).fetchall()
    rows = np.array([r for r, _ in found], dtype=np.int64)
    scores = np.array([s for _, s in found], dtype=np.float64)
    if allowed is not None:
        keep = np.isin(rows, allowed, assume_unique=True)
        rows, scores = rows[keep], scores[keep]
    return scores, rows


def best_of(scores: F64, rows: Int64Array, k: int) -> tuple[F64, Int64Array]:
    """The ``k`` best of these matches, best first (ties: the smaller row first)."""
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]


def lexical_search(
    run: Run, match: str, k: int, allowed: Int64Array | None
) -> tuple[F64, Int64Array]:
    """The ``k`` best rows for ``match`` and their scores (higher better), among
    ``allowed`` (ascending rows; ``None``: all), best first."""
    if allowed is None:
        found = run(
            "SELECT rowid, -bm25(lexical) FROM lexical WHERE lexical MATCH ? "
            "ORDER BY rank, rowid LIMIT ?",
            (match, k),
        ).fetchall()
        rows = np.array([r for r, _ in found], dtype=np.int64)
        scores = np.array([s for _, s in found], dtype=np.float64)
        return scores, rows
    # Filtered: every match is scored and the allowed ones kept, so a filter never
    # leaves fewer than k hits when k allowed items match.
    return best_of(*lexical_matches(run, match, allowed), k)
