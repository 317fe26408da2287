"""The lexical index of a collection's texts: BM25 in memory, derived from the store.

Three candidates were measured on SciFact (title + abstract, 5,183 documents, the 300
test queries, depth 100, one query a call; ``bench/bench_lexical_choice.py``):

=========  =======  ==========  =========  =======  ===================================
index      nDCG@10  recall@100  queries/s  build    add 100 documents to the built index
=========  =======  ==========  =========  =======  ===================================
FTS5       0.682    0.929       267        0.18 s   0.010 s (inside the write)
bm25s      0.686    0.913       8,169      0.59 s   0.62 s (no update: index all again)
tantivy    0.689    0.918       4,961      0.36 s   0.034 s (a segment commit)
=========  =======  ==========  =========  =======  ===================================

All three rank about equally well. FTS5, inside the store's own transactions (kept by
triggers), was the first choice, and it cost too much: it scores every document
holding a query word in SQL, 30x slower per query than bm25s, and its triggers
kept only 22% of the ingest rate of vectors with texts (``bench/bench_hybrid.py`` with
schema 5). bm25s scores fast from sparse matrices but cannot add or remove a
document. tantivy would be a second store with its own writer lock and segment
merges to keep in step. The index here (:class:`~simsearch.index.bm25.BM25Index`)
takes bm25s's approach (postings in numpy arrays, scores summed by ``bincount``) and
adds what a collection needs: texts added and removed in batches, exact live
statistics, and FTS5's BM25 formula, so it ranks as FTS5 did. Measured beside bm25s in
one run (``bench/bench_hybrid.py``, ``docs/benchmarks.md``): SciFact nDCG@10 0.688
against bm25s's 0.686, and batched queries within the same order of speed; one query a
call pays the search's own reads (each hit's text and metadata) on top.

It is derived data, as the payload indexes are (``index/field_set.py``): nothing is
written with an item but the item, so ingest pays nothing for it; each search that
ranks texts first brings it up to its snapshot by sequence number (rows written and
deleted since, other processes' writes too), so a write is found by the next search.
It is saved when the collection closes, with the sequence number it holds and its
tokenisation (``LEXICAL_SPEC``), and loaded on the next open only when it is this
store's, intact and of the same tokenisation; otherwise, and for a collection written
before it existed, it is built from the store on first use, with a progress bar when
that is long.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.config import LEXICAL_SPEC
from simsearch.index.bm25 import BM25Index, ByTerm
from simsearch.index.persist import load_saved, replace_folder, saved_meta
from simsearch.store.reads import ReadTxn

__all__ = ["LEXICAL_DIR", "PROGRESS_FROM", "LexicalIndex", "Progress"]

#: A catch-up's progress: a bar or none, or a callback given the rows done each time.
Progress = bool | Callable[[int], None]

LEXICAL_DIR = "lexical"
_META = "lexical.json"
_ARRAYS = "lexical.npz"
#: Texts a catch-up reads at a time.
CHUNK = 8192
#: A catch-up of at least this many rows shows a progress bar (when progress is on).
PROGRESS_FROM = 50_000


class LexicalIndex:
    """One collection's lexical index, kept in step with its store (used under the index
    keeper's lock)."""

    def __init__(self, directory: Path, store_id: str) -> None:
        self.directory = directory / LEXICAL_DIR
        self._store_id = store_id
        self.bm25 = BM25Index()
        self.applied_seq = 0
        self.saved_seq = -1
        self.started = False  # loaded or begun in this process

    def catch_up(self, snap: ReadTxn, seq: int, progress: Progress | None = None) -> None:
        """Bring the index to ``seq`` (the snapshot's). ``progress``: a bar (``None``: when
        at least ``PROGRESS_FROM`` rows are read), none, or a callback."""
        if not self.started:
            self.started = True
            self._load(snap)
        if seq == self.applied_seq:
            return
        bm25 = self.bm25
        bm25.remove(snap.rows_deleted_since(self.applied_seq).tolist())
        total = snap.count_since(self.applied_seq)
        with _progress(progress, total) as advance:
            for rows, texts in snap.texts_since(self.applied_seq, CHUNK):
                bm25.remove(rows)
                kept = [(r, t) for r, t in zip(rows, texts, strict=True) if t is not None]
                bm25.add([r for r, _ in kept], [t for _, t in kept])
                advance(len(rows))
        self.applied_seq = seq

    # -- saving and loading ------------------------------------------------------------------
    def save(self) -> None:
        """Save the index when it changed since the last save (best effort: it is derived,
        and the next open builds it again if this fails)."""
        if self.saved_seq == self.applied_seq or self.applied_seq == 0:
            return
        bm25 = self.bm25
        bm25.merge()
        vocab = bm25.vocab

        def write(folder: Path) -> None:
            meta = {
                "seq": self.applied_seq,
                "spec": LEXICAL_SPEC,
                "words": [w.decode() for w in vocab.words],
                "terms": list(vocab.terms),
                "total_len": bm25.total_len,
            }
            (folder / _META).write_text(json.dumps(meta, ensure_ascii=False))
            np.savez(
                folder / _ARRAYS,
                word_term=vocab.word_term,
                df=bm25.df.view,
                slot_row=bm25.slot_row.view,
                slot_len=bm25.slot_len.view,
                slot_live=bm25.slot_live.view,
                slot_start=bm25.slot_start.view,
                terms=bm25.terms.view,
                counts=bm25.counts.view,
            )

        replace_folder(self.directory, self._store_id, write)
        self.saved_seq = self.applied_seq

    def _load(self, snap: ReadTxn) -> None:
        def read() -> tuple[BM25Index, int]:
            meta = saved_meta(self.directory, self._store_id, _META, "spec", LEXICAL_SPEC)
            with np.load(self.directory / _ARRAYS, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
            return _restored(meta, arrays), int(meta["seq"])

        loaded = load_saved(
            read,
            snap.current_seq(),
            f"the saved lexical index of {snap.collection} was not used",
            "it is built from the store",
        )
        if loaded is not None:
            self.bm25, seq = loaded
            self.applied_seq = self.saved_seq = seq

    def describe(self) -> dict[str, Any]:
        """The texts indexed and the index's memory in bytes, for ``Collection.info``."""
        b = self.bm25
        arrays = (b.slot_row.view, b.slot_len.view, b.terms.view, b.counts.view, b.df.view)
        return {"texts": b.live, "bytes": int(sum(a.nbytes for a in arrays)) * 2}


def _restored(meta: dict[str, Any], arrays: dict[str, Any]) -> BM25Index:
    """The index the saved ``meta`` and ``arrays`` hold, checked so that no saved value can
    index out of bounds."""
    bm25 = BM25Index()
    words, terms = [str(w) for w in meta["words"]], [str(t) for t in meta["terms"]]
    word_term = arrays["word_term"].astype(np.int32)
    n_slots, n_terms = len(arrays["slot_row"]), len(terms)
    if (
        len(word_term) != len(words)
        or word_term.max(initial=-1) >= n_terms
        or word_term.min(initial=0) < -1
        or len(arrays["df"]) != n_terms
        or not (len(arrays["slot_len"]) == len(arrays["slot_live"]) == len(arrays["slot_start"]))
        or len(arrays["slot_len"]) != n_slots
        or len(arrays["terms"]) != len(arrays["counts"])
        or arrays["terms"].max(initial=-1) >= n_terms
        or arrays["terms"].min(initial=0) < 0
        or np.any(np.diff(arrays["slot_start"]) < 0)
        or arrays["slot_start"].max(initial=0) > len(arrays["terms"])
    ):
        raise ValueError("the saved lexical index's arrays disagree")
    bm25.vocab.restore(words, word_term, terms)
    for name in ("df", "slot_row", "slot_len", "slot_live", "slot_start", "terms", "counts"):
        getattr(bm25, name).set(arrays[name])
    live = np.flatnonzero(bm25.slot_live.view)
    bm25.row_slot = dict(zip(bm25.slot_row.view[live].tolist(), live.tolist(), strict=True))
    bm25.total_len = int(meta["total_len"])
    slots = bm25.slot_of_postings(0, bm25.terms.n)
    bm25.main = ByTerm.of(bm25.terms.view, slots, bm25.counts.view, n_terms)
    bm25.main_end = bm25.terms.n
    return bm25


def _progress(progress: Progress | None, total: int) -> AbstractContextManager[Any]:
    if callable(progress):
        return nullcontext(progress)
    if (progress is None and total >= PROGRESS_FROM) or (progress is True and total > 0):
        from simsearch.progress import progress_bar  # rich loads only when a bar is drawn

        return progress_bar(total, "Indexing texts")
    return nullcontext(lambda n: None)
