"""Choosing the dense weight of hybrid search from judged queries (``Collection.tune_hybrid``).

Each judged query's hybrid candidates (:class:`~simsearch.search.hybrid.Pool`) are
gathered once; every weight of ``ALPHAS`` then only fuses them again, each query's
nDCG@10 is measured at each weight, and the weight
:func:`~simsearch.scoring.fusion.choose_alpha` picks (the best one where it beats the
better single retriever by more than the per-query noise, else that retriever alone)
is saved under ``HYBRID_KEY`` with the reason, where every later convex hybrid search
without an ``alpha`` of its own reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.index.keeper import IndexKeeper
from simsearch.multivector.refuse import refuse_multivector
from simsearch.scoring.fusion import HYBRID_KEY, choose_alpha
from simsearch.scoring.hybrid_calibration import DEPTH, HYBRID_CALIBRATION_KEY, fit_hybrid
from simsearch.scoring.relevance import relevant_ids
from simsearch.search.hybrid import POOL, Pool, hybrid_pool, matches_of
from simsearch.search.request import DEFAULT_KNOBS
from simsearch.search.runner import Searcher, query_texts
from simsearch.search.stages import SearchContext
from simsearch.store import SQLiteStore
from simsearch.types import FloatArray

__all__ = [
    "TUNE_DEPTH",
    "calibrate_hybrid",
    "calibrate_hybrid_of",
    "check_tuning",
    "judged_pool",
    "judged_quality",
    "tune_hybrid",
]

#: The rank depth of the quality a weight is chosen by (nDCG@10).
TUNE_DEPTH = 10


def _ndcg(ids: Sequence[str | None], relevant: set[str]) -> float:
    gain = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ids[:TUNE_DEPTH]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), TUNE_DEPTH)))
    return gain / ideal if ideal else 0.0


def check_tuning(queries: Any, judgements: Any) -> list[str]:
    """The query texts of ``tune_hybrid``, checked against their judgements."""
    texts = query_texts(queries)
    if texts is None:
        raise InvalidArgumentError("tune_hybrid needs the queries as a list of strings")
    if isinstance(judgements, str | bytes) or not isinstance(judgements, Sequence):
        raise InvalidArgumentError("judgements must be a list with one entry per query")
    if len(judgements) != len(texts):
        raise InvalidArgumentError(f"got {len(texts)} queries but {len(judgements)} judgements")
    return texts


def judged_pool(
    store: SQLiteStore,
    keeper: IndexKeeper,
    texts: list[str],
    queries: FloatArray,
    relevant: list[set[str]],
) -> tuple[Pool, dict[int, Any]]:
    """Each judged query's hybrid candidates, and the descriptions of their rows."""
    if not any(relevant):
        raise InvalidArgumentError("no judgement names a relevant item: nothing to tune on")
    with store.snapshot() as snap, keeper.reading(snap, lexical=True) as pinned:
        config = pinned.config
        refuse_multivector(config, "hybrid tuning")
        if config.dim is None or pinned.index is None or len(pinned.index) == 0:
            raise InvalidArgumentError("the collection is empty: add items first")
        assert pinned.lexical is not None
        bm25 = pinned.lexical.bm25
        if not bm25.live:
            raise InvalidArgumentError("the collection holds no texts: hybrid search needs them")
        ctx = SearchContext(snap, pinned.index, config, None, DEFAULT_KNOBS, False)
        pool = hybrid_pool(ctx, snap, bm25, queries, matches_of(bm25, texts), POOL)
        described = snap.describe_rows(np.unique(pool.rows[pool.rows >= 0]).tolist())
    return pool, described


