"""Relevance of hybrid hits: a calibration of the fused score.

A dense calibration (:mod:`simsearch.scoring.calibration`) reads raw similarities, which a
hybrid search does not rank by. ``Collection.calibrate(queries, judgements,
mode="hybrid")`` fits its own map on the score hybrid hits are ranked by: Platt scaling,
``sigmoid(a (s - mean) / std + b)`` of the fused score ``s`` with ``a > 0`` (monotone, so
it never reorders a query's hits), from each judged query's best ``DEPTH`` hybrid hits
and their labels, at the fusion and weight in force when it was fitted. It also keeps
the probability threshold with the best F1 on those queries, which ``cutoff="f1"``
applies. A search whose fusion or weight differs from the fitted ones is refused
(``min_relevance`` would then mean another thing).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.scoring.calibration import best_threshold

__all__ = ["DEPTH", "HYBRID_CALIBRATION_KEY", "HybridCalibration", "fit_hybrid"]

#: The meta key the hybrid calibration is saved under.
HYBRID_CALIBRATION_KEY = "calibration-hybrid"
#: Hybrid hits per judged query the fit reads.
DEPTH = 100
F64 = npt.NDArray[np.float64]


def _sigmoid(x: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -60, 60))), dtype=np.float64)


@dataclass(frozen=True)
class HybridCalibration:
    """A fitted map from fused score to probability of relevance."""

    slope: float
    offset: float
    mean: float
    std: float
    fusion: str
    alpha: float
    threshold: float  # the F1-best probability (``cutoff="f1"``)
    queries: int

    def relevance(self, fused: npt.NDArray[Any]) -> F64:
        x = (np.asarray(fused, dtype=np.float64) - self.mean) / self.std
        return _sigmoid(self.slope * x + self.offset)

    def check(self, fusion: str, alpha: float) -> None:
        """Refuse a search whose fused score is another one than the fitted."""
        if fusion != self.fusion or (fusion == "convex" and abs(alpha - self.alpha) > 1e-9):
            raise InvalidArgumentError(
                f"the hybrid calibration was fitted with fusion={self.fusion!r}"
                + (f", alpha={self.alpha:g}" if self.fusion == "convex" else "")
                + f"; this search asks fusion={fusion!r}"
                + (f", alpha={alpha:g}" if fusion == "convex" else "")
                + ": search with those, or calibrate again with mode='hybrid'"
            )

    def summary(self) -> dict[str, Any]:
        return {"kind": "hybrid", "fusion": self.fusion, "alpha": self.alpha,
                "threshold": self.threshold, "queries": self.queries}  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> HybridCalibration:
        try:
            data = json.loads(text)
            out = HybridCalibration(**data)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"the saved hybrid calibration is unreadable: {exc}"
            ) from None
        return out


def fit_hybrid(
    fused: F64, labels: npt.NDArray[np.bool_], relevant: list[int], fusion: str, alpha: float
) -> HybridCalibration:
    """Fit on each judged query's fused scores (``(n, depth)``, best first, ``-inf`` pads),
    their labels and each query's count of relevant items."""
    valid = np.isfinite(fused)
    s, y = fused[valid], labels[valid].astype(np.float64)
    if not len(s) or y.min() == y.max():
        raise InvalidArgumentError(
            "the judged queries' hybrid hits must hold both relevant and other items to fit a "
            "calibration"
        )
    mean, std = float(s.mean()), float(s.std()) or 1.0
    x = (s - mean) / std
    w = np.zeros(2)  # slope, offset: Newton steps on the logistic loss, lightly damped
    for _ in range(50):
        p = _sigmoid(w[0] * x + w[1])
        grad = np.array([np.sum((p - y) * x), np.sum(p - y)]) + 1e-3 * w
        h = p * (1 - p)
        hess = np.array([[np.sum(h * x * x), np.sum(h * x)], [np.sum(h * x), np.sum(h)]])
        step = np.linalg.solve(hess + 1e-3 * np.eye(2), grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    if w[0] <= 0:
        raise InvalidArgumentError(
            "on these judgements the fused score does not rank relevant hits higher: no "
            "monotone calibration fits"
        )
    probability = np.where(valid, _sigmoid(w[0] * (fused - mean) / std + w[1]), -np.inf)
    threshold = best_threshold(probability, labels & valid, relevant)
    return HybridCalibration(
        float(w[0]), float(w[1]), mean, std, fusion, float(alpha), threshold, len(relevant)
    )
