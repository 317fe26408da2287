"""Lexical and hybrid search over shards, merged exactly: the global phase of a text search.

One collection ranks a text search in three steps (:mod:`simsearch.search.hybrid`):
BM25 with the statistics of all its texts; each side's best ``max(POOL, k + offset)``
rows (dense and lexical) united into one candidate pool; both sides' scores fused over
that pool (min-max normalised, or by rank, :func:`simsearch.scoring.fusion.fuse`). Done
shard by shard, each step would use the shard's own statistics and pool, and the scores
of different shards would not compare. So a sharded text search runs in two rounds:

1. statistics (:func:`shard_stats`): each shard counts its live texts, their total length
   and the texts holding each query word; the driver sums them (:func:`corpus_of`);
2. sides (:func:`shard_sides`): each shard scores BM25 under those sums and sends its
   best rows of each side with raw dense and lexical scores; the driver unites the best
   of all shards per side into one pool and fuses it with the single collection's own
   code (:func:`fused_rows`, through :class:`~simsearch.search.hybrid.Pool`).

Each shard's best ``depth`` of a side hold every row of the global best ``depth`` it
owns, so the pool is one collection's pool, and so are its scores (BM25 to the last
float rounding: sums in another order). What can differ is the order of exact ties: one
collection breaks them by insertion order, a sharded one by shard, then insertion order.
For ``lexical`` and ``convex`` this only reorders equal scores (or, at the cut, which of
them make the page); ``rrf`` fuses ranks, and two items tied on one side take each
other's rank, so their fused scores can swap as well. The statistics are read a moment
before the sides: a write between the two rounds is scored with the counts of before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from simsearch.errors import ConfigMismatchError, InvalidArgumentError
from simsearch.index.bm25 import CorpusStats
from simsearch.index.keeper import IndexKeeper
from simsearch.index.tokens import query_words
from simsearch.search.hybrid import POOL, Pool, hybrid_pool, lexical_ranked, matches_of
from simsearch.search.request import SearchRequest
from simsearch.search.stages import SearchContext
from simsearch.store import SQLiteStore
from simsearch.types import FloatArray, Hit

__all__ = [
    "Candidate", "Corpus", "ShardStats", "corpus_of", "fused_rows", "query_word_set",
    "shard_sides", "shard_stats",
]  # fmt: skip


class Candidate(NamedTuple):
    """One candidate as a shard sends it."""

    id: str
    text: str | None
    metadata: str  # JSON
    dense: float  # NaN in a lexical search
    lexical: float  # 0: no query word in its text
    dense_rank: int  # 0-based, in the shard's dense list; -1: not in it
    lexical_rank: int
    row: int  # in the shard's store (ties are broken by it, as one collection does)


@dataclass(frozen=True)
class ShardStats:
    """What one shard adds to the corpus statistics, and its saved hybrid weight."""

    texts: int
    total_len: int
    df: dict[str, int]  # query word -> live texts holding its stem
    alpha: float


@dataclass(frozen=True)
class Corpus:
    """The corpus statistics of every shard together, by query word."""

    texts: int
    total_len: int
    df: dict[str, int]

    def for_index(self, vocab: Any) -> CorpusStats:
        """These statistics by the term ids of one shard's vocabulary."""
        df: dict[int, int] = {}
        for word, count in self.df.items():
            terms = vocab.terms_of([word])
            if terms:
                df[terms[0]] = count
        return CorpusStats(self.texts, self.total_len, df)


def query_word_set(texts: Sequence[str]) -> list[str]:
    """Every word the query texts look for (each text checked as one collection does)."""
    return list(dict.fromkeys(w for t in texts for w in query_words(t)))


def shard_stats(
    store: SQLiteStore, keeper: IndexKeeper, words: list[str], alpha: float
) -> ShardStats:
    """This shard's live texts, their total length and each word's document frequency."""
    with store.snapshot() as snap, keeper.reading(snap, None, lexical=True) as pinned:
        assert pinned.lexical is not None
        bm25 = pinned.lexical.bm25
        df = {}
        for word in words:
            terms = bm25.vocab.terms_of([word])
            df[word] = int(bm25.df.view[terms[0]]) if terms and terms[0] < bm25.df.n else 0
        return ShardStats(bm25.live, bm25.total_len, df, alpha)


def corpus_of(parts: Sequence[ShardStats]) -> Corpus:
    """The statistics of all these shards' texts together."""
    df: dict[str, int] = {}
    for part in parts:
        for word, count in part.df.items():
            df[word] = df.get(word, 0) + count
    return Corpus(sum(p.texts for p in parts), sum(p.total_len for p in parts), df)


def shared_alpha(request: SearchRequest, parts: Sequence[ShardStats]) -> float:
    """The dense weight of convex fusion: the request's, else the one every shard saved."""
    if request.alpha is not None:
        return request.alpha
    saved = {p.alpha for p in parts}
    if len(saved) > 1:
        raise ConfigMismatchError(
            f"the shards have saved different hybrid weights ({sorted(saved)}): give alpha"
        )
    return saved.pop()


def refuse_textless(corpus: Corpus, texts: Sequence[str], mode: str) -> None:
    """Refuse a text search of a sharded collection that holds no texts (as one would)."""
    if not corpus.texts and any(query_words(t) for t in texts):
        raise InvalidArgumentError(
            f"mode={mode!r} ranks items by their texts, and this collection holds "
            "none (only vectors): search with mode='dense'"
        )


