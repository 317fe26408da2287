"""Fusion of dense and lexical scores into one ranking, and the choice of its weight.

Two fusions (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval",
TOIS 2023):

- ``convex``: each side's scores min-max normalised per query over the candidates
  (the union of both sides' best), then ``alpha * dense + (1 - alpha) * lexical``;
  a candidate one side did not match scores that side's minimum.
- ``rrf``: reciprocal rank fusion, ``sum 1 / (RRF_K + rank)`` over the sides that
  ranked the candidate (Cormack et al., 2009), with ``RRF_K = 60``.

``alpha`` is the weight of the dense side: 1 is dense alone, 0 lexical alone. Convex
fusion needs it chosen per collection (:func:`choose_alpha`, ``Collection.tune_hybrid``);
a fused weight is chosen only where the judged queries show it beats the better single
retriever by more than their noise, else that retriever alone (alpha 0 or 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError

__all__ = [
    "ALPHAS",
    "BACKOFF_SE",
    "DEFAULT_ALPHA",
    "FAMILY_ERROR",
    "FUSIONS",
    "HYBRID_KEY",
    "RRF_K",
    "AlphaChoice",
    "choose_alpha",
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
#: lexical alone, 0, on arcd, where the encoder fails; ``bench/results/hybrid.json``).
DEFAULT_ALPHA = 0.5
#: The weights ``tune_hybrid`` tries.
ALPHAS = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 21).tolist())
#: The chance :func:`choose_alpha` may take a fused weight when none beats the better
#: single retriever: a one-sided test at this level for the whole family of weights tried.
FAMILY_ERROR = 0.05
#: How many standard errors of the per-query differences the best fused weight's mean
#: gain over the better single retriever must exceed to be chosen: the one-sided
#: normal quantile at ``FAMILY_ERROR`` shared among the 19 fused weights (Bonferroni),
#: about 2.79, because the weight tested is the best of 19 and its gain is the maximum
#: of 19 noisy ones.
BACKOFF_SE = NormalDist().inv_cdf(1.0 - FAMILY_ERROR / (len(ALPHAS) - 2))
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


@dataclass(frozen=True)
class AlphaChoice:
    """The weight :func:`choose_alpha` chose, and what it was chosen from (mean nDCG@10
    over the judged queries)."""

    alpha: float
    quality: float
    best_alpha: float  # the weight with the best mean quality
    best_quality: float
    single_alpha: float  # the better single retriever: 1.0 dense, 0.0 lexical
    single_quality: float
    gain: float  # mean per-query gain of ``best_alpha`` over ``single_alpha``
    standard_error: float  # of that mean (inf with fewer than two queries)
    reason: str

    def summary(self) -> dict[str, Any]:
        """The choice as JSON values (``inf`` as ``None``)."""
        se = self.standard_error
        return {
            "alpha": self.alpha,
            "ndcg@10": self.quality,
            "best alpha": self.best_alpha,
            "best ndcg@10": self.best_quality,
            "better single": "dense" if self.single_alpha == 1.0 else "lexical",
            "gain over the better single": self.gain,
            "standard error of the gain": se if math.isfinite(se) else None,
            "reason": self.reason,
        }


def choose_alpha(per_query: Callable[[float], npt.NDArray[np.float64]]) -> AlphaChoice:
    """The weight of ``ALPHAS`` to save, given each judged query's quality at a weight
    (``per_query(alpha)``, one value per query, the same queries for every weight).

    The rule: the better single retriever (alpha 1 dense or 0 lexical, by mean quality;
    a tie goes to dense) is the default, and a fused weight replaces it only when the
    judged queries support it: the best weight's mean gain over that retriever, paired
    query by query, must exceed ``BACKOFF_SE`` (about 2.79) standard errors of the mean
    of those per-query differences. Otherwise the single retriever's weight is chosen:
    ties and small gains go to the endpoint, never toward the middle.

    Why: the weight is the best of 19 fused ones tried on a few dozen or hundred
    queries, so its measured gain is the largest of 19 noisy gains and biased upward;
    per-query nDCG differences are large and noisy (most queries do not move, a few
    jump). Where one side is much weaker, a weight that merely ties the better side on
    the tuning queries still reorders other queries (on arcd, Arabic, where the English
    encoder fails, alpha 0.2, tied with lexical alone on one half of the questions,
    scored 0.012 below it on the other), hence ties go to the endpoint. A test of the
    best gain at one standard error (the one-standard-error rule of
    model selection, Hastie, Tibshirani and Friedman, *The Elements of Statistical
    Learning*, 7.10) let a weight through that lost on other queries: on STS-B
    paraphrases, where lexical search is much weaker, alpha 0.85 gained 2.2 standard
    errors on one half of the queries and lost 0.008 to dense alone on the other. The
    test here is one-sided at a 5% chance for the whole family of weights (Bonferroni
    over the 19), so a weight that only won the draw among 19 is refused. Where fusion
    helps (SciFact's 809 train queries: 0.739 at alpha 0.55 against lexical's 0.701, a
    gain of six standard errors) the best weight is kept. The cost is on small judged
    sets: a real gain smaller than 2.79 standard errors keeps the single retriever, which
    is never worse than it was alone. Among weights of equal best quality the one
    nearest the single retriever is taken.
    """
    scored = {a: np.asarray(per_query(a), dtype=np.float64) for a in ALPHAS}
    mean = {a: float(q.mean()) if len(q) else 0.0 for a, q in scored.items()}
    single = 1.0 if mean[1.0] >= mean[0.0] else 0.0
    top = max(mean.values())
    best = min((abs(a - single), a) for a in ALPHAS if mean[a] >= top - 1e-12)[1]
    diff = scored[best] - scored[single]
    n = len(diff)
    gain = float(diff.mean()) if n else 0.0
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    side = "dense" if single == 1.0 else "lexical"
    if best == single:
        alpha, reason = single, f"no fused weight beats {side} alone on the judged queries"
    elif gain > BACKOFF_SE * se:
        alpha = best
        reason = (
            f"alpha {best} gains {gain:.4f} over {side} alone, more than "
            f"{BACKOFF_SE:.2f} standard errors ({se:.4f}) of the per-query differences"
        )
    else:
        alpha = single
        reason = (
            f"alpha {best}'s gain of {gain:.4f} over {side} alone is within {BACKOFF_SE:.2f} "
            f"standard errors ({se:.4f}) of the per-query differences: {side} alone is kept"
        )
    return AlphaChoice(alpha, mean[alpha], best, mean[best], single, mean[single], gain, se, reason)


def parse_hybrid(text: str) -> float:
    """The dense weight saved under ``HYBRID_KEY``."""
    try:
        alpha = json.loads(text)["alpha"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(f"the saved hybrid weight is unreadable: {exc}") from None
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"the saved hybrid weight {alpha!r} is not in [0, 1]")
    return float(alpha)
