"""Relevance a person can trust: calibration of similarity scores.

Raw similarity is not comparable across queries: 0.6 may be the best match for
one query and noise for another. A calibrator maps each raw score to a number
in [0, 1] by a map that is monotone in the score for every query, so it never
reorders a query's hits.

Two calibrators exist, and a collection says which one is in force:

- ``"fitted"`` (from judgements, :meth:`Collection.calibrate` with labels): a
  probability of relevance ``sigmoid(sum_j a_j(q) x_j + b(q))`` from one of four
  nested models (:mod:`simsearch.scoring.calibration_fit` chooses among them by
  cross-validation on the judgements themselves):

  - ``"global"``: one score-to-probability map for every query, Platt scaling
    ``sigmoid(a s + b)`` of the raw score ``s``;
  - ``"list"``: the score enters as ``s``, its distance to the query's best
    score ``s - s_top``, its standard score ``z`` against the whole collection
    (below) and its rank among the query's nearest ``WINDOW`` items, with
    positive global slopes and one global offset (five parameters: where a hit
    stands in its query's list, not only its raw score);
  - ``"shape"``: as ``"list"``, and the offset ``b(q)`` depends on the shape of
    the query's score list (how far its best scores stand out);
  - ``"query"``: as ``"shape"``, and the slopes ``a_j(q) = softplus(W h(q))`` and
    the offset come from a linear model on the query embedding as well (per-query
    Platt scaling in the manner of the Cosine Adapter, Rossi et al., CIKM 2024).

  Every slope is positive, so every map is monotone.
- ``"background"`` (no labels, :meth:`Collection.calibrate` without them): each
  score is compared with the query's own score distribution over the whole
  collection, whose mean ``q . m`` and variance ``q^T C q`` come exactly from the
  collection's mean ``m`` and covariance ``C``. Relevance is ``Phi(z) ** n``
  (``z`` the standard score, ``n`` the collection size under a normal model):
  the chance that no item drawn at random from the collection would score
  this high. It is comparable across queries, but it is not a probability of
  relevance; only judgements can give that.

A fitted calibrator also carries the ``cutoff="f1"`` rule that cross-validation
chose (``"score"``: the global score threshold that maximised F1 on the judged
queries; ``"probability"``: a threshold on the probability; ``"expected"``: the
prefix with the best expected F1) and the ``depth`` its judged queries' relevant
items reach, to which a search counts the relevant items it expects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.types import FloatArray

__all__ = [
    "MODELS",
    "RULES",
    "Background",
    "Calibrator",
    "expected_f1_prefix",
    "inputs_of",
]

#: How many nearest items describe a query's score distribution.
WINDOW = 100
#: How deep ``cutoff="f1"`` looks to estimate how many relevant items a query has, for
#: calibrations saved before each recorded the depth its judged relevant items reach.
EXPECTED_DEPTH = 1000
#: The deepest a calibration looks for judged relevant items.
MAX_DEPTH = 2000
#: Features describing the shape of a query's window of scores.
SHAPE_FEATURES = 8
#: Standard deviations below this are treated as this (a collection of identical items).
MIN_STD = 1e-6
#: The nested models, simplest first.
MODELS = ("global", "list", "shape", "query")
#: The ``cutoff="f1"`` rules.
RULES = ("score", "probability", "expected")

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


def raw_features(model: str, background: Background, queries: F64, window: F64) -> F64:
    """``h(q)`` before standardising: nothing for the global and list models, the shape
    of the query's window of scores, and for the query model its embedding too."""
    if model in ("global", "list"):
        return np.zeros((len(queries), 0))
    mu, sd = background.stats(queries)
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
    return np.hstack([queries, shape]) if model == "query" else shape


def inputs_of(
    model: str, background: Background, queries: F64, scores: F64, window: F64
) -> list[F64]:
    """The terms the slopes multiply, each rising with the score: ``s`` alone for the
    global model; ``s - s_top``, ``z``, the rank term and ``s`` for the others."""
    if model == "global":
        return [scores]
    mu, sd = background.stats(queries)
    z = (scores - mu[:, None]) / sd[:, None]
    return [scores - window[:, :1], z, _rank_term(scores, window), scores]


