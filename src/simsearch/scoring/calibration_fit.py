"""Fitting a calibrator from judged queries: a choice among nested models by
cross-validation, so that it backs off with the evidence it has.

Why a choice among nested models, and why by cross-validation. The four models
of :mod:`simsearch.scoring.calibration` are nested: ``"global"`` (one Platt map
of the raw score, two parameters) is ``"list"`` (five) with its list terms at
zero, which is ``"shape"`` with its shape-dependent offset at zero, which is
``"query"`` with its embedding weights at zero. With twenty judged
queries the query model has hundreds of weights to learn from twenty score
lists, and a penalty strong enough to keep it from overfitting there is far too
strong with eight hundred. Instead of guessing the amount of shrinkage from the
count of queries, ``calibrate`` measures what each model is worth on the
judgements themselves: the judged queries are split into folds, each model is
fitted on all folds but one and scored on the one left out, and the held-out
log-likelihood (cross-entropy per candidate) decides. The one-standard-error
rule (Breiman et al.) resolves near-ties toward the simpler model: a richer
model is chosen only when its held-out cross-entropy beats the simplest
model's by more than one standard error of the per-query difference, so with
weak evidence the fitted model *is* the global map.

The ``cutoff="f1"`` rule is chosen the same way, on held-out F1: the global
score threshold tuned on the training folds (what a user would get from one
global threshold), a threshold on the chosen model's probability, and the
prefix with the best expected F1 under those probabilities. A rule other than
the global threshold is taken only when its held-out F1 beats the threshold's
by more than one standard error of the per-query difference: the uncertainty
of the probabilities, as the folds measure it, decides how far the cutoff may
depart from the global threshold's behaviour.

The candidates are every query's nearest items down to the depth its judged
relevant items reach (the 90th percentile of their ranks, at least ``WINDOW``,
at most ``MAX_DEPTH``), so the probabilities are calibrated over the candidates
a search scores; past the first ``WINDOW`` the candidates are sampled evenly and
weighted by the sampling rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.scoring.calibration import (
    MAX_DEPTH,
    MODELS,
    WINDOW,
    Background,
    Calibrator,
    _sigmoid,
    best_threshold,
    expected_f1_prefix,
    fill,
    inputs_of,
    raw_features,
    set_f1,
)
from simsearch.types import FloatArray

__all__ = ["Judged", "fit_calibrator"]

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

#: Folds of the cross-validation inside ``calibrate`` (fewer with fewer queries).
FOLDS = 5
#: The per-model L2 penalty on the standardised features' weights (not the constants).
L2 = {"global": 0.0, "list": 0.0, "shape": 1e-3, "query": 1e-2}
#: Adam steps of the shape and query models.
STEPS = 1200
#: Candidates sampled per query past the first window.
DEEP_SAMPLE = WINDOW
#: Bins of the expected calibration error in the report.
ECE_BINS = 10


@dataclass(frozen=True)
class Judged:
    """Judged queries with their candidates: query vectors (search space), each query's
    candidate scores (descending, ``-inf`` where no item), whether each candidate is
    relevant, and how many relevant items each query has in all."""

    queries: F64
    scores: F64
    labels: Bools
    relevant: npt.NDArray[np.int64]

    def take(self, rows: npt.NDArray[np.int64]) -> Judged:
        return Judged(self.queries[rows], self.scores[rows], self.labels[rows], self.relevant[rows])


def depth_of(labels: Bools, available: int) -> int:
    """How deep the judged relevant items reach: the 90th percentile of their ranks,
    rounded up to a hundred, at least ``WINDOW`` and at most what was searched."""
    ranks = np.nonzero(labels)[1]
    reach = int(np.percentile(ranks, 90)) + 1 if len(ranks) else WINDOW
    return max(min(WINDOW, available), min(available, MAX_DEPTH, 100 * math.ceil(reach / 100)))


def _columns(depth: int) -> tuple[npt.NDArray[np.int64], F64]:
    """The candidate ranks a fit uses and each one's weight: the first window, then an
    even sample of the rest."""
    head = np.arange(min(WINDOW, depth))
    if depth <= WINDOW + DEEP_SAMPLE:
        return np.arange(depth), np.ones(depth)
    step = (depth - WINDOW) / DEEP_SAMPLE
    deep = WINDOW + np.floor(np.arange(DEEP_SAMPLE) * step).astype(np.int64)
    return np.concatenate([head, deep]), np.concatenate(
        [np.ones(len(head)), np.full(len(deep), step)]
    )


def _platt(x: F64, y: F64, w: F64) -> tuple[float, float]:
    """Weighted Platt scaling ``sigmoid(a x + b)`` by Newton's method; the slope stays
    positive (a tiny ridge keeps separable data finite)."""
    a, b = 1.0, float(np.log((np.sum(w * y) + 0.5) / (np.sum(w * (1 - y)) + 0.5)))
    total = w.sum()
    for _ in range(100):
        p = _sigmoid(a * x + b)
        r = w * (p - y) / total
        g = np.array([np.sum(r * x) + 1e-6 * a, np.sum(r)])
        c = w * p * (1 - p) / total
        hess = np.array([[np.sum(c * x * x) + 1e-6, np.sum(c * x)], [np.sum(c * x), np.sum(c)]])
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), g)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-9:
            break
    return max(a, 1e-6), b


def _adam(h: F64, inputs: list[F64], y: F64, w: F64, *, l2: float, seed: int) -> F64:
    """Full-batch Adam on weighted mean cross-entropy plus an L2 penalty on the
    standardised features' weights (not the constants).

    The model is ``sigmoid(sum_i softplus(h . w_i) * x_i + h . w_b)``.
    """
    rng = np.random.default_rng(seed)
    n_features, n_in = h.shape[1], len(inputs)
    weights = rng.normal(0.0, 0.01, (n_features, n_in + 1))
    start = [10.0, 1.0, 0.5, 0.1]
    weights[-1, :n_in] = [math.log(math.expm1(v)) for v in start[:n_in]]
    weights[-1, n_in] = -3.0
    penalty = np.ones_like(weights)
    penalty[-1] = 0.0
    m, v = np.zeros_like(weights), np.zeros_like(weights)
    rate, beta1, beta2 = 0.05, 0.9, 0.999
    total = w.sum()
    for step in range(1, STEPS + 1):
        params = h @ weights
        logit = params[:, n_in:].copy()
        for i, x in enumerate(inputs):
            logit = logit + np.logaddexp(0.0, params[:, i])[:, None] * x
        err = w * (_sigmoid(logit) - y) / total
        grad_params = np.stack(
            [(err * x).sum(axis=1) * _sigmoid(params[:, i]) for i, x in enumerate(inputs)]
            + [err.sum(axis=1)],
            axis=1,
        )
        grad = h.T @ grad_params + l2 * penalty * weights
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        weights -= rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return weights


def fit_model(
    model: str, background: Background, data: Judged, depth: int, seed: int
) -> Calibrator:
    """One model fitted on ``data``'s candidates to ``depth``."""
    cols, col_w = _columns(depth)
    s = fill(data.scores)
    window = s[:, :WINDOW]
    x_s, y = s[:, cols], data.labels[:, cols].astype(np.float64)
    w = np.broadcast_to(col_w, x_s.shape) * np.isfinite(data.scores[:, cols])
    raw = raw_features(model, background, data.queries, window)
    mean, scale = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
    probe = Calibrator(
        kind="fitted", background=background, feature_mean=mean, feature_scale=scale, model=model
    )
    if model == "global":
        a, b = _platt(x_s.ravel(), y.ravel(), w.ravel())
        weights = np.array([[math.log(math.expm1(min(a, 700.0))) if a < 30 else a, b]])
    else:
        inputs = inputs_of(model, background, data.queries, x_s, window)
        weights = _adam(probe.features(data.queries, window), inputs, y, w, l2=L2[model], seed=seed)
    return replace(probe, weights=weights, depth=depth)


