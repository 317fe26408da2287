"""An in-memory BM25 index of texts that takes additions and removals one batch at a time.

Each indexed text is a *slot* (a row's text takes a new slot whenever it changes, and
its old slot dies). Postings (term, slot, term count) are kept twice: in slot order as
they came (to know a dying slot's terms, whose document counts then drop) and in term
order for ranking: a *main* part built in one pass (a stable sort by term) and a *tail*
of the slots added since, sorted again when it changed. Once the tail outgrows a share
of the main part, both are merged into a new main part without the dead slots' postings,
so a write costs a sort of the tail at most, and each posting is sorted again only a few
times as the collection doubles.

Scores are BM25 as SQLite FTS5 defines it (the lexical index was FTS5 before): ``k1 =
1.2``, ``b = 0.75``, ``idf = ln((N - n + 0.5) / (n + 0.5))`` floored at ``1e-6``, over
the live texts only (``N`` texts, average length in words, ``n`` texts holding the term),
computed at query time from the posting counts, in double precision. A search may give
other statistics (:class:`CorpusStats`): a sharded collection scores each shard's texts
with the sums over every shard, so that its scores are those of one index of all texts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.index.tokens import Vocabulary

__all__ = ["K1", "B", "BM25Index", "CorpusStats", "Grow"]

K1, B = 1.2, 0.75
IDF_FLOOR = 1e-6
#: The tail is merged into the main part once it holds more postings than this plus an
#: eighth of the main part's.
TAIL_POSTINGS = 8192

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]


class Grow:
    """A numpy array that grows at its end (capacity doubling)."""

    def __init__(self, dtype: type, data: npt.NDArray[np.generic] | None = None) -> None:
        self._data: npt.NDArray[np.generic] = (
            np.zeros(16, dtype=dtype) if data is None else np.array(data, dtype=dtype)
        )
        self.n = 0 if data is None else len(data)

    def append(self, values: npt.ArrayLike) -> None:
        values = np.asarray(values)
        need = self.n + len(values)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n : need] = values
        self.n = need

    @property
    def view(self) -> npt.NDArray[Any]:
        return self._data[: self.n]

    def set(self, data: npt.NDArray[np.generic]) -> None:
        self._data = np.array(data, dtype=self._data.dtype)
        self.n = len(data)


@dataclass(frozen=True)
class CorpusStats:
    """BM25's statistics of a corpus: its live texts, their total length in words, and
    each term's document frequency (by this index's term ids; a term not given: 0)."""

    texts: int
    total_len: int
    df: dict[int, int]


def _bm25(
    tf: F64, lengths: F64, live: npt.NDArray[np.bool_], texts: int, total_len: int, df: float
) -> F64:
    """Each posting's BM25 weight (0 for a dead slot's) under these statistics."""
    n = max(texts, 1)
    idf = max(math.log((n - df + 0.5) / (df + 0.5)), 0.0) or IDF_FLOOR
    avgdl = max(total_len / n, 1e-9)
    norm = K1 * (1 - B + B * lengths / avgdl)
    return np.where(live, idf * tf * (K1 + 1) / (tf + norm), 0.0)


@dataclass(frozen=True)
class ByTerm:
    """Postings sorted by term: term ``t``'s are ``[ptr[t], ptr[t + 1])``."""

    ptr: Int64Array
    slots: Int32Array
    counts: Int32Array

    @staticmethod
    def of(terms: Int32Array, slots: Int32Array, counts: Int32Array, n_terms: int) -> ByTerm:
        order = np.argsort(terms, kind="stable")
        ptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=n_terms), out=ptr[1:])
        return ByTerm(ptr, slots[order], counts[order])

    def of_term(self, term: int) -> tuple[Int32Array, Int32Array]:
        if term + 1 >= len(self.ptr):
            return self.slots[:0], self.counts[:0]
        start, end = int(self.ptr[term]), int(self.ptr[term + 1])
        return self.slots[start:end], self.counts[start:end]


