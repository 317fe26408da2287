"""Fusion of dense and lexical scores into one ranking, and the choice of its weight.

Two fusions (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval",
TOIS 2023):

- ``convex``: each side's scores min-max normalised per query over the candidates
  (the union of both sides' best), then ``alpha * dense + (1 - alpha) * lexical``;
  a candidate one side did not match scores that side's minimum.
- ``rrf``: reciprocal rank fusion, ``sum 1 / (RRF_K + rank)`` over the sides that
  ranked the candidate (Cormack et al., 2009), with ``RRF_K = 60``.

``alpha`` is the weight of the dense side: 1 is dense alone, 0 lexical alone. Convex
fusion needs it chosen per collection (:func:`best_alpha`, ``Collection.tune_hybrid``);
where one side is useless the tuned weight moves to the other one.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError

__all__ = [
    "ALPHAS",
    "DEFAULT_ALPHA",
    "FUSIONS",
    "HYBRID_KEY",
    "RRF_K",
    "best_alpha",
    "fuse",
    "parse_hybrid",
]

F32 = npt.NDArray[np.float32]
#: The names ``search(fusion=...)`` accepts.
FUSIONS = ("convex", "rrf")
#: The reciprocal-rank constant of RRF.
RRF_K = 60
#: The dense weight of convex fusion before ``tune_hybrid`` chose one: the middle
#: (``tune_hybrid`` chose 0.55 on SciFact's train split with the default encoder, and
#: 0.15 on arcd, where the encoder fails; ``bench/results/hybrid.json``).
DEFAULT_ALPHA = 0.5
#: The weights ``tune_hybrid`` tries.
ALPHAS = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 21).tolist())
#: The spread of one side's scores, relative to their size, below which convex fusion
#: takes them for equal (about eight float32 steps).
SAME_SCORE = 1e-6
#: The meta key the tuned hybrid weight is saved under.
HYBRID_KEY = "hybrid"


def _minmax(scores: F32, valid: npt.NDArray[np.bool_]) -> F32:
    low = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = high - low
    safe = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    out = np.where(valid, (scores - np.where(np.isfinite(low), low, 0.0)) / safe, 0.0)
    # One distinct score on a side: every candidate it scored ranks equally, at the top.
    # Scores within float32 rounding of each other count as one: equal similarities come
    # out of float32 arithmetic a step or two apart, and min-max would stretch those
    # steps to the whole range, scoring one such candidate 1 and the others 0.
    scale = np.maximum(np.abs(np.where(np.isfinite(low), low, 0.0)), np.abs(high))
    same = np.isfinite(span) & (span <= SAME_SCORE * np.maximum(scale, 1e-30))
    return np.where(valid & same, 1.0, out).astype(np.float32)


def fuse(
    dense: F32,
    lexical: F32,
    dense_rank: npt.NDArray[np.int64],
    lexical_rank: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    fusion: str,
    alpha: float,
) -> F32:
    """The fused score of each candidate (``(n_queries, n)`` arrays; ``valid`` marks real
    candidates, the ranks are 0-based within each side's list, -1 where the side did not
    rank it; a lexical score of 0 is no match)."""
    if fusion == "rrf":
        parts = [np.where(r >= 0, 1.0 / (RRF_K + 1 + r), 0.0) for r in (dense_rank, lexical_rank)]
        fused = parts[0] + parts[1]
    else:
        matched = valid & (lexical > 0)
        lex = np.where(matched, _minmax(lexical, matched), 0.0)
        fused = alpha * _minmax(dense, valid) + (1.0 - alpha) * lex
    return np.where(valid, fused, -np.inf).astype(np.float32)


def best_alpha(quality: Callable[[float], float]) -> tuple[float, float]:
    """The weight of ``ALPHAS`` with the best ``quality(alpha)`` (ties: the one nearest
    0.5, then the smaller), and that quality."""
    scored = [(quality(a), a) for a in ALPHAS]
    top = max(q for q, _ in scored)
    best = min((abs(a - 0.5), a) for q, a in scored if q >= top - 1e-12)[1]
    return best, top


def parse_hybrid(text: str) -> float:
    """The dense weight saved under ``HYBRID_KEY``."""
    try:
        alpha = json.loads(text)["alpha"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(f"the saved hybrid weight is unreadable: {exc}") from None
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"the saved hybrid weight {alpha!r} is not in [0, 1]")
    return float(alpha)
