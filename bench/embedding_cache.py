"""A persistent embedding cache for benchmarks whose encoder is slow.

multilingual-e5-small embeds about four SciFact abstracts a second on two cores,
so a model-upgrade benchmark that builds the new/new collection and then
migrates and backfills another would embed the corpus twice (over an hour
each). :func:`cache_encoder` re-registers an encoder under its own name so that
every text it has embedded before, in any run, is served from a file, and the
rest are embedded by the real encoder and added to the file. The encoder's
outputs do not depend on how texts are batched (checked on a random sample when
the cache is opened), so a cached vector is the vector the encoder gives.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoders import get_encoder
from simsearch.encoders.base import register_encoder


class CachedEncoder:
    """``inner`` with a file of the vectors it has made, keyed by kind and text."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(kind: str, text: str) -> str:
        return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()

    def add(self, kind: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        for text, vector in zip(texts, vectors, strict=True):
            self.vectors[self.key(kind, text)] = np.asarray(vector, dtype=np.float32)

    def encode(self, texts: Sequence[str], *, kind: str = "passage", progress: Any = None) -> Any:
        missing = [t for t in dict.fromkeys(texts) if self.key(kind, t) not in self.vectors]
        if missing:
            self.add(kind, missing, self.inner.encode(missing, kind=kind))
            self.save()
        if progress is not None:
            progress(len(texts))
        return np.stack([self.vectors[self.key(kind, t)] for t in texts])

    def check(self, texts: Sequence[str], kind: str, n: int = 8) -> float:
        """Largest difference between cached and freshly embedded vectors of ``n`` texts."""
        known = [t for t in texts if self.key(kind, t) in self.vectors]
        picked = random.Random(0).sample(known, min(n, len(known)))
        if not picked:
            return 0.0
        fresh = self.inner.encode(picked, kind=kind)
        cached = np.stack([self.vectors[self.key(kind, t)] for t in picked])
        return float(np.abs(fresh - cached).max())

    def save(self) -> None:
        keys = np.array(list(self.vectors))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=np.stack(list(self.vectors.values())))
        tmp.replace(self.path)


def cache_encoder(name: str, path: Path) -> CachedEncoder:
    """Serve the encoder registered as ``name`` through a cache at ``path``."""
    cached = CachedEncoder(get_encoder(name), path)
    register_encoder(name, lambda: cached)
    return cached
