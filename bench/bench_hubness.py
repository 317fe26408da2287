"""Hubness reduction on SciFact: nDCG@10 and the skewness of 10-occurrence per method.

    python bench/bench_hubness.py [--collection .data/scifact]

The collection holds the SciFact corpus embedded with the default encoder
(built when missing). Two banks are tried: the 809 train queries, and a sample
of 2,000 of the collection's own items. nDCG@10 is measured over the 300 test
queries; the skewness of 10-occurrence both over the test queries and over the
data set itself (every item asks, left out of its own list, as Radovanovic et
al. define hubness). 300 queries make a noisy figure, so the report also gives
the skewness that random top-10 lists would have over as many queries.
Writes bench/results/hubness.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from simsearch.eval import load_beir, ndcg_at_k
from simsearch.scoring.hubness import METHODS, k_occurrence_skewness

RESULTS = Path(__file__).parent / "results"
SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact"


def chance_skewness(queries: int, items: int, k: int, trials: int = 20) -> float:
    """Mean skewness of k-occurrence when each query's top k are k random distinct items."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(trials):
        picks = np.concatenate([rng.choice(items, k, replace=False) for _ in range(queries)])
        out.append(k_occurrence_skewness(np.bincount(picks).tolist(), items))
    return float(np.mean(out))


def measure(col: simsearch.Collection, test: Any) -> dict[str, Any]:
    qids = list(test.queries)
    queries = [test.queries[q] for q in qids]
    on_queries = col.hubness_report(k=10, queries=queries)["methods"]
    on_items = col.hubness_report(k=10, sample=len(col))["methods"]
    report: dict[str, Any] = {}
    for method in METHODS:
        res = col.search(queries, k=10, hubness=method)
        ndcg = float(
            np.mean(
                [
                    ndcg_at_k([h.id for h in row], test.qrels[q], 10)
                    for q, row in zip(qids, res, strict=True)
                ]
            )
        )
        report[method] = {
            "ndcg@10": ndcg,
            "skewness_n10_test_queries": on_queries[method]["skewness"],
            "skewness_n10_items": on_items[method]["skewness"],
        }
    base = report["none"]
    for method in METHODS:
        row = report[method]
        row["ndcg_change"] = row["ndcg@10"] - base["ndcg@10"]
        for key in ("test_queries", "items"):
            row[f"skewness_change_{key}"] = (
                row[f"skewness_n10_{key}"] / base[f"skewness_n10_{key}"] - 1
            )
        print(method, json.dumps(row), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", type=Path, default=Path(".data/scifact"))
    args = parser.parse_args()
    train, test = load_beir(SCIFACT, "train"), load_beir(SCIFACT, "test")
    report: dict[str, Any] = {"k": 10, "nDCG queries": "300 test queries"}
    with simsearch.Collection.open(args.collection) as col:
        if len(col) == 0:
            ids = list(test.corpus)
            col.add(ids, texts=[test.passage(d) for d in ids], progress=True)
        report["chance skewness over 300 queries"] = chance_skewness(300, len(col), 10)
        print("bank: train queries", flush=True)
        col.set_hubness_bank(list(train.queries.values()))
        report["bank: 809 train queries"] = measure(col, test)
        print("bank: 2,000 of the collection's items", flush=True)
        col.set_hubness_bank(gallery_sample=2000)
        report["bank: 2000 items"] = measure(col, test)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hubness.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