class BM25Index:
    """BM25 over the texts of a collection's rows (used under its keeper's lock)."""

    def __init__(self) -> None:
        self.vocab = Vocabulary()
        self.df = Grow(np.int64)  # live texts holding each term
        self.slot_row = Grow(np.int64)
        self.slot_len = Grow(np.int64)
        self.slot_live = Grow(np.bool_)
        self.slot_start = Grow(np.int64)  # where each slot's postings begin in ``terms``
        self.terms = Grow(np.int32)  # postings in slot order
        self.counts = Grow(np.int32)
        self.row_slot: dict[int, int] = {}
        self.total_len = 0
        self.main = ByTerm(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))
        self.main_end = 0  # postings (in slot order) the main part holds
        self._tail: ByTerm | None = None
        self._scored: dict[tuple[int, int], tuple[Int32Array, F64]] = {}

    # -- writing ---------------------------------------------------------------------------
    @property
    def live(self) -> int:
        return len(self.row_slot)

    def remove(self, rows: Sequence[int]) -> None:
        """Take these rows' texts out (rows without one are ignored)."""
        dying = [self.row_slot.pop(r) for r in rows if r in self.row_slot]
        if not dying:
            return
        slots = np.array(dying, dtype=np.int64)
        starts = self.slot_start.view[slots]
        ends = np.append(self.slot_start.view, self.terms.n)[slots + 1]
        spans = [self.terms.view[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        gone = np.concatenate(spans) if spans else np.zeros(0, np.int32)
        df = self.df.view
        df -= np.bincount(gone, minlength=len(df)).astype(np.int64)
        self.slot_live.view[slots] = False
        self.total_len -= int(self.slot_len.view[slots].sum())
        self._changed()

    def _changed(self) -> None:
        self._scored = {}

    def add(self, rows: Sequence[int], texts: Sequence[str]) -> None:
        """Index these rows' texts (rows not in the index: :meth:`remove` them first)."""
        if not rows:
            return
        docs, terms, counts, lengths = self.vocab.tokenize(texts)
        first = self.slot_row.n
        slots = np.arange(first, first + len(rows), dtype=np.int64)
        per_doc = np.bincount(docs, minlength=len(rows))
        starts = self.terms.n + np.cumsum(per_doc) - per_doc
        self.slot_start.append(starts)
        self.slot_row.append(np.asarray(rows, dtype=np.int64))
        self.slot_len.append(lengths)
        self.slot_live.append(np.ones(len(rows), dtype=bool))
        self.terms.append(terms)
        self.counts.append(counts)
        grow = len(self.vocab.terms) - self.df.n
        if grow > 0:
            self.df.append(np.zeros(grow, dtype=np.int64))
        df = self.df.view
        df += np.bincount(terms, minlength=len(df)).astype(np.int64)
        self.row_slot.update(zip(map(int, rows), slots.tolist(), strict=True))
        self.total_len += int(lengths.sum())
        self._tail = None
        self._changed()
        if self.terms.n - self.main_end > TAIL_POSTINGS + self.main_end // 8:
            self.merge()

    def slot_of_postings(self, start: int, end: int) -> Int32Array:
        """The slot of each posting in ``[start, end)`` (slot order)."""
        starts = self.slot_start.view
        if end <= start:
            return np.zeros(0, dtype=np.int32)
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, end, side="left"))
        bounds = np.append(starts[first:last], end)
        lengths = np.diff(np.clip(bounds, start, end))
        return np.repeat(np.arange(first, last, dtype=np.int32), lengths)

    def merge(self) -> None:
        """One main part of every live posting: the dead slots' postings dropped, the slot
        order compacted the same way."""
        slots = self.slot_of_postings(0, self.terms.n)
        keep = self.slot_live.view[slots]
        terms, counts, slots = self.terms.view[keep], self.counts.view[keep], slots[keep]
        per_slot = np.bincount(slots, minlength=self.slot_row.n)
        self.slot_start.set((np.cumsum(per_slot) - per_slot).astype(np.int64))
        self.terms.set(terms)
        self.counts.set(counts)
        self.main = ByTerm.of(terms, slots, counts, len(self.vocab.terms))
        self.main_end = len(terms)
        self._tail = None
        self._changed()

    def _tail_part(self) -> ByTerm:
        if self._tail is None:
            start, end = self.main_end, self.terms.n
            self._tail = ByTerm.of(
                self.terms.view[start:end],
                self.slot_of_postings(start, end),
                self.counts.view[start:end],
                len(self.vocab.terms),
            )
        return self._tail

    # -- ranking ---------------------------------------------------------------------------
    def _weights(
        self, part: int, term: int, stats: CorpusStats | None = None
    ) -> tuple[Int32Array, F64]:
        """The slots holding ``term`` in part ``part`` (0 main, 1 tail) and each one's BM25
        score for it (0 for a dead slot's), for the statistics of now: computed at the
        first search that asks after a change, then kept until the next change (so a write
        costs the next search only its own terms). Scores under given ``stats`` are not
        kept (they change with every other shard's writes)."""
        key = (part, term)
        found = None if stats is not None else self._scored.get(key)
        if found is None:
            held = self.main if part == 0 else self._tail_part()
            slots, counts = held.of_term(term)
            tf = counts.astype(np.float64)
            lengths = self.slot_len.view[slots].astype(np.float64)
            live = self.slot_live.view[slots]
            if stats is None:
                df = float(self.df.view[term])
                score = _bm25(tf, lengths, live, self.live, self.total_len, df)
                found = self._scored[key] = (slots, score)
            else:
                df = float(stats.df.get(term, 0))
                found = (slots, _bm25(tf, lengths, live, stats.texts, stats.total_len, df))
        return found

    def matches(
        self,
        terms: Sequence[int],
        allowed: npt.NDArray[np.bool_] | None,
        stats: CorpusStats | None = None,
    ) -> tuple[F64, Int64Array]:
        """Every live row holding one of ``terms`` (and ``allowed[row]``, when given),
        ascending, with its BM25 score (under ``stats``, when given, else this index's)."""
        empty = np.zeros(0, np.float64), np.zeros(0, np.int64)
        if not terms or not self.live or (allowed is not None and not allowed.any()):
            return empty
        parts = (0, 1) if len(self._tail_part().slots) else (0,)
        slots_of, weights_of = [], []
        for part in parts:
            for t in terms:
                slots, score = self._weights(part, t, stats)
                if len(slots):
                    slots_of.append(slots)
                    weights_of.append(score)
        if not slots_of:
            return empty
        slots = np.concatenate(slots_of)
        weight = np.concatenate(weights_of)
        if len(slots) * 16 > self.slot_row.n:  # one pass over every slot
            summed = np.bincount(slots, weights=weight, minlength=self.slot_row.n).astype(
                np.float64
            )
            found = np.flatnonzero(summed)
            scores: F64 = summed[found]
        else:
            found, at = np.unique(slots, return_inverse=True)
            scores = np.bincount(at, weights=weight, minlength=len(found)).astype(
                np.float64, copy=False
            )
            alive = scores > 0
            found, scores = found[alive], scores[alive]
        rows = self.slot_row.view[found]
        if allowed is not None:
            keep = (rows < len(allowed)) & allowed[np.minimum(rows, len(allowed) - 1)]
            rows, scores = rows[keep], scores[keep]
        order = np.argsort(rows)  # a text's new slot comes after those of later rows
        return scores[order], rows[order].astype(np.int64)

    def rows_with_all(self, terms: Sequence[int]) -> Int64Array:
        """The live rows whose text holds every one of ``terms``, ascending."""
        tail = self._tail_part()
        kept: Int64Array | None = None
        live = self.slot_live.view
        for t in terms:
            slots = np.concatenate([part.of_term(t)[0] for part in (self.main, tail)])
            rows = np.unique(self.slot_row.view[slots[live[slots]]])
            kept = rows if kept is None else np.intersect1d(kept, rows, assume_unique=True)
        return np.zeros(0, np.int64) if kept is None else kept.astype(np.int64)

    def search(
        self,
        terms: Sequence[int],
        k: int,
        allowed: npt.NDArray[np.bool_] | None,
        stats: CorpusStats | None = None,
    ) -> tuple[F64, Int64Array]:
        """The ``k`` best rows for ``terms`` and their scores, best first (ties: the smaller
        row first)."""
        scores, rows = self.matches(terms, allowed, stats)
        return best_of(scores, rows, k)


def best_of(scores: F64, rows: Int64Array, k: int) -> tuple[F64, Int64Array]:
    """The ``k`` best of these matches, best first (ties: the smaller row first)."""
    if len(scores) > k:
        bar = -np.partition(-scores, k - 1)[k - 1]
        keep = scores >= bar
        scores, rows = scores[keep], rows[keep]
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]
