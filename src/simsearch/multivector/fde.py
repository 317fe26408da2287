"""MUVERA fixed-dimensional encodings (FDEs) of sets of vectors.

Dhulipala, Hadian, Jayaram, Lee and Mirrokni, "MUVERA: Multi-Vector Retrieval via
Fixed Dimensional Encodings" (NeurIPS 2024, arXiv 2405.19504). A set of token vectors
becomes one vector whose inner product with another set's approximates the Chamfer
(MaxSim) similarity ``CH(Q, P) = sum over q in Q of max over p in P of <q, p>``, so an
ordinary vector index finds candidates that exact MaxSim then reranks.

For each of ``r_reps`` repetitions (R_reps), with random draws fixed by ``seed`` and the
repetition, so that queries and documents, and every process, share them:

1. SimHash: ``k_sim`` Gaussian directions cut space into ``B = 2**k_sim`` partitions; a
   vector's sign bits name its partition, numbered as a Gray code (Google's reference:
   ``idx = (idx << 1) + (bit ^ (idx & 1))``).
2. Inner projection: each vector is projected to ``d_proj`` dimensions by a dense random
   +-1 matrix scaled by ``1/sqrt(d_proj)`` (the paper's), or kept whole (``"identity"``,
   ``d_proj = d``).
3. Per partition, a query's block is the SUM of its projected vectors there, a
   document's the MEAN; a document's empty partition is filled (``fill_empty``) with the
   projected vector whose SimHash bits are nearest in Hamming distance to the
   partition's (queries leave empty partitions zero).

The blocks are concatenated into ``r_reps * B * d_proj`` dimensions, optionally projected
once more to ``d_final`` by a dense random +-1 matrix scaled by ``1/sqrt(d_final)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from simsearch.errors import InvalidArgumentError
from simsearch.types import FloatArray

__all__ = ["PROJECTIONS", "STORAGES", "FDEEncoder", "MultiVector", "fde_encoder"]

#: How the inner projection maps a vector to ``d_proj`` dimensions.
PROJECTIONS = ("dense", "identity")
#: How stored token vectors are kept: half precision, or int8 with a scale per vector.
STORAGES = ("float16", "int8", "float32")
#: Token vectors encoded at a time (bounds the memory of one encoding step).
_CHUNK_TOKENS = 65_536


@dataclass(frozen=True, kw_only=True)
class MultiVector:
    """A multi-vector collection: how each item's set of vectors is encoded and stored.

    Args:
        k_sim: SimHash bits per repetition; ``2**k_sim`` partitions (the paper's k_sim).
        d_proj: dimensions each partition's block is projected to (d_proj).
        r_reps: independent repetitions, concatenated (R_reps).
        d_final: a last random projection of the whole encoding to this many dimensions
            (d_final); ``None`` keeps ``r_reps * 2**k_sim * d_proj``.
        projection: ``"dense"`` (random +-1, the paper's) or ``"identity"``.
        fill_empty: fill a document's empty partitions with its nearest vector.
        seed: fixes every random draw, so every process builds the same encoding.
        storage: how the token vectors are stored: ``"int8"`` (the default: one byte a
            dimension and a scale per vector), ``"float16"`` (twice the bytes) or
            ``"float32"``. int8 is the default by measurement: on SciFact it costs
            0.0003 nDCG@10 against float16, halves the bytes a rerank reads, and its
            codes decode about nine times faster than half floats in numpy, so a
            search ran 3.1 times as fast (``bench/bench_multivector.py``).
        dim: the dimension of one token vector (fixed by the first write when ``None``).
        cosine: token vectors are L2-normalised (metric ``"cosine"``), else raw (``"dot"``).

    The defaults (8 partitions of 32 dimensions, 20 repetitions: 5,120 dimensions) were
    chosen by measurement (``bench/bench_multivector.py``, SciFact with
    ``minilm-l6-v2-tokens``): for 0.9 recall of the exact-MaxSim top-10 they need 120 FDE
    candidates, against 135 for Weaviate's k_sim=4, d_proj=16 at the same size and 120 for
    fastembed's k_sim=5, d_proj=16 at twice the size (10,240), whose scan costs twice as
    much a query. A collection keeps the encoding it was made with.

    >>> MultiVector().fde_dim
    5120
    >>> MultiVector(k_sim=5, d_final=1024).fde_dim
    1024
    """

    kind: ClassVar[str] = "muvera"
    k_sim: int = 3
    d_proj: int = 32
    r_reps: int = 20
    d_final: int | None = None
    projection: str = "dense"
    fill_empty: bool = True
    seed: int = 0
    storage: str = "int8"
    dim: int | None = None
    cosine: bool = True

    def __post_init__(self) -> None:
        for name, low, high in (
            ("k_sim", 0, 10),
            ("d_proj", 1, 4096),
            ("r_reps", 1, 1000),
            ("d_final", 1, 1 << 20),
            ("seed", 0, 2**63 - 1),
            ("dim", 1, 65_536),
        ):
            value = getattr(self, name)
            if value is None and name in ("d_final", "dim"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidArgumentError(
                    f"MultiVector {name} must be an integer in [{low}, {high}], got {value!r}"
                )
        if self.projection not in PROJECTIONS:
            raise InvalidArgumentError(
                f"MultiVector projection must be one of {', '.join(PROJECTIONS)}, "
                f"not {self.projection!r}"
            )
        if self.storage not in STORAGES:
            raise InvalidArgumentError(
                f"MultiVector storage must be one of {', '.join(STORAGES)}, not {self.storage!r}"
            )
        for name in ("fill_empty", "cosine"):
            if type(getattr(self, name)) is not bool:
                raise InvalidArgumentError(f"MultiVector {name} must be true or false")
        if self.fde_dim > 1 << 20:
            raise InvalidArgumentError(
                f"the encoding would have {self.fde_dim} dimensions; at most {1 << 20}"
            )

    @property
    def block(self) -> int:
        """Dimensions of one partition's block."""
        if self.projection == "identity":
            return self.dim or 0
        return self.d_proj

    @property
    def raw_dim(self) -> int:
        """Dimensions before the final projection: ``r_reps * 2**k_sim * block``."""
        return self.r_reps * (1 << self.k_sim) * self.block

    @property
    def fde_dim(self) -> int:
        """Dimensions of the encoding the index holds."""
        return self.d_final if self.d_final is not None else self.raw_dim

    @property
    def metric(self) -> str:
        return "cosine" if self.cosine else "dot"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "kind"},
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> MultiVector:
        if data.get("kind") != MultiVector.kind:
            raise InvalidArgumentError(f"unknown multi-vector encoding {data.get('kind')!r}")
        return MultiVector(**{k: v for k, v in data.items() if k != "kind"})

    def same_encoding(self, other: MultiVector) -> bool:
        """Whether ``other`` asks for this encoding and storage (its dim and metric aside)."""
        keys = ("k_sim", "d_proj", "r_reps", "d_final", "projection", "fill_empty", "seed")
        return all(getattr(self, k) == getattr(other, k) for k in (*keys, "storage"))


def _gray_bucket(bits: np.ndarray) -> np.ndarray:
    """The partition of each row of sign ``bits`` ``(n, k_sim)``, numbered as Google's
    reference numbers them (a Gray-code walk over the bits)."""
    idx = np.zeros(len(bits), dtype=np.int64)
    for t in range(bits.shape[1]):
        idx = (idx << 1) + (bits[:, t].astype(np.int64) ^ (idx & 1))
    return idx


class FDEEncoder:
    """The encoding one :class:`MultiVector` config names, for ``dim``-dimensional vectors.

    Its random matrices are drawn once from the seed; :meth:`documents` and
    :meth:`queries` encode lists of sets.
    """

    def __init__(self, config: MultiVector, dim: int) -> None:
        self.config = config
        self.dim = dim
        k = config.k_sim
        self.partitions = 1 << k
        self.block = dim if config.projection == "identity" else config.d_proj
        self.gaussians: list[FloatArray] = []
        self.projections: list[FloatArray | None] = []
        for rep in range(config.r_reps):
            rng = np.random.default_rng([config.seed, rep])
            self.gaussians.append(rng.standard_normal((dim, k)).astype(np.float32))
            if config.projection == "identity":
                self.projections.append(None)
            else:
                signs = rng.integers(0, 2, size=(dim, config.d_proj)) * 2 - 1
                self.projections.append((signs / math.sqrt(config.d_proj)).astype(np.float32))
        # The sign bits of each partition, for the Hamming distances of filling.
        every = (np.arange(self.partitions)[:, None] >> np.arange(k)[::-1]) & 1
        self.bits_of = np.empty((self.partitions, k), dtype=np.int8)
        self.bits_of[_gray_bucket(every)] = every
        # Hamming distances between the partitions' sign bits, (partitions, partitions).
        self._distance = (self.bits_of[:, None, :] != self.bits_of[None, :, :]).sum(axis=2)
        self._stacked = np.hstack(
            [
                m
                for rep in range(config.r_reps)
                for m in (self.gaussians[rep], self.projections[rep])
                if m is not None
            ]
        ).astype(np.float32)
        self.final: FloatArray | None = None
        if config.d_final is not None:
            rng = np.random.default_rng([config.seed, config.r_reps, 1])
            signs = rng.integers(0, 2, size=(self.raw_dim, config.d_final)) * 2 - 1
            self.final = (signs / math.sqrt(config.d_final)).astype(np.float32)

    @property
    def raw_dim(self) -> int:
        return self.config.r_reps * self.partitions * self.block

    @property
    def out_dim(self) -> int:
        return self.config.d_final if self.config.d_final is not None else self.raw_dim

    def documents(self, sets: list[FloatArray]) -> FloatArray:
        """Document encodings: partition means, empty partitions filled when configured."""
        return self._encode(sets, query=False)

    def queries(self, sets: list[FloatArray]) -> FloatArray:
        """Query encodings: partition sums, empty partitions zero."""
        return self._encode(sets, query=True)

    def _encode(self, sets: list[FloatArray], *, query: bool) -> FloatArray:
        out = np.empty((len(sets), self.out_dim), dtype=np.float32)
        start = 0
        while start < len(sets):
            stop, tokens = start, 0
            while stop < len(sets) and (stop == start or tokens + len(sets[stop]) <= _CHUNK_TOKENS):
                tokens += len(sets[stop])
                stop += 1
            raw = self._encode_chunk(sets[start:stop], query=query)
            out[start:stop] = raw @ self.final if self.final is not None else raw
            start = stop
        return out

    def _encode_chunk(self, sets: list[FloatArray], *, query: bool) -> FloatArray:
        n, parts, block, k = len(sets), self.partitions, self.block, self.config.k_sim
        lengths = np.array([len(s) for s in sets], dtype=np.int64)
        points = np.concatenate(sets).astype(np.float32, copy=False)
        owner = np.repeat(np.arange(n), lengths)
        # Every repetition's SimHash directions and projection in one product: one pass
        # over the points instead of two per repetition.
        products = points @ self._stacked
        width = k + (0 if self.config.projection == "identity" else block)
        raw = np.zeros((self.config.r_reps, n * parts, block), dtype=np.float32)
        fill = self.config.fill_empty and not query
        for rep in range(self.config.r_reps):
            part = products[:, rep * width : (rep + 1) * width]
            bits = (part[:, :k] > 0).astype(np.int64)
            projected = points if self.config.projection == "identity" else part[:, k:]
            key = owner * parts + _gray_bucket(bits)
            order = np.argsort(key, kind="stable")
            keys, first, counts = np.unique(key[order], return_index=True, return_counts=True)
            sums = np.add.reduceat(projected[order], first, axis=0)
            if not query:
                sums /= counts[:, None]
            flat = raw[rep]
            flat[keys] = sums
            if fill and len(keys) < n * parts:
                self._fill(flat, keys, order[first], projected, n)
        return np.ascontiguousarray(
            raw.reshape(self.config.r_reps, n, parts * block).transpose(1, 0, 2)
        ).reshape(n, -1)

    def _fill(
        self,
        flat: FloatArray,
        filled: np.ndarray,
        firsts: np.ndarray,
        projected: FloatArray,
        n: int,
    ) -> None:
        """Give each empty partition of each set the set's projected vector whose sign bits
        are nearest the partition's in Hamming distance (the first such vector on ties).

        ``filled`` names the (set, partition) blocks that hold vectors and ``firsts`` the
        first vector of each: every vector of a partition has its bits, so the nearest
        vector to an empty partition is the first vector of the nearest filled one."""
        parts = self.partitions
        total = len(projected)
        flat_first = np.full(n * parts, total, dtype=np.int64)  # ``total``: empty partition
        flat_first[filled] = firsts
        first = flat_first.reshape(n, parts)
        # (sets, empty partition p, filled partition q): Hamming distance, then vector order.
        ranked = self._distance[None, :, :] * (total + 1) + first[:, None, :]
        ranked = np.where(first[:, None, :] < total, ranked, np.iinfo(np.int64).max)
        nearest = np.take_along_axis(first, ranked.argmin(axis=2), axis=1).reshape(-1)
        empty = np.ones(n * parts, dtype=bool)
        empty[filled] = False
        where = np.flatnonzero(empty)
        flat[where] = projected[nearest[where]]


@functools.lru_cache(maxsize=8)
def _cached(config: MultiVector, dim: int) -> FDEEncoder:
    return FDEEncoder(config, dim)


def fde_encoder(config: MultiVector, dim: int) -> FDEEncoder:
    """The encoder of ``config`` for ``dim``-d vectors, drawn once per process."""
    return _cached(replace(config, dim=dim, storage="float32"), dim)
