"""The default model's token vectors: all-MiniLM-L6-v2 (int8 ONNX) before pooling.

``minilm-l6-v2-tokens`` embeds a text as the set of its word pieces' output states
(the ONNX model's output 0), each L2-normalised, padding dropped, for multi-vector
collections scored by MaxSim. [CLS] and [SEP] are dropped too: with exact MaxSim the
sets without them scored nDCG@10 0.7100 on SciFact's test split (0.7085 with them) and
0.173 on arcd (0.169), though SciFact's recall@100 was higher with them (0.938 against
0.923); see ``bench/bench_multivector.py`` and docs/benchmarks.md. Its pooled
``encode`` is the default encoder's, so one model serves both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsearch.encoders.base import ProgressCallback, TextKind, register_encoder
from simsearch.encoders.text_onnx import MiniLMOnnxEncoder
from simsearch.types import FloatArray

__all__ = ["TOKEN_ENCODER", "MiniLMTokenEncoder"]

TOKEN_ENCODER = "minilm-l6-v2-tokens"
#: The word-piece ids of [CLS] and [SEP] in the MiniLM vocabulary.
SPECIAL_IDS = (101, 102)


class MiniLMTokenEncoder(MiniLMOnnxEncoder):
    """all-MiniLM-L6-v2 (int8 ONNX) token vectors: masked, L2-normalised, 384-d.

    Args:
        keep_special: keep the [CLS] and [SEP] states (dropped by default).
    """

    name = TOKEN_ENCODER
    version = "all-MiniLM-L6-v2/onnx-int8/tokens/1"

    def __init__(self, *, keep_special: bool = False, batch_size: int = 32) -> None:
        super().__init__(batch_size=batch_size)
        self.keep_special = keep_special
        if keep_special:
            self.version += "+special"

    def encode_tokens(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> list[FloatArray]:
        out: list[FloatArray] = [np.empty((0, self.dim), dtype=np.float32)] * len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        cut: list[int] = []
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            states, ids, mask, overflowed = self.token_states([texts[i] for i in idx])
            keep = mask.astype(bool)
            if not self.keep_special:
                # A text of no word piece keeps [CLS] and [SEP]: every set holds a vector.
                specials = np.isin(ids, SPECIAL_IDS)
                keep &= ~specials | (keep.sum(axis=1, keepdims=True) <= len(SPECIAL_IDS))
                keep[:, 0] |= ~keep.any(axis=1)
            for j, i in enumerate(idx):
                kept = states[j][keep[j]]
                norms = np.maximum(np.linalg.norm(kept, axis=1, keepdims=True), 1e-12)
                out[int(i)] = np.ascontiguousarray(kept / norms, dtype=np.float32)
            cut.extend(int(idx[j]) for j in overflowed)
            if progress is not None:
                progress(len(idx))
        self.warn_cut(cut, texts)
        return out


register_encoder(TOKEN_ENCODER, MiniLMTokenEncoder)