def calibrate_hybrid(
    store: SQLiteStore,
    keeper: IndexKeeper,
    texts: list[str],
    queries: FloatArray,
    judgements: Sequence[Any],
    fusion: str,
    alpha: float,
) -> dict[str, Any]:
    """Fit and save the calibration of the fused score at ``fusion`` and ``alpha``
    (:mod:`simsearch.scoring.hybrid_calibration`); returns its summary."""
    relevant = [relevant_ids(j) for j in judgements]
    pool, described = judged_pool(store, keeper, texts, queries, relevant)
    ranked = pool.ranked(fusion, alpha, DEPTH).ranked
    rows = ranked.rows
    labels = np.array(
        [
            [r >= 0 and described[r][0] in rel for r in row]
            for row, rel in zip(rows.tolist(), relevant, strict=True)
        ],
        dtype=bool,
    )
    fused = np.where(rows >= 0, ranked.scores.astype(np.float64), -np.inf)
    judged = [i for i, rel in enumerate(relevant) if rel]
    fitted = fit_hybrid(
        fused[judged], labels[judged], [len(relevant[i]) for i in judged], fusion, alpha
    )
    with store.write() as txn:
        txn.save_meta(HYBRID_CALIBRATION_KEY, fitted.to_json())
    return fitted.summary()


def calibrate_hybrid_of(
    keeper: IndexKeeper, searcher: Searcher, mode: Any, queries: Any, judgements: Any
) -> dict[str, Any]:
    """``Collection.calibrate(..., mode="hybrid")``: checked, queries embedded, fitted at
    the saved weight (convex fusion)."""
    if mode != "hybrid":
        raise InvalidArgumentError(f"calibrate's mode must be 'dense' or 'hybrid', got {mode!r}")
    if queries is None:
        raise InvalidArgumentError("a hybrid calibration is fitted from judged text queries")
    texts = check_tuning(queries, judgements)
    vectors = searcher.query_vectors(texts, None)
    alpha = searcher.saved_alpha()
    return calibrate_hybrid(searcher.store, keeper, texts, vectors, judgements, "convex", alpha)


def judged_quality(
    store: SQLiteStore,
    keeper: IndexKeeper,
    texts: list[str],
    queries: FloatArray,
    relevant: list[set[str]],
) -> Callable[[float], npt.NDArray[np.float64]]:
    """Each judged query's nDCG@10 under convex fusion at a weight (the queries that
    name a relevant item, in order), from candidates gathered once."""
    pool, described = judged_pool(store, keeper, texts, queries, relevant)

    def per_query(alpha: float) -> npt.NDArray[np.float64]:
        rows = pool.ranked("convex", alpha, TUNE_DEPTH).ranked.rows.tolist()
        return np.array(
            [
                _ndcg([described[r][0] if r >= 0 else None for r in row], rel)
                for row, rel in zip(rows, relevant, strict=True)
                if rel
            ],
            dtype=np.float64,
        )

    return per_query


def tune_hybrid(
    store: SQLiteStore,
    keeper: IndexKeeper,
    texts: list[str],
    queries: FloatArray,
    judgements: Sequence[Any],
) -> dict[str, Any]:
    """Choose and save the convex weight for ``texts`` (embedded as ``queries``) and their
    ``judgements`` by :func:`~simsearch.scoring.fusion.choose_alpha`'s rule: the best
    weight by mean nDCG@10 only where its gain over the better single retriever exceeds
    ``BACKOFF_SE`` (about 2.79) standard errors of the paired per-query differences, a
    one-sided test at 5% for the 19 fused weights together, else that retriever's
    endpoint (0 or 1). Returns the weight, its nDCG@10, the best weight's, the nDCG@10
    of dense (alpha 1) and lexical (alpha 0) alone on the same queries, the gain and its
    standard error, and the reason in words; the weight and the reason are saved."""
    relevant = [relevant_ids(j) for j in judgements]
    per_query = judged_quality(store, keeper, texts, queries, relevant)
    choice = choose_alpha(per_query)
    summary = choice.summary()
    with store.write() as txn:
        txn.save_meta(
            HYBRID_KEY,
            json.dumps({"alpha": choice.alpha, "ndcg@10": choice.quality, "reason": choice.reason}),
        )
    summary["dense ndcg@10"] = float(per_query(1.0).mean())
    summary["lexical ndcg@10"] = float(per_query(0.0).mean())
    summary["queries"] = sum(1 for r in relevant if r)
    return summary