def _probs(cal: Calibrator, data: Judged, depth: int) -> F64:
    s = data.scores[:, :depth]
    return cal.relevance(data.queries, s, data.scores[:, :WINDOW])


def _cross_entropy(p: F64, data: Judged, depth: int) -> F64:
    """Per-query weighted cross-entropy over the candidates a fit uses."""
    cols, col_w = _columns(depth)
    y = data.labels[:, cols]
    q = np.clip(p[:, cols], 1e-12, 1 - 1e-12)
    w = col_w * np.isfinite(data.scores[:, cols])
    ce = -np.where(y, np.log(q), np.log(1 - q)) * w
    return np.asarray(ce.sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12), dtype=np.float64)


def _ece(p: F64, y: Bools) -> float:
    bins = np.clip((p * ECE_BINS).astype(int), 0, ECE_BINS - 1)
    gaps = [abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(ECE_BINS)]
    return float(sum(gaps) / max(p.size, 1))


def _pick(losses: dict[str, F64], better: bool) -> str:
    """The first (simplest) entry within one standard error of the best mean, per query
    paired differences; ``better``: larger is better."""
    sign = -1.0 if better else 1.0
    means = {k: float(sign * v.mean()) for k, v in losses.items()}
    best = min(means, key=lambda k: means[k])
    for name, values in losses.items():
        diff = sign * (values - losses[best])
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
        if means[name] - means[best] <= se:
            return name
    return best


