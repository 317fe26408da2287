"""Relevance a person can trust: per-query calibration of similarity scores.

Raw similarity is not comparable across queries: 0.6 may be the best match for
one query and noise for another. A calibrator maps each raw score to a number
in [0, 1] that means the same thing for every query, by a monotone map whose
shape depends on the query, so it never reorders a query's hits.

Two calibrators exist, and a collection says which one is in force:

- ``"fitted"`` (from judgements, :meth:`Collection.calibrate` with labels):
  per-query Platt scaling in the manner of the Cosine Adapter (Rossi et al.,
  CIKM 2024). The probability that a hit is relevant is
  ``sigmoid(a1(q) * (s - s_top) + a2(q) * z + b(q))`` where ``s_top`` is the
  query's best score among its ``window`` nearest items and ``z`` the score's
  standard score against the whole collection (below). The slopes
  ``a1, a2 = softplus(W h(q))`` are positive, so the map is monotone; the slopes
  and the offset ``b(q)`` come from a linear model on the query's features
  ``h(q)``: its standardised embedding and the shape of its score distribution.
  It is trained with cross-entropy on judged positives and the retrieved
  non-relevant items. Its values are probabilities of relevance.
- ``"background"`` (no labels, :meth:`Collection.calibrate` without them): each
  score is compared with the query's own score distribution over the whole
  collection, whose mean ``q . m`` and variance ``q^T C q`` come exactly from the
  collection's mean ``m`` and covariance ``C``. Relevance is ``Phi(z) ** n``
  (``z`` the standard score, ``n`` the collection size under a normal model):
  the chance that no item drawn at random from the collection would score
  this high. It is comparable across queries, but it is not a probability of
  relevance; only judgements can give that.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.types import FloatArray

__all__ = ["Background", "Calibrator", "expected_f1_prefix", "fit_calibrator"]

#: How many nearest items describe a query's score distribution.
WINDOW = 100
#: How deep ``cutoff="f1"`` looks to estimate how many relevant items a query has: a
#: query with dozens of relevant items has many beyond its first window, and an F1
#: that counts only those in it would keep too small a set.
EXPECTED_DEPTH = 1000
#: Features describing the shape of a query's window of scores.
SHAPE_FEATURES = 8
#: Standard deviations below this are treated as this (a collection of identical items).
MIN_STD = 1e-6

F64 = npt.NDArray[np.float64]


def _softplus(x: F64) -> F64:
    return np.logaddexp(0.0, x)


def _sigmoid(x: F64) -> F64:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _log_normal_cdf(z: F64) -> F64:
    """log Phi(z), precise in both tails: where Phi(z) is within a hair of 1 (from the
    upper tail's mass), where it is tiny (from its own erfc), and past where that
    underflows (the Mills-ratio asymptote), so no score maps to -inf."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    high, far = z >= 0.0, z < -37.0
    mid = ~high & ~far
    out[high] = np.log1p(-0.5 * _erfc(z[high] / math.sqrt(2.0)))
    out[mid] = np.log(0.5 * _erfc(-z[mid] / math.sqrt(2.0)))
    zf = z[far]
    out[far] = -0.5 * zf * zf - np.log(-zf) - 0.5 * math.log(2.0 * math.pi)
    return out


@dataclass(frozen=True)
class Background:
    """The mean and covariance of a collection's (search-space) vectors."""

    mean: F64
    cov: F64
    count: int

    @staticmethod
    def of(vectors: FloatArray) -> Background:
        x = np.asarray(vectors, dtype=np.float64)
        if len(x) < 2:
            raise InvalidArgumentError("calibration needs a collection of at least 2 items")
        return Background(mean=x.mean(axis=0), cov=np.cov(x, rowvar=False), count=len(x))

    def stats(self, queries: FloatArray | F64) -> tuple[F64, F64]:
        """Mean and standard deviation of each query's scores over the whole collection."""
        q = np.asarray(queries, dtype=np.float64)
        mu = q @ self.mean
        var = np.einsum("ij,jk,ik->i", q, self.cov, q)
        return mu, np.sqrt(np.maximum(var, MIN_STD**2))


@dataclass(frozen=True)
class Calibrator:
    """A fitted or background calibrator (see the module notes)."""

    kind: Literal["fitted", "background"]
    background: Background
    weights: F64 | None = None  # (n_features, 3): slopes a1, a2 and offset b
    feature_mean: F64 | None = None
    feature_scale: F64 | None = None
    threshold: float = 0.5  # the cutoff that maximised F1 on the training judgements

    # -- features -----------------------------------------------------------------------------
    def _features(self, queries: F64, window: F64) -> F64:
        """``h(q)``: the standardised query embedding and its score-distribution shape."""
        mu, sd = self.background.stats(queries)
        top = window[:, 0]

        def at(i: int) -> F64:
            return window[:, min(i, window.shape[1] - 1)]

        shape = np.stack(
            [
                (top - mu) / sd,
                (window[:, : min(10, window.shape[1])].mean(axis=1) - mu) / sd,
                (window.mean(axis=1) - mu) / sd,
                (top - at(9)) / sd,
                top,
                top - at(1),
                top - at(2),
                top - at(4),
            ],
            axis=1,
        )
        raw = np.hstack([queries, shape])
        assert self.feature_mean is not None
        assert self.feature_scale is not None
        h = (raw - self.feature_mean) / self.feature_scale
        return np.hstack([h, np.ones((len(h), 1))])

    def relevance(self, queries: FloatArray, scores: FloatArray, window: FloatArray) -> F64:
        """Relevance of ``scores`` (``(n, k)``, raw, higher is better) for each query.

        ``window`` holds each query's best ``WINDOW`` raw scores (fewer in a
        small collection), in descending order; places without an item are -inf.
        """
        q = np.asarray(queries, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        w = _fill(np.asarray(window, dtype=np.float64))
        mu, sd = self.background.stats(q)
        z = (s - mu[:, None]) / sd[:, None]
        if self.kind == "background":
            # Phi(z) ** n, computed in log space for the far tail.
            out = np.exp(self.background.count * _log_normal_cdf(z))
        else:
            out = _sigmoid(self._logits(q, s, w, z))
        return np.where(np.isfinite(s), out, 0.0)

    def _logits(self, q: F64, s: F64, window: F64, z: F64) -> F64:
        assert self.weights is not None
        h = self._features(q, window)
        params = h @ self.weights
        a1, a2, a3 = (_softplus(params[:, i])[:, None] for i in range(3))
        return a1 * (s - window[:, :1]) + a2 * z + a3 * _rank_term(s, window) + params[:, 3:]

    # -- persistence --------------------------------------------------------------------------
    def to_json(self) -> str:
        def arr(x: F64 | None) -> Any:
            return None if x is None else x.tolist()

        return json.dumps(
            {
                "kind": self.kind,
                "mean": arr(self.background.mean),
                "cov": arr(self.background.cov),
                "count": self.background.count,
                "weights": arr(self.weights),
                "feature_mean": arr(self.feature_mean),
                "feature_scale": arr(self.feature_scale),
                "threshold": self.threshold,
            }
        )

    @staticmethod
    def from_json(text: str) -> Calibrator:
        data = json.loads(text)

        def arr(x: Any) -> F64 | None:
            return None if x is None else np.asarray(x, dtype=np.float64)

        mean, cov = arr(data["mean"]), arr(data["cov"])
        assert mean is not None
        assert cov is not None
        return Calibrator(
            kind=data["kind"],
            background=Background(mean=mean, cov=cov, count=int(data["count"])),
            weights=arr(data["weights"]),
            feature_mean=arr(data["feature_mean"]),
            feature_scale=arr(data["feature_scale"]),
            threshold=float(data["threshold"]),
        )


def _rank_term(scores: F64, window: F64) -> F64:
    """-log(1 + how many of the window's scores beat each score): rises with the score."""
    ahead = (window[:, None, :] > scores[:, :, None]).sum(axis=2)
    return np.asarray(-np.log1p(ahead), dtype=np.float64)


def _fill(window: F64) -> F64:
    """Places without an item (-inf) take the lowest real score of their row."""
    finite = np.isfinite(window)
    low = np.where(finite, window, np.inf).min(axis=1, keepdims=True)
    low = np.where(np.isfinite(low), low, 0.0)
    return np.where(finite, window, low)


def fit_calibrator(
    background: Background,
    queries: FloatArray,
    window: FloatArray,
    labels: npt.NDArray[np.bool_],
    *,
    l2: float = 1e-2,
    steps: int = 1500,
    seed: int = 0,
) -> Calibrator:
    """Fit the per-query Platt model on each query's window of candidates.

    ``window`` holds each training query's best raw scores (descending) and
    ``labels`` whether each of those candidates is judged relevant. Queries
    with no relevant candidate still teach the model what irrelevance looks like.
    """
    q = np.asarray(queries, dtype=np.float64)
    w = _fill(np.asarray(window, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64)
    if q.ndim != 2 or w.shape != y.shape or len(q) != len(w):
        raise InvalidArgumentError("queries, candidate scores and labels do not line up")
    if y.sum() < 1 or y.sum() == y.size:
        raise InvalidArgumentError("calibration needs both relevant and non-relevant candidates")
    probe = Calibrator(
        kind="fitted",
        background=background,
        feature_mean=np.zeros(q.shape[1] + SHAPE_FEATURES),
        feature_scale=np.ones(q.shape[1] + SHAPE_FEATURES),
    )
    raw = probe._features(q, w)[:, :-1]
    feature_mean = raw.mean(axis=0)
    feature_scale = np.maximum(raw.std(axis=0), 1e-6)
    model = Calibrator(
        kind="fitted",
        background=background,
        feature_mean=feature_mean,
        feature_scale=feature_scale,
    )
    h = model._features(q, w)
    mu, sd = background.stats(q)
    x1 = w - w[:, :1]
    x2 = (w - mu[:, None]) / sd[:, None]
    x3 = _rank_term(w, w)
    weights = _adam(h, (x1, x2, x3), y, l2=l2, steps=steps, seed=seed)
    fitted = Calibrator(
        kind="fitted",
        background=background,
        weights=weights,
        feature_mean=feature_mean,
        feature_scale=feature_scale,
    )
    probs = fitted.relevance(queries, window, window)
    threshold = best_f1_threshold(probs, labels)
    return Calibrator(
        kind="fitted",
        background=background,
        weights=weights,
        feature_mean=feature_mean,
        feature_scale=feature_scale,
        threshold=threshold,
    )


def _adam(h: F64, inputs: tuple[F64, F64, F64], y: F64, *, l2: float, steps: int, seed: int) -> F64:
    """Full-batch Adam on mean cross-entropy plus an L2 penalty (not on the intercepts).

    The model is ``sigmoid(sum_i softplus(h . w_i) * x_i + h . w_b)``.
    """
    rng = np.random.default_rng(seed)
    n_features = h.shape[1]
    weights = rng.normal(0.0, 0.01, (n_features, 4))
    weights[-1] = [math.log(math.expm1(10.0)), math.log(math.expm1(1.0)), -3.0, -3.0]
    weights[-1, 2] = math.log(math.expm1(0.5))
    penalty = np.ones((n_features, 4))
    penalty[-1] = 0.0
    m = np.zeros_like(weights)
    v = np.zeros_like(weights)
    rate, beta1, beta2 = 0.05, 0.9, 0.999
    for step in range(1, steps + 1):
        params = h @ weights
        slopes = [_softplus(params[:, i]) for i in range(3)]
        logit = sum(a[:, None] * x for a, x in zip(slopes, inputs, strict=True)) + params[:, 3:]
        err = (_sigmoid(logit) - y) / y.size
        grad_params = np.stack(
            [(err * x).sum(axis=1) * _sigmoid(params[:, i]) for i, x in enumerate(inputs)]
            + [err.sum(axis=1)],
            axis=1,
        )
        grad = h.T @ grad_params + l2 * penalty * weights
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        weights -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    return weights


def best_f1_threshold(probs: F64, labels: npt.NDArray[np.bool_]) -> float:
    """The cutoff on relevance that maximises F1 averaged over queries.

    A query whose set is empty scores F1 0 (or 1 when it has no relevant item).
    """
    y = np.asarray(labels, dtype=bool)
    best, best_f1 = 0.5, -1.0
    for t in np.unique(np.round(probs[np.isfinite(probs)], 3)):
        f1 = float(np.mean(set_f1(probs >= t, y)))
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def set_f1(
    chosen: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_], relevant: Any = None
) -> F64:
    """Per-query F1 of the chosen sets; ``relevant`` counts each query's relevant items
    (default: those among the candidates)."""
    tp = (chosen & labels).sum(axis=1)
    n_rel = labels.sum(axis=1) if relevant is None else np.asarray(relevant)
    n_chosen = chosen.sum(axis=1)
    denom = n_chosen + n_rel
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0).astype(np.float64)


def expected_f1_prefix(
    relevance: npt.NDArray[np.float64], expected: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Per query, the prefix of hits whose expected F1, ``2 sum(p) / (n + E[relevant])``,
    is highest (the empty set when no prefix has a positive one)."""
    gains = np.cumsum(relevance, axis=1)
    sizes = np.arange(1, relevance.shape[1] + 1)
    f1 = 2 * gains / (sizes[None, :] + expected[:, None])
    best = np.where(f1.max(axis=1) > 0, f1.argmax(axis=1) + 1, 0)
    keep: npt.NDArray[np.bool_] = np.arange(relevance.shape[1])[None, :] < best[:, None]
    return keep
