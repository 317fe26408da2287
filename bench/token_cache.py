"""A file cache of token vectors for benchmarks of multi-vector search.

Embedding SciFact's 5,183 abstracts as token vectors takes minutes on two cores, so
each corpus and query set is embedded once, with [CLS] and [SEP] kept, and saved
under ``.data/tokens/`` as one float32 array of every token vector and the offsets
of each text's set (keyed by a hash of the texts, so changed texts embed again).
:func:`drop_special` derives the sets without [CLS] and [SEP] (the first and last
vector of each set) from the same file: each vector is normalised on its own, so
dropping them afterwards gives what the encoder gives with ``keep_special=False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoders.text_tokens import MiniLMTokenEncoder

CACHE = Path(__file__).resolve().parent.parent / ".data" / "tokens"


class TokenSets:
    """Sets of token vectors, one per text: ``vectors[offsets[i]:offsets[i + 1]]``."""

    def __init__(self, vectors: np.ndarray, offsets: np.ndarray) -> None:
        self.vectors, self.offsets = vectors, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.vectors[self.offsets[i] : self.offsets[i + 1]]

    def sets(self) -> list[np.ndarray]:
        return [self[i] for i in range(len(self))]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _digest(texts: Sequence[str], kind: str) -> str:
    h = hashlib.sha256(kind.encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def token_sets(name: str, texts: Sequence[str], kind: str = "passage") -> TokenSets:
    """The token vectors ([CLS] and [SEP] kept) of ``texts``, from the cache or embedded."""
    stem = CACHE / f"{name}-{_digest(texts, kind)}"
    vec_path, off_path = stem.with_suffix(".vectors.npy"), stem.with_suffix(".offsets.npy")
    if vec_path.exists() and off_path.exists():
        return TokenSets(np.load(vec_path, mmap_mode="r"), np.load(off_path))
    encoder = MiniLMTokenEncoder(keep_special=True)
    sets = encoder.encode_tokens(list(texts), kind=kind)  # type: ignore[arg-type]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(vec_path, np.concatenate(sets).astype(np.float32))
    np.save(off_path, offsets)
    return TokenSets(np.load(vec_path, mmap_mode="r"), offsets)


def cached_scores(name: str, queries: TokenSets, docs: TokenSets, n: int, compute: Any) -> Any:
    """``compute()`` (a score matrix of the first ``n`` queries against every document),
    saved beside the token vectors it was computed from and read back while they match."""
    h = hashlib.sha256(f"{name}-{n}".encode())
    for sets in (queries, docs):
        h.update(np.ascontiguousarray(sets.offsets).tobytes())
        h.update(np.ascontiguousarray(sets.vectors[:: max(1, len(sets.vectors) // 4096)]).tobytes())
    path = CACHE / f"scores-{name}-{h.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    scores = compute()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def drop_special(sets: TokenSets) -> TokenSets:
    """The same sets without [CLS] and [SEP] (each set's first and last vector)."""
    lengths = sets.lengths()
    keep = np.ones(len(sets.vectors), dtype=bool)
    starts, ends = sets.offsets[:-1], sets.offsets[1:] - 1
    long = lengths > 2  # a text of no word piece keeps both, as the encoder does
    keep[starts[long]] = False
    keep[ends[long]] = False
    new_lengths = np.where(long, lengths - 2, lengths)
    offsets = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    return TokenSets(np.ascontiguousarray(sets.vectors[keep]), offsets)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from simsearch.eval import load_beir

    data_root = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
    for dataset in ("arcd", "scifact"):
        data = load_beir(data_root / dataset, "test")
        ids = list(data.corpus)
        q = token_sets(f"{dataset}-queries", [data.queries[k] for k in data.queries], "query")
        print(dataset, "queries", len(q), q.vectors.shape, flush=True)
        c = token_sets(f"{dataset}-corpus", [data.passage(d) for d in ids])
        print(dataset, "corpus", len(c), c.vectors.shape, flush=True)
