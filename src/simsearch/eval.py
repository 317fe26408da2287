"""Retrieval evaluation: BEIR-format data and the standard ranking metrics.

Metrics follow the BEIR/TREC conventions: graded gains with a log2 discount
for nDCG@k, recall@k over the documents judged relevant (relevance > 0), and
the reciprocal rank of the first relevant hit within k for MRR@k, each
averaged over the queries that have judgements.

>>> qrels = {"q": {"d1": 1, "d2": 1}}
>>> round(ndcg_at_k(["d1", "x", "d2"], qrels["q"], 10), 4)
0.9197
>>> recall_at_k(["d1", "x"], qrels["q"], 10), mrr_at_k(["x", "d2"], qrels["q"], 10)
(0.5, 0.5)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simsearch.errors import InvalidArgumentError

__all__ = [
    "BeirData",
    "cutoff_metrics",
    "evaluate_rankings",
    "expected_calibration_error",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class BeirData:
    """A BEIR dataset split: corpus ``id -> (title, text)``, queries and judgements."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def passage(self, doc_id: str) -> str:
        """The text that is embedded for a document: title and body joined by a space."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip()


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_beir(directory: str | Path, split: str = "test") -> BeirData:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` from ``directory``.

    Only the queries judged in ``split`` are kept.
    """
    root = Path(directory)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise InvalidArgumentError(f"{needed} is missing: {root} is not a BEIR dataset split")
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
        for d in _read_jsonl(root / "corpus.jsonl")
    }
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header and header[-1].isdigit():  # no header line
            qrels.setdefault(header[0], {})[header[1]] = int(header[-1])
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[-1])
    all_queries = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(root / "queries.jsonl")}
    queries = {qid: all_queries[qid] for qid in qrels if qid in all_queries}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of one ranking (graded relevance)."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``."""
    for i, d in enumerate(ranked[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


METRICS: dict[str, tuple[Callable[[Sequence[str], Mapping[str, int], int], float], int]] = {
    "ndcg@10": (ndcg_at_k, 10),
    "recall@10": (recall_at_k, 10),
    "recall@100": (recall_at_k, 100),
    "mrr@10": (mrr_at_k, 10),
}


def evaluate_rankings(rankings: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Average every metric in ``METRICS`` over the judged queries.

    A judged query with no ranking counts as zero.
    """
    judged = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    if not judged:
        raise InvalidArgumentError("no query has a relevant judgement")
    out: dict[str, float] = {}
    for name, (fn, k) in METRICS.items():
        out[name] = sum(fn(rankings.get(q, []), qrels[q], k) for q in judged) / len(judged)
    out["queries"] = float(len(judged))
    return out


def cutoff_metrics(chosen: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Precision, recall and F1 of each judged query's chosen set, averaged over queries,
    and the average set size. An empty set has precision 0 (F1 0).

    >>> m = cutoff_metrics({"q": ["d1", "x"]}, {"q": {"d1": 1, "d2": 1}})
    >>> m["precision"], m["recall"], round(m["f1"], 3), m["set_size"]
    (0.5, 0.5, 0.5, 2.0)
    """
    judged = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    if not judged:
        raise InvalidArgumentError("no query has a relevant judgement")
    p_sum = r_sum = f_sum = size = 0.0
    for q in judged:
        relevant = {d for d, g in qrels[q].items() if g > 0}
        got = list(chosen.get(q, []))
        tp = len(relevant.intersection(got))
        precision = tp / len(got) if got else 0.0
        recall = tp / len(relevant)
        p_sum += precision
        r_sum += recall
        f_sum += 2 * precision * recall / (precision + recall) if tp else 0.0
        size += len(got)
    n = len(judged)
    return {"precision": p_sum / n, "recall": r_sum / n, "f1": f_sum / n, "set_size": size / n}


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> float:
    """The average gap between predicted and observed relevance over equal-width bins,
    weighted by how many predictions fall in each.

    >>> expected_calibration_error([0.9, 0.9, 0.1, 0.1], [True, True, False, False])
    0.1
    """
    if len(probabilities) != len(outcomes) or not probabilities:
        raise InvalidArgumentError("give as many outcomes as probabilities, at least one")
    total = 0.0
    counts = [0] * bins
    p_sums = [0.0] * bins
    y_sums = [0.0] * bins
    for p, y in zip(probabilities, outcomes, strict=True):
        b = min(int(p * bins), bins - 1)
        counts[b] += 1
        p_sums[b] += p
        y_sums[b] += float(y)
    for b in range(bins):
        if counts[b]:
            total += abs(p_sums[b] - y_sums[b])
    return round(total / len(probabilities), 12)
