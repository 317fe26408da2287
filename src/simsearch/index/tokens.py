"""The tokenisation of the lexical index: how a text and a query become words.

A text is normalised (NFKD: compatibility forms unfolded, accented letters split from
their accents), its nonspacing marks removed (accents, Arabic short vowels), case
folded, and split into runs of letters and digits. Each word is stemmed by Snowball's
English stemmer (Porter2, through PyStemmer, as bm25s uses it); words of other scripts
pass through unchanged. Every word counts in a text's length; the English stopwords of
Lucene's list are kept out of the postings and out of queries (the IDF weighs them
little, and their long posting lists would cost time). The spec of this tokenisation
(``LEXICAL_SPEC``) is saved with each collection and with its saved lexical index.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import Stemmer

from simsearch.errors import InvalidArgumentError

__all__ = ["MAX_QUERY_WORDS", "STOPWORDS", "Vocabulary", "query_words", "words"]

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

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]

#: ASCII letters lowered, digits kept, every other byte a space (``bytes.translate``).
_ASCII = bytes(
    (c + 32 if 65 <= c <= 90 else c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122) else 32
    for c in range(256)
)


class _Chars(dict[int, str | None]):
    """``str.translate``'s table, filled as characters come: a nonspacing mark to nothing,
    a letter or digit to itself, anything else to a space."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        kind = unicodedata.category(ch)
        out = None if kind == "Mn" else ch if kind[0] in "LN" else " "
        self[code] = out
        return out


_CHARS = _Chars()
#: As ``_ASCII``, with every byte of a multibyte UTF-8 character kept.
_UTF8 = _ASCII[:128] + bytes(range(128, 256))
_OTHER = re.compile(r"[^\x00-\x7f]+")


def _fold_run(found: re.Match[str]) -> str:
    return found.group().translate(_CHARS).casefold()


def words(text: str) -> list[bytes]:
    """The words of ``text``, UTF-8 encoded, in order (stopwords included).

    >>> words("The Café's 2 CATS_")
    [b'the', b'cafe', b's', b'2', b'cats']
    """
    if text.isascii():  # the same words, through one byte table
        return text.encode().translate(_ASCII).split()
    # Runs of other characters go through the table (few in most texts); then every
    # byte of them passes, and ASCII goes through the byte table as above.
    folded = _OTHER.sub(_fold_run, unicodedata.normalize("NFKD", text))
    return folded.encode().translate(_UTF8).split()


def query_words(query: str) -> list[str]:
    """The distinct words of ``query`` looked for, in order, before stemming: letters and
    digits kept together, case and accents folded, stopwords dropped. Nothing in a query
    is syntax.

    >>> query_words('The "NEAR" (cat) AND -dog* dogs')
    ['near', 'cat', 'dog', 'dogs']
    """
    found = dict.fromkeys(w.decode() for w in words(query))
    found = dict.fromkeys(w for w in found if w not in STOPWORDS)
    if len(found) > MAX_QUERY_WORDS:
        raise InvalidArgumentError(
            f"a lexical query may hold at most {MAX_QUERY_WORDS} distinct words, this one "
            f"holds {len(found)}"
        )
    return list(found)


class _Ids(dict[bytes, int]):
    """Word -> id, a new word taking the next id (so ``map`` runs at C speed)."""

    def __missing__(self, word: bytes) -> int:
        self[word] = len(self)
        return self[word]


class Vocabulary:
    """Every word seen, each one's term (its stem; -1 for a stopword), and the terms."""

    def __init__(self) -> None:
        self.words = _Ids()
        self.word_term: Int32Array = np.zeros(0, dtype=np.int32)
        self.terms: dict[str, int] = {}
        self._stemmer = Stemmer.Stemmer("english")

    def restore(self, words: Sequence[str], word_term: Int32Array, terms: Sequence[str]) -> None:
        self.words = _Ids((w.encode(), i) for i, w in enumerate(words))
        self.word_term = word_term
        self.terms = {t: i for i, t in enumerate(terms)}

    def _stem_new(self) -> None:
        known = len(self.word_term)
        if len(self.words) == known:
            return
        new = [w.decode() for w in list(self.words)[known:]]
        stems = self._stemmer.stemWords(new)
        ids = [
            -1 if w in STOPWORDS else self.terms.setdefault(s, len(self.terms))
            for w, s in zip(new, stems, strict=True)
        ]
        self.word_term = np.concatenate([self.word_term, np.array(ids, dtype=np.int32)])

    def tokenize(
        self, texts: Sequence[str]
    ) -> tuple[Int64Array, Int32Array, Int32Array, Int64Array]:
        """The postings of ``texts``: for each (text, term) pair, the text's index in
        ``texts``, the term and its count, sorted by text then term; and each text's
        length in words."""
        split = [words(t) for t in texts]
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        flat = np.fromiter(
            map(self.words.__getitem__, itertools.chain.from_iterable(split)),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        self._stem_new()
        terms = self.word_term[flat].astype(np.int64)
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        keep = terms >= 0
        key, counts = np.unique(doc[keep] * (len(self.terms) + 1) + terms[keep], return_counts=True)
        docs, term = np.divmod(key, len(self.terms) + 1)
        return docs, term.astype(np.int32), counts.astype(np.int32), lengths

    def stems(self, found: list[str]) -> list[str]:
        """The stems of these words (as :func:`query_words` gives them)."""
        return [str(s) for s in self._stemmer.stemWords(found)]

    def query_terms(self, query: str) -> list[int]:
        """The ids of ``query``'s distinct stemmed terms that some text held (a term no
        text ever held can match nothing)."""
        return self.terms_of(query_words(query))

    def terms_of(self, found: list[str]) -> list[int]:
        """The ids of the distinct stems of these words (:func:`query_words`'s) that some
        text held."""
        terms = self.terms
        return list(dict.fromkeys(terms[s] for s in self._stemmer.stemWords(found) if s in terms))