def shard_sides(
    store: SQLiteStore,
    keeper: IndexKeeper,
    request: SearchRequest,
    texts: list[str],
    queries: FloatArray | None,
    corpus: Corpus,
) -> list[list[Candidate]]:
    """Each query's candidates on this shard: its best ``max(POOL, depth)`` rows of each
    side (a lexical search: its best ``depth`` by BM25) scored under ``corpus``."""
    with (
        store.snapshot() as snap,
        keeper.reading(snap, request.filter, lexical=True, text=request.text) as pinned,
    ):
        if pinned.config.dim is None or pinned.index is None or not len(pinned.index):
            return [[] for _ in texts]
        assert pinned.lexical is not None
        bm25 = pinned.lexical.bm25
        stats = corpus.for_index(bm25.vocab)
        matches = matches_of(bm25, texts)
        # A shard holding fewer items than asked for gives all it has, as one would.
        k = max(1, min(request.depth, len(pinned.index)))
        if request.mode == "lexical":
            ranked = lexical_ranked(bm25, matches, k, pinned.allowed, stats)
            rows = ranked.rows
            lexical = np.where(rows >= 0, ranked.scores, 0.0).astype(np.float32)
            dense = np.full(rows.shape, np.nan, dtype=np.float32)
            lexical_rank = np.where(rows >= 0, np.arange(rows.shape[1])[None, :], -1)
            dense_rank = np.full(rows.shape, -1, dtype=np.int64)
        else:
            assert queries is not None
            ctx = SearchContext(
                snap, pinned.index, pinned.config, pinned.allowed, request.knobs, request.exact,
                pinned.exact_flat, pinned.window,
            )  # fmt: skip
            pool = hybrid_pool(ctx, snap, bm25, queries, matches, max(POOL, k), stats)
            rows, dense, lexical = pool.rows, pool.dense, pool.lexical
            dense_rank, lexical_rank = pool.dense_rank, pool.lexical_rank
        described = snap.describe_rows(np.unique(rows[rows >= 0]).tolist())
    out: list[list[Candidate]] = []
    for q in range(len(texts)):
        found = []
        for j, row in enumerate(rows[q].tolist()):
            if row >= 0:
                id_, text, meta = described[row]
                d, lex = float(dense[q, j]), float(lexical[q, j])
                ranks = int(dense_rank[q, j]), int(lexical_rank[q, j])
                found.append(Candidate(id_, text, meta, d, lex, *ranks, row))
        out.append(found)
    return out


def _hit(c: Candidate, score: float, lexical_only: bool) -> Hit:
    meta = json.loads(c.metadata) if c.metadata != "{}" else {}
    dense = None if lexical_only else c.dense
    return Hit(c.id, score, meta, c.text, None, dense_score=dense, lexical_score=c.lexical)


def _side(pool: list[tuple[int, Candidate]], lexical: bool) -> list[int]:
    """The positions in ``pool`` of one side's list over every shard, best first (ties:
    by shard, then by the shard's own rank)."""

    def sided(c: Candidate) -> tuple[float, int]:
        return (c.lexical, c.lexical_rank) if lexical else (c.dense, c.dense_rank)

    on = [at for at, (_, c) in enumerate(pool) if sided(c)[1] >= 0]
    return sorted(on, key=lambda at: (-sided(pool[at][1])[0], pool[at][0], sided(pool[at][1])[1]))


def fused_rows(
    per_shard: Sequence[Sequence[Sequence[Candidate]]], request: SearchRequest, alpha: float
) -> list[list[Hit]]:
    """Each query's hits ``offset .. offset + k`` over all shards' candidates, ranked as one
    collection ranks its own (``per_shard[s][q]``: shard ``s``'s candidates for query ``q``)."""
    lexical_only = request.mode == "lexical"
    depth, skip = request.depth, request.offset
    out: list[list[Hit]] = []
    for q in range(len(per_shard[0]) if per_shard else 0):
        pool = [(s, c) for s, shard in enumerate(per_shard) for c in shard[q]]
        if lexical_only:
            best = [pool[at][1] for at in _side(pool, True)[skip:depth]]
            out.append([_hit(c, c.lexical, True) for c in best])
            continue
        width = max(POOL, depth)
        dense_list, lexical_list = _side(pool, False)[:width], _side(pool, True)[:width]
        dense_rank = {at: r for r, at in enumerate(dense_list)}
        lexical_rank = {at: r for r, at in enumerate(lexical_list)}
        # The pool in shard order, then row order: the fusion breaks ties by the place in
        # it, as one collection's breaks them by row.
        united = sorted(
            set(dense_list) | set(lexical_list), key=lambda at: (pool[at][0], pool[at][1].row)
        )
        chosen = [pool[at][1] for at in united]
        pad = max(1, len(united)) - len(united)
        fused = (
            Pool(
                np.array([list(range(len(united))) + [-1] * pad], dtype=np.int64),
                np.array([[c.dense for c in chosen] + [0.0] * pad], dtype=np.float32),
                np.array([[c.lexical for c in chosen] + [0.0] * pad], dtype=np.float32),
                np.array([[dense_rank.get(at, -1) for at in united] + [-1] * pad], dtype=np.int64),
                np.array(
                    [[lexical_rank.get(at, -1) for at in united] + [-1] * pad], dtype=np.int64
                ),
            )
            .ranked(request.fusion, alpha, depth)
            .ranked
        )
        hits = []
        for j in range(skip, fused.rows.shape[1]):
            r = int(fused.rows[0, j])
            if r < 0:
                break
            hits.append(_hit(chosen[r], float(fused.scores[0, j]), False))
        out.append(hits)
    return out
