"""FDE partitions fitted to the data, measured beside the product's SimHash (bench only).

MiniLM's token states share a common direction, so SimHash hyperplanes through the
origin might put most tokens of every text into a few partitions. Each variant here is
a consistent partition of token space (queries and documents share it), so the FDE's
inner product still sums, per query vector, its similarity to the mean of the document
vectors in its partition, as the paper's construction does:

- ``simhash``: the product's encoding (:class:`simsearch.multivector.fde.FDEEncoder`);
- ``centred``: SimHash through the mean token vector of a seeded sample of the
  collection's document tokens instead of the origin (bucket ids only; the projected
  values stay as they are, so the block inner products still add up to similarities);
- ``centred_values``: the same, and the projected values centred too (the inner
  product then sums ``<q - c, p - c>``, which is not MaxSim's: measured to say so);
- ``kmeans``: ``2**k_sim`` k-means centroids per repetition (Lloyd, 20 rounds, fitted on
  a seeded sample of 20,000 document tokens, another seed per repetition) name the
  partitions (nearest centroid); an empty partition of a document takes its vector
  nearest that centroid (the k-means reading of the paper's Hamming-nearest fill).

Same random projections as the product (``seed``, repetition), same Gray-code bucket
ids, so ``simhash`` here equals the product's encoding bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.multivector.fde import FDEEncoder, MultiVector

VARIANTS = ("simhash", "centred", "centred_values", "kmeans")
SAMPLE_TOKENS = 100_000
KMEANS_TOKENS = 20_000
KMEANS_ROUNDS = 20


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = points[rng.choice(len(points), k, replace=False)].copy()
    for _ in range(KMEANS_ROUNDS):
        nearest = (points @ centroids.T - 0.5 * (centroids**2).sum(axis=1)).argmax(axis=1)
        for j in range(k):
            inside = nearest == j
            centroids[j] = (
                points[inside].mean(axis=0) if inside.any() else points[rng.integers(len(points))]
            )
    return centroids.astype(np.float32)


class PartitionFDE:
    """An FDE of ``config``'s sizes whose partitions follow ``variant``, fitted on
    ``sample`` (document token vectors) with ``config.seed``."""

    def __init__(self, config: MultiVector, dim: int, variant: str, sample: np.ndarray) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        self.base = FDEEncoder(config, dim)
        self.config, self.variant = config, variant
        self.parts = 1 << config.k_sim
        self.centre = np.zeros(dim, dtype=np.float32)
        if variant in ("centred", "centred_values"):
            self.centre = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.centroids: list[np.ndarray] = []
        if variant == "kmeans":
            for rep in range(config.r_reps):
                rng = np.random.default_rng([config.seed, rep, 7])
                pick = rng.choice(len(sample), min(KMEANS_TOKENS, len(sample)), replace=False)
                self.centroids.append(_kmeans(sample[pick], self.parts, rng))
        self.counts: list[np.ndarray] = []  # (documents, partitions) per repetition encoded

    def documents(self, sets: list[np.ndarray]) -> np.ndarray:
        if self.variant == "simhash":
            self._count(sets)
            return self.base.documents(sets)
        return self._encode(sets, query=False)

    def queries(self, sets: list[np.ndarray]) -> np.ndarray:
        if self.variant == "simhash":
            return self.base.queries(sets)
        return self._encode(sets, query=True)

    def _buckets(self, points: np.ndarray, rep: int) -> tuple[np.ndarray, np.ndarray]:
        """Each point's partition and its affinity to every partition (higher: nearer)."""
        if self.variant == "kmeans":
            c = self.centroids[rep]
            affinity = points @ c.T - 0.5 * (c**2).sum(axis=1)
            return affinity.argmax(axis=1), affinity
        bits = ((points - self.centre) @ self.base.gaussians[rep] > 0).astype(np.int64)
        idx = np.zeros(len(points), dtype=np.int64)
        for t in range(bits.shape[1]):
            idx = (idx << 1) + (bits[:, t] ^ (idx & 1))
        return idx, -self.base._distance[idx]  # Hamming-nearest fill, as the product's

    def _count(self, sets: list[np.ndarray]) -> None:
        lengths = np.array([len(s) for s in sets])
        owner = np.repeat(np.arange(len(sets)), lengths)
        points = np.concatenate(sets).astype(np.float32)
        for rep in range(self.config.r_reps):
            bucket, _ = self._buckets(points, rep)
            key = owner * self.parts + bucket
            self.counts.append(
                np.bincount(key, minlength=len(sets) * self.parts).reshape(len(sets), -1)
            )

    def _encode(self, sets: list[np.ndarray], *, query: bool) -> np.ndarray:
        n, parts, block = len(sets), self.parts, self.base.block
        lengths = np.array([len(s) for s in sets])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        owner = np.repeat(np.arange(n), lengths)
        points = np.concatenate(sets).astype(np.float32)
        values = points - self.centre if self.variant == "centred_values" else points
        out = np.zeros((n, self.config.r_reps, parts, block), dtype=np.float32)
        for rep in range(self.config.r_reps):
            projection = self.base.projections[rep]
            projected = values if projection is None else values @ projection
            bucket, affinity = self._buckets(points, rep)
            key = owner * parts + bucket
            counts = np.bincount(key, minlength=n * parts)
            sums = np.zeros((n * parts, block), dtype=np.float32)
            np.add.at(sums, key, projected)
            if not query:
                self.counts.append(counts.reshape(n, parts))
                sums /= np.maximum(counts, 1)[:, None]
                # Fill: each empty partition takes the set's vector of highest affinity
                # to it (the first on ties).
                best = np.maximum.reduceat(affinity, starts, axis=0)
                index = np.where(
                    affinity == best[owner], np.arange(len(points))[:, None], len(points)
                )
                nearest = np.minimum.reduceat(index, starts, axis=0).reshape(-1)
                empty = np.flatnonzero(counts == 0)
                sums[empty] = projected[nearest[empty]]
            out[:, rep] = sums.reshape(n, parts, block)
        flat = out.reshape(n, -1)
        return flat @ self.base.final if self.base.final is not None else flat

    def balance(self) -> dict[str, Any]:
        """Of the documents encoded: the share of (document, repetition, partition) blocks
        no vector fell in (filled), and the mean share of a document's vectors in its
        fullest partition."""
        counts = np.concatenate(self.counts)
        return {
            "empty_partition_share": round(float((counts == 0).mean()), 4),
            "fullest_partition_share": round(
                float((counts.max(axis=1) / counts.sum(axis=1)).mean()), 4
            ),
        }
