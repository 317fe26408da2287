"""Compatibility maps between two embedding spaces, fitted on a small paired sample.

When a collection was embedded with one model and queries come from another,
a linear map fitted on a few thousand items embedded by both carries the new
model's vectors into the old space, so the old index answers at once (section
6 of the method notes). Every map centres both sides first: some models put
all vectors in a narrow cone, and an uncentred orthogonal map loses much of
the quality there.

- ``procrustes``: the orthogonal (semi-orthogonal when the dimensions differ)
  rotation that best aligns the centred samples.
- ``ridge``: least squares with an L2 penalty.
- ``lowrank``: the ridge map truncated to its leading directions (reduced-rank
  regression), for small samples in large dimensions.
- ``auto``: each is fitted on 80% of the sample and the one whose mapped
  held-out vectors find their own counterpart most often among their 10
  nearest old vectors is refitted on the whole sample.

A :class:`Migration` is the model upgrade a collection has in progress: the
encoder it moves to (or none, when the user brings the new model's vectors),
the fitted map, and how much of a text query the mapped new-model vector makes
up, as saved beside the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.config import EncoderSpec
from simsearch.encoders import Encoder, get_encoder
from simsearch.errors import ConfigMismatchError, DimensionMismatchError, InvalidArgumentError
from simsearch.types import FloatArray

__all__ = [
    "DEFAULT_BLEND",
    "METHODS",
    "CompatibilityMap",
    "Migration",
    "fit_map",
    "migration_encoder",
]

METHODS = ("auto", "procrustes", "ridge", "lowrank")
#: Ridge penalty relative to the mean variance of the new vectors.
RIDGE_ALPHA = 0.1
HELD_OUT = 0.2
#: During an upgrade to a new encoder, a text query is the old encoder's vector blended
#: with the new encoder's mapped vector, this much of the latter. A map fitted on a few
#: thousand items carries only part of the old geometry (on SciFact, e5 queries mapped
#: into MiniLM's space keep about three quarters of its nDCG@10), while the blend keeps
#: the old quality and adds some of the new model's. The largest weight that keeps three
#: model pairs at 0.97x of the old quality or more on SciFact's train queries
#: (bench/bench_migration_ceiling.py sweeps it; bench_migration.py has the test figures).
DEFAULT_BLEND = 0.25

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CompatibilityMap:
    """``y = (x - source_mean) @ weights + target_mean``, from the new space to the old."""

    method: str
    source_mean: F64
    target_mean: F64
    weights: F64
    held_out_recall: float | None = None

    @property
    def source_dim(self) -> int:
        return int(self.weights.shape[0])

    @property
    def target_dim(self) -> int:
        return int(self.weights.shape[1])

    def __call__(self, vectors: FloatArray | F64) -> FloatArray:
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.source_dim:
            raise InvalidArgumentError(
                f"the map takes {self.source_dim}-d vectors, got shape {tuple(x.shape)}"
            )
        return ((x - self.source_mean) @ self.weights + self.target_mean).astype(np.float32)

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "source_mean": self.source_mean.tolist(),
                "target_mean": self.target_mean.tolist(),
                "weights": self.weights.tolist(),
                "held_out_recall": self.held_out_recall,
            }
        )

    @staticmethod
    def from_json(text: str) -> CompatibilityMap:
        data: dict[str, Any] = json.loads(text)
        return CompatibilityMap(
            method=str(data["method"]),
            source_mean=np.asarray(data["source_mean"], dtype=np.float64),
            target_mean=np.asarray(data["target_mean"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            held_out_recall=data.get("held_out_recall"),
        )


def _unit(x: F64) -> F64:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def _fit(method: str, x: F64, y: F64) -> CompatibilityMap:
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    if method == "procrustes":
        u, _, vt = np.linalg.svd(xc.T @ yc, full_matrices=False)
        weights = u @ vt
        # A rotation keeps the new space's scale; match the old one's spread.
        weights *= float(np.linalg.norm(yc)) / max(float(np.linalg.norm(xc @ weights)), 1e-12)
    else:
        penalty = RIDGE_ALPHA * float(np.mean(np.sum(xc**2, axis=0)))
        gram = xc.T @ xc + penalty * np.eye(x.shape[1])
        weights = np.linalg.solve(gram, xc.T @ yc)
        if method == "lowrank":
            rank = max(1, min(x.shape[1], y.shape[1]) // 2)
            _, _, vt = np.linalg.svd(xc @ weights, full_matrices=False)
            weights = weights @ vt[:rank].T @ vt[:rank]
    return CompatibilityMap(method, mx, my, np.asarray(weights, dtype=np.float64))


def _self_recall(mapping: CompatibilityMap, x: F64, y: F64, k: int = 10) -> float:
    """Share of mapped ``x`` whose own ``y`` is among their ``k`` nearest ``y`` (cosine)."""
    mapped = _unit(mapping(x).astype(np.float64))
    sims = mapped @ _unit(y).T
    k = min(k, len(y))
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return float(np.mean([i in row for i, row in enumerate(top)]))


def fit_map(
    new_vectors: FloatArray, old_vectors: FloatArray, *, method: str = "auto", seed: int = 0
) -> CompatibilityMap:
    """A map from the new space into the old, fitted on paired rows of a sample."""
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    x = np.asarray(new_vectors, dtype=np.float64)
    y = np.asarray(old_vectors, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InvalidArgumentError("give as many new vectors as old ones, each a 2-d batch")
    if len(x) < 10:
        raise InvalidArgumentError(f"a map needs at least 10 paired items, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidArgumentError("the paired vectors hold NaN or infinite values")
    if method != "auto":
        return _fit(method, x, y)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(len(x) * HELD_OUT))
    test, train = order[:cut], order[cut:]
    scored = {m: _self_recall(_fit(m, x[train], y[train]), x[test], y[test]) for m in METHODS[1:]}
    best = max(scored, key=lambda m: scored[m])
    chosen = _fit(best, x, y)
    return CompatibilityMap(
        chosen.method, chosen.source_mean, chosen.target_mean, chosen.weights, scored[best]
    )


@dataclass(frozen=True)
class Migration:
    """A model upgrade in progress: the encoder it moves to (``None`` when the user
    brings the new model's vectors), the map into the old space, the weight of the
    mapped new-model vector in a text query (``blend``), and the saved text they were
    read from (compared to notice a change)."""

    to: EncoderSpec | None
    mapping: CompatibilityMap
    text: str
    blend: float = DEFAULT_BLEND

    @property
    def dim(self) -> int:
        """The dimension of the new model's vectors."""
        return self.mapping.source_dim

    def map_new(self, vectors: FloatArray, what: str = "vectors") -> FloatArray:
        """The new model's ``vectors``, checked to be :attr:`dim`-d, mapped into the old space."""
        if vectors.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"{what} have dimension {vectors.shape[1]}; during this model upgrade they are "
                f"the new model's {self.dim}-d vectors"
            )
        return self.mapping(vectors)

    @staticmethod
    def new(
        to: EncoderSpec | None, mapping: CompatibilityMap, blend: float = DEFAULT_BLEND
    ) -> Migration:
        spec = None if to is None else {"name": to.name, "version": to.version, "dim": to.dim}
        text = json.dumps({"to": spec, "map": json.loads(mapping.to_json()), "blend": blend})
        return Migration(to, mapping, text, blend)

    @staticmethod
    def from_text(text: str) -> Migration:
        data = json.loads(text)
        mapping = CompatibilityMap.from_json(json.dumps(data["map"]))
        to = None if data["to"] is None else EncoderSpec(**data["to"])
        return Migration(to, mapping, text, float(data.get("blend", DEFAULT_BLEND)))


def migration_encoder(migration: Migration) -> Encoder:
    """The registered encoder a model upgrade moves to, checked against the saved spec."""
    if migration.to is None:
        raise InvalidArgumentError(
            "this model upgrade takes the new model's vectors from you: give them with "
            "backfill_vectors(ids, vectors)"
        )
    encoder = get_encoder(migration.to.name)
    spec = EncoderSpec(name=encoder.name, version=encoder.version, dim=int(encoder.dim))
    if spec != migration.to:
        raise ConfigMismatchError(
            f"the upgrade was started with {migration.to.name} version {migration.to.version}, "
            f"but this one is version {encoder.version}"
        )
    return encoder
