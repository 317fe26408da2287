"""The text-match filter: ``where_text={"$contains": "word"}`` and ``{"$not_contains": ...}``.

Answered from the lexical index (:mod:`simsearch.index.lexical`), so a word matches as a
lexical search matches it: its case, accents and endings folded the same way (``"Cats"``
finds a text holding ``"cat"``). A value of several words asks for all of them, in any
order: ``$contains`` keeps the texts holding every word of it, ``$not_contains`` the
items that do not (vector-only items included: they hold no word). Both keys together
must both hold. The rows it allows are intersected with those of ``where``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.errors import InvalidArgumentError
from simsearch.filters import SqlFilter
from simsearch.index.base import Int64Array
from simsearch.index.bm25 import BM25Index
from simsearch.index.tokens import query_words
from simsearch.store.reads import ReadTxn

__all__ = ["TEXT_OPERATORS", "TextFilter", "TextRows"]

TEXT_OPERATORS = ("$contains", "$not_contains")
#: The rows of a filter (or ``None``: every item) and a text filter together, ascending.
TextRows = Callable[[ReadTxn, SqlFilter | None], Int64Array]


def _words(op: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"where_text's {op} takes a string of words, got {value!r}")
    found = tuple(query_words(value))
    if not found:
        raise InvalidArgumentError(
            f"where_text's {op} value {value!r} holds no word to look for (only stopwords, "
            "punctuation or nothing)"
        )
    return found


@dataclass(frozen=True)
class TextFilter:
    """A checked ``where_text``: the words every kept text must hold, and those whose
    holding all of them excludes an item."""

    contains: tuple[str, ...] | None
    not_contains: tuple[str, ...] | None

    @staticmethod
    def parse(where_text: Any) -> TextFilter | None:
        """The filter ``where_text`` names (``None``: no filter); a bad one raises."""
        if where_text is None:
            return None
        if not isinstance(where_text, dict) or not where_text:
            raise InvalidArgumentError(
                f'where_text must be a dict such as {{"$contains": "word"}}, got {where_text!r}'
            )
        unknown = [k for k in where_text if k not in TEXT_OPERATORS]
        if unknown:
            raise InvalidArgumentError(
                f"where_text takes {' and '.join(TEXT_OPERATORS)}, not {unknown[0]!r}"
            )
        got = {op: _words(op, v) for op, v in where_text.items()}
        return TextFilter(got.get("$contains"), got.get("$not_contains"))

    @property
    def key(self) -> str:
        """Names the filter (with ``where``'s key, for caches of allowed rows)."""
        return json.dumps([self.contains, self.not_contains])

    def rows(self, bm25: BM25Index, live: Int64Array) -> Int64Array:
        """The rows it allows among ``live`` (every live row, ascending)."""
        kept = live if self.contains is None else _holding(bm25, self.contains)
        if self.not_contains is not None:
            kept = np.setdiff1d(kept, _holding(bm25, self.not_contains), assume_unique=True)
        return kept.astype(np.int64)


def _holding(bm25: BM25Index, words: tuple[str, ...]) -> Int64Array:
    """The rows whose text holds every one of ``words``, ascending."""
    stems = bm25.vocab.stems(list(words))
    if any(s not in bm25.vocab.terms for s in stems):
        return np.zeros(0, dtype=np.int64)
    return bm25.rows_with_all([bm25.vocab.terms[s] for s in dict.fromkeys(stems)])
