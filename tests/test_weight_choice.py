"""The choice of convex fusion's weight from judged queries (``choose_alpha``): a fused
weight only where the per-query gains over the better single retriever exceed their
noise, else that retriever's endpoint."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from simsearch.scoring.fusion import ALPHAS, BACKOFF_SE, FAMILY_ERROR, choose_alpha

F64 = npt.NDArray[np.float64]


def table(curve: dict[float, F64]) -> dict[float, F64]:
    """Per-query qualities for every weight: ``curve``'s where given, else lexical's."""
    return {a: curve.get(a, curve[0.0]) for a in ALPHAS}


def test_a_weight_that_ties_the_better_side_goes_to_that_side() -> None:
    """Ties went toward 0.5 before: a weight that changed nothing on the judged queries
    was saved, and moved other queries' rankings at random."""
    lexical = np.array([1.0, 0.5, 0.0, 1.0])
    per = table({0.0: lexical, 1.0: np.zeros(4)})  # every weight below 1 ties lexical
    choice = choose_alpha(lambda a: per[a])
    assert choice.alpha == 0.0
    assert choice.single_alpha == 0.0
    assert choice.best_alpha == 0.0  # among equals, the one nearest the single side
    assert "no fused weight beats lexical alone" in choice.reason


def test_a_gain_within_the_noise_keeps_the_better_side() -> None:
    rng = np.random.default_rng(0)
    dense = rng.uniform(0.3, 0.9, 40)
    noisy = dense + rng.normal(0.0, 0.1, 40)
    noisy += 0.5 * (noisy - dense).std(ddof=1) / math.sqrt(40) - (noisy - dense).mean()
    per = {a: dense for a in ALPHAS} | {0.0: dense - 0.2, 0.6: noisy}
    choice = choose_alpha(lambda a: per[a])
    assert choice.best_alpha == 0.6  # the best mean, by half a standard error
    assert choice.gain == pytest.approx(0.5 * choice.standard_error)
    assert choice.alpha == 1.0  # dense, the better single retriever
    assert "within 2.79 standard errors" in choice.reason
    summary = choice.summary()
    assert summary["alpha"] == 1.0
    assert summary["better single"] == "dense"
    assert summary["best alpha"] == 0.6


def test_a_gain_beyond_the_noise_chooses_the_fused_weight() -> None:
    rng = np.random.default_rng(1)
    lexical = rng.uniform(0.3, 0.9, 40)
    fused = lexical + rng.uniform(0.0, 0.2, 40)  # most queries gain
    per = {a: lexical for a in ALPHAS} | {1.0: lexical - 0.3, 0.55: fused}
    choice = choose_alpha(lambda a: per[a])
    assert choice.alpha == 0.55
    assert choice.gain > BACKOFF_SE * choice.standard_error
    assert choice.quality == pytest.approx(fused.mean())
    assert "more than 2.79 standard errors" in choice.reason


def test_one_judged_query_never_moves_off_the_better_side() -> None:
    per = {a: np.array([0.5]) for a in ALPHAS} | {0.5: np.array([1.0])}
    choice = choose_alpha(lambda a: per[a])
    assert choice.alpha == 1.0  # a tie of the sides goes to dense
    assert choice.summary()["standard error of the gain"] is None


def paired(gain_in_se: float, n: int = 124) -> dict[float, F64]:
    """Dense, lexical far below, and alpha 0.85 ahead of dense by ``gain_in_se``
    standard errors of the paired differences (STS-B's tuning half had 124 queries)."""
    rng = np.random.default_rng(2)
    dense = rng.uniform(0.3, 0.9, n)
    step = rng.normal(0.0, 0.1, n)
    step -= step.mean()
    step += gain_in_se * step.std(ddof=1) / math.sqrt(n)
    return {a: dense for a in ALPHAS} | {0.0: dense - 0.2, 0.85: dense + step}


def test_the_threshold_is_the_family_wise_test_over_the_fused_weights() -> None:
    """The best of 19 fused weights is tested, so one weight's 5% is shared among 19."""
    fused = len(ALPHAS) - 2
    assert fused == 19
    assert FAMILY_ERROR == 0.05
    assert abs(BACKOFF_SE - 2.7905) < 1e-4
    # the normal tail beyond the threshold, times the 19 weights, is the family's 5%
    tail = 0.5 * math.erfc(BACKOFF_SE / math.sqrt(2.0))
    assert tail * fused == pytest.approx(FAMILY_ERROR)


def test_a_gain_of_two_standard_errors_from_the_best_of_nineteen_is_refused() -> None:
    """STS-B paraphrases: alpha 0.85 gained 2.2 standard errors over dense on one half of
    the queries and lost 0.008 to dense on the other; the one-standard-error rule took it."""
    choice = choose_alpha(lambda a: paired(2.2)[a])
    assert choice.best_alpha == 0.85
    assert choice.gain == pytest.approx(2.2 * choice.standard_error)
    assert choice.alpha == 1.0
    assert "dense alone is kept" in choice.reason


def test_a_gain_past_the_family_wise_threshold_is_kept() -> None:
    choice = choose_alpha(lambda a: paired(3.0)[a])
    assert choice.alpha == 0.85
    assert choice.gain == pytest.approx(3.0 * choice.standard_error)
