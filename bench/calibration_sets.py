"""The three judged collections the calibration bench measures, as vectors.

- ``scifact``: BEIR SciFact embedded with the default encoder (1-2 relevant
  abstracts per claim; the train and test splits as published).
- ``digits``: scikit-learn's handwritten digits (1,797 x 64 pixels), split at
  random into 1,297 items and two sets of 250 queries; an item is relevant to a
  query when it shows the same digit (about 130 relevant per query).
- ``sts-source``: STS-B sentences embedded with the default encoder, an item
  relevant to a query when both come from the same source (news headlines,
  video captions, forum posts, ...: nine sources of 250 to 2,500 sentences):
  hundreds of relevant items per query with a weak, topical signal.

Text embeddings go through :mod:`embedding_cache`, so only the first run encodes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding_cache import cache_encoder
from simsearch.encoders import DEFAULT_ENCODER
from simsearch.eval import load_beir

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
CACHE = Path(__file__).resolve().parent.parent / ".data" / "embeddings" / f"{DEFAULT_ENCODER}.npz"


@dataclass(frozen=True)
class JudgedSet:
    """Items, and judged train and test queries (vectors and relevant ids per query)."""

    name: str
    ids: list[str]
    vectors: np.ndarray
    train: np.ndarray
    train_qrels: list[dict[str, int]]
    test: np.ndarray
    test_qrels: list[dict[str, int]]
    depth: int  # candidates per query a cutoff is measured over


def scifact() -> JudgedSet:
    encoder = cache_encoder(DEFAULT_ENCODER, CACHE)
    train, test = load_beir(DATASETS / "scifact", "train"), load_beir(DATASETS / "scifact", "test")
    ids = list(train.corpus)
    vectors = encoder.encode([train.passage(d) for d in ids], kind="passage")

    def queries(split: object) -> tuple[np.ndarray, list[dict[str, int]]]:
        data = train if split == "train" else test
        qids = list(data.queries)
        return encoder.encode([data.queries[q] for q in qids], kind="query"), [
            data.qrels[q] for q in qids
        ]

    (tr, trq), (te, teq) = queries("train"), queries("test")
    return JudgedSet("scifact", ids, vectors, tr, trq, te, teq, 100)


def digits() -> JudgedSet:
    from sklearn.datasets import load_digits

    data = load_digits()
    vectors, labels = data.data.astype(np.float32), data.target
    order = np.random.default_rng(0).permutation(len(vectors))
    items, train_rows, test_rows = order[500:], order[:250], order[250:500]

    def qrels(rows: np.ndarray) -> list[dict[str, int]]:
        return [{f"d{i}": 1 for i in items if labels[i] == labels[r]} for r in rows]

    return JudgedSet(
        "digits",
        [f"d{i}" for i in items],
        vectors[items],
        vectors[train_rows],
        qrels(train_rows),
        vectors[test_rows],
        qrels(test_rows),
        300,
    )


def sts_source(items: int = 3000, queries: int = 250) -> JudgedSet:
    sentences: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        path = DATASETS / "stsbenchmark" / f"sts-{split}.csv"
        with path.open(encoding="utf-8") as fh:
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 7:
                    for text in row[5:7]:
                        sentences.setdefault(text.strip(), row[1])
    texts = sorted(sentences)
    order = np.random.default_rng(0).permutation(len(texts))[: items + 2 * queries]
    picked = [texts[i] for i in order]
    encoder = cache_encoder(DEFAULT_ENCODER, CACHE)
    vectors = encoder.encode(picked, kind="passage")
    source = [sentences[t] for t in picked]
    ids = [f"s{i}" for i in range(items)]
    by_source: dict[str, dict[str, int]] = {}
    for i in range(items):
        by_source.setdefault(source[i], {})[ids[i]] = 1
    train = list(range(items, items + queries))
    test = list(range(items + queries, items + 2 * queries))
    return JudgedSet(
        "sts-source",
        ids,
        vectors[:items],
        vectors[train],
        [by_source.get(source[i], {}) for i in train],
        vectors[test],
        [by_source.get(source[i], {}) for i in test],
        300,
    )


SETS = {"scifact": scifact, "digits": digits, "sts-source": sts_source}
