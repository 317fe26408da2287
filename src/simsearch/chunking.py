"""Splitting long texts into pieces that each fit an encoder's token limit.

An encoder that knows its tokenizer offers ``token_spans(text)``: the character span of
each model token (MiniLM's word pieces do). For one that does not, a token is a run of
non-space characters, a word. A piece ends at the end of a word where one falls in the
second half of its window, so words are not cut in two; each piece is the text between
its first and last token, as written.
"""

from __future__ import annotations

import re
from typing import Any

from simsearch.errors import InvalidArgumentError

__all__ = ["chunk_text", "token_spans"]

_WORD = re.compile(r"\S+")


def token_spans(encoder: Any, text: str) -> list[tuple[int, int]]:
    """The character span of each token of ``text`` as ``encoder`` counts them (words
    for an encoder without ``token_spans``)."""
    spans = getattr(encoder, "token_spans", None)
    if callable(spans):
        return [(int(a), int(b)) for a, b in spans(text)]
    return [m.span() for m in _WORD.finditer(text)]


def chunk_text(text: str, max_tokens: int, encoder: Any = None) -> list[str]:
    """``text`` in pieces of at most ``max_tokens`` tokens, in order (one piece when it
    fits; none for a text without tokens).

    >>> chunk_text("one two three four five", 2)
    ['one two', 'three four', 'five']
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidArgumentError(f"chunks need at least 1 token each, got {max_tokens!r}")
    spans = token_spans(encoder, text)
    pieces: list[str] = []
    start = 0
    while start < len(spans):
        end = min(start + max_tokens, len(spans))
        if end < len(spans):
            # Back to the last word boundary in the window's second half, if there is one.
            for cut in range(end, start + max(1, max_tokens // 2), -1):
                if spans[cut][0] > spans[cut - 1][1]:
                    end = cut
                    break
        pieces.append(text[spans[start][0] : spans[end - 1][1]])
        start = end
    return pieces