@dataclass(frozen=True)
class Calibrator:
    """A fitted or background calibrator (see the module notes)."""

    kind: Literal["fitted", "background"]
    background: Background
    weights: F64 | None = None  # (n_features + 1, n_inputs + 1): slopes, then the offset
    feature_mean: F64 | None = None
    feature_scale: F64 | None = None
    threshold: float = 0.5  # the probability cutoff that maximised F1 on the judgements
    model: str = "query"
    rule: str = "expected"
    score_threshold: float | None = None  # the raw-score cutoff of the "score" rule
    depth: int = EXPECTED_DEPTH
    report: dict[str, Any] = field(default_factory=dict)

    def features(self, queries: F64, window: F64) -> F64:
        """``h(q)``: the standardised features and a constant."""
        raw = raw_features(self.model, self.background, queries, window)
        if raw.shape[1]:
            assert self.feature_mean is not None
            assert self.feature_scale is not None
            raw = (raw - self.feature_mean) / self.feature_scale
        return np.hstack([raw, np.ones((len(raw), 1))])

    def relevance(
        self, queries: FloatArray | F64, scores: FloatArray | F64, window: FloatArray | F64
    ) -> F64:
        """Relevance of ``scores`` (``(n, k)``, raw, higher is better) for each query.

        ``window`` holds each query's best ``WINDOW`` raw scores (fewer in a
        small collection), in descending order; places without an item are -inf.
        """
        q = np.asarray(queries, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        w = fill(np.asarray(window, dtype=np.float64))
        if self.kind == "background":
            mu, sd = self.background.stats(q)
            z = (s - mu[:, None]) / sd[:, None]
            # Phi(z) ** n, computed in log space for the far tail.
            out = np.exp(self.background.count * _log_normal_cdf(z))
        else:
            out = _sigmoid(self.logits(q, np.where(np.isfinite(s), s, w[:, -1:]), w))
        return np.where(np.isfinite(s), out, 0.0)

    def logits(self, q: F64, s: F64, window: F64) -> F64:
        """The fitted model's log-odds of relevance."""
        assert self.weights is not None
        params = self.features(q, window) @ self.weights
        terms = inputs_of(self.model, self.background, q, s, window)
        out = params[:, -1:]
        for i, x in enumerate(terms[: params.shape[1] - 1]):
            out = out + _softplus(params[:, i])[:, None] * x
        return np.asarray(out, dtype=np.float64)

    def f1_keep(self, scores: F64, relevance: F64, expected: F64) -> npt.NDArray[np.bool_]:
        """Which hits ``cutoff="f1"`` keeps, by the rule cross-validation chose."""
        if self.rule == "score" and self.score_threshold is not None:
            return np.asarray(np.isfinite(scores) & (scores >= self.score_threshold))
        if self.rule == "probability":
            return np.asarray(relevance >= self.threshold)
        return expected_f1_prefix(relevance, expected)

    def summary(self) -> dict[str, Any]:
        """What was fitted (see :func:`simsearch.scoring.calibration_fit.fit_calibrator`)."""
        if self.kind == "background":
            return {"kind": "background"}
        out: dict[str, Any] = {"kind": "fitted", "model": self.model}
        out.update(self.report)
        out["threshold"] = self.threshold
        if self.score_threshold is not None:
            out["score_threshold"] = self.score_threshold
        return out

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
                "model": self.model,
                "rule": self.rule,
                "score_threshold": self.score_threshold,
                "depth": self.depth,
                "report": self.report,
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
        # Calibrations saved before the nested models were per-query models with the
        # expected-F1 rule at the fixed depth.
        return Calibrator(
            kind=data["kind"],
            background=Background(mean=mean, cov=cov, count=int(data["count"])),
            weights=arr(data["weights"]),
            feature_mean=arr(data["feature_mean"]),
            feature_scale=arr(data["feature_scale"]),
            threshold=float(data["threshold"]),
            model=str(data.get("model", "query")),
            rule=str(data.get("rule", "expected")),
            score_threshold=data.get("score_threshold"),
            depth=int(data.get("depth", EXPECTED_DEPTH)),
            report=dict(data.get("report") or {}),
        )


def _rank_term(scores: F64, window: F64) -> F64:
    """-log(1 + how many of the window's scores beat each score): rises with the score."""
    ahead = np.empty(scores.shape, dtype=np.float64)
    for i in range(len(scores)):
        # The window is sorted descending: count the entries above each score.
        ahead[i] = len(window[i]) - np.searchsorted(window[i][::-1], scores[i], side="right")
    return np.asarray(-np.log1p(ahead), dtype=np.float64)


def fill(window: F64) -> F64:
    """Places without an item (-inf) take the lowest real score of their row."""
    finite = np.isfinite(window)
    low = np.where(finite, window, np.inf).min(axis=1, keepdims=True)
    low = np.where(np.isfinite(low), low, 0.0)
    return np.where(finite, window, low)


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


def best_threshold(values: F64, labels: npt.NDArray[np.bool_], relevant: Any = None) -> float:
    """The cutoff on ``values`` (each row descending) that maximises F1 averaged over
    queries (the lowest such cutoff on ties, each candidate rounded to 3 decimals)."""
    y = np.asarray(labels, dtype=bool)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.5
    hits = np.cumsum(y, axis=1)
    n_rel = y.sum(axis=1) if relevant is None else np.asarray(relevant)
    # Prefix sizes at every candidate cutoff at once (one binary search per row, of all
    # cutoffs), as a cutoffs x queries table: each row's mean then sums a contiguous
    # row, exactly as a mean of one cutoff's F1s would.
    ascending = np.where(np.isfinite(values), values, -np.inf)[:, ::-1]
    cutoffs = np.unique(np.round(finite, 3))
    sizes = np.empty((len(cutoffs), len(y)), dtype=np.int64)
    for q, row in enumerate(ascending):
        sizes[:, q] = len(row) - np.searchsorted(row, cutoffs, side="left")
    tp = np.where(sizes > 0, hits[np.arange(len(y))[None, :], np.maximum(sizes - 1, 0)], 0)
    denom = sizes + n_rel[None, :]
    f1 = np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0), axis=1)
    return float(cutoffs[int(np.argmax(f1))])  # the lowest cutoff on ties


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