def _folds(n: int, seed: int) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Query rows to fit on and to hold out, per fold (none with a single query)."""
    folds = min(FOLDS, n)
    if folds < 2:
        return []
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def _thresholds(cal: Calibrator, data: Judged, depth: int) -> tuple[float, float]:
    """The F1-best global score threshold and probability threshold on ``data``."""
    judged = data.relevant > 0
    labels, relevant = data.labels[judged, :depth], data.relevant[judged]
    t_score = best_threshold(fill(data.scores[judged, :depth]), labels, relevant)
    t_prob = best_threshold(_probs(cal, data, depth)[judged], labels, relevant)
    return t_score, t_prob


def _rule_f1(held: Judged, p: F64, depth: int, t_score: float, t_prob: float) -> dict[str, F64]:
    """Per-query F1 on ``held`` of each ``cutoff="f1"`` rule."""
    s, y = held.scores[:, :depth], held.labels[:, :depth]
    return {
        "score": set_f1(np.isfinite(s) & (s >= t_score), y, held.relevant),
        "probability": set_f1(p >= t_prob, y, held.relevant),
        "expected": set_f1(expected_f1_prefix(p, p.sum(axis=1)), y, held.relevant),
    }


RULE_NAMES = {
    "score": "global score threshold",
    "probability": "probability threshold",
    "expected": "expected F1",
}


def fit_calibrator(background: Background, data: Judged, *, seed: int = 0) -> Calibrator:
    """Choose, fit and report the calibrator for ``data`` (see the module notes)."""
    if data.labels.sum() < 1 or data.labels.all():
        raise InvalidArgumentError("calibration needs both relevant and non-relevant candidates")
    n = len(data.queries)
    depth = depth_of(data.labels, data.scores.shape[1])
    folds = [(a, b) for a, b in _folds(n, seed) if data.labels[a].any()]
    loss = {m: np.zeros(n) for m in MODELS}
    held_p = {m: np.zeros((n, depth)) for m in MODELS}
    fitted: dict[str, list[Calibrator]] = {m: [] for m in MODELS}
    for fit_rows, held_rows in folds:
        fit, held = data.take(fit_rows), data.take(held_rows)
        for m in MODELS:
            cal = fit_model(m, background, fit, depth, seed)
            fitted[m].append(cal)
            held_p[m][held_rows] = _probs(cal, held, depth)
            loss[m][held_rows] = _cross_entropy(held_p[m][held_rows], held, depth)
    covered = np.zeros(n, dtype=bool)
    for _, held_rows in folds:
        covered[held_rows] = True
    model = _pick({m: v[covered] for m, v in loss.items()}, better=False) if folds else "global"
    final = fit_model(model, background, data, depth, seed)
    # The cutoff rules, cross-validated with the chosen model.
    f1 = {r: np.zeros(n) for r in RULE_NAMES}
    scored = np.zeros(n, dtype=bool)
    for (fit_rows, held_rows), cal in zip(folds, fitted[model], strict=True):
        fit, held = data.take(fit_rows), data.take(held_rows)
        if not (fit.relevant > 0).any():
            continue
        t_score, t_prob = _thresholds(cal, fit, depth)
        for r, values in _rule_f1(held, held_p[model][held_rows], depth, t_score, t_prob).items():
            f1[r][held_rows] = values
        scored[held_rows] = True
    scored &= data.relevant > 0
    judged_f1 = {r: v[scored] for r, v in f1.items()}
    rule = _pick(judged_f1, better=True) if scored.sum() > 1 else "score"
    t_score, t_prob = _thresholds(final, data, depth)
    report = _report(model, rule, depth, len(folds), loss, judged_f1, held_p, data, covered)
    return replace(final, threshold=t_prob, rule=rule, score_threshold=t_score, report=report)


def _report(
    model: str,
    rule: str,
    depth: int,
    folds: int,
    loss: dict[str, F64],
    f1: dict[str, F64],
    held_p: dict[str, F64],
    data: Judged,
    covered: Bools,
) -> dict[str, Any]:
    """What was fitted, and its cross-validated log-loss, F1 and ECE (over each query's
    candidates to ``depth``) against the global map and the global threshold."""
    top = np.isfinite(data.scores[:, :depth]) & covered[:, None]
    y = data.labels[:, :depth][top]

    def ece(m: str) -> float | None:
        return round(_ece(held_p[m][top], y), 4) if top.any() else None

    def mean(v: F64) -> float | None:
        return round(float(v.mean()), 4) if len(v) else None

    return {
        "model": model,
        "queries": len(data.queries),
        "relevant_in_window": int(data.labels[:, :depth].sum()),
        "cutoff_rule": RULE_NAMES[rule],
        "depth": depth,
        "folds": folds,
        "cross_validation": {
            "log_loss": {m: mean(v[covered]) for m, v in loss.items()},
            "f1": {"global threshold": mean(f1["score"]), "cutoff=f1": mean(f1[rule])},
            "ece": {"global map": ece("global"), "fitted": ece(model)},
        },
    }


def judged_of(queries: FloatArray, scores: FloatArray, labels: Bools, relevant: Any) -> Judged:
    """A :class:`Judged` from arrays, checked to line up."""
    q = np.asarray(queries, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    r = np.asarray(relevant, dtype=np.int64)
    if q.ndim != 2 or s.shape != y.shape or len(q) != len(s) or r.shape != (len(q),):
        raise InvalidArgumentError("queries, candidate scores and labels do not line up")
    return Judged(q, s, y, np.maximum(r, y.sum(axis=1)))
