"""Hubness reduction on SciFact: nDCG@10 and the skewness of 10-occurrence per method.

    python bench/bench_hubness.py [--collection .data/scifact]

The collection holds the SciFact corpus embedded with the default encoder
(built when missing). The query bank is the 809 train queries; nDCG@10 and the
skewness of 10-occurrence are measured over the 300 test queries.
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
from simsearch.hubness import METHODS

RESULTS = Path(__file__).parent / "results"
SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", type=Path, default=Path(".data/scifact"))
    args = parser.parse_args()
    train, test = load_beir(SCIFACT, "train"), load_beir(SCIFACT, "test")
    report: dict[str, Any] = {"bank": "train queries", "queries": "test queries", "k": 10}
    with simsearch.Collection.open(args.collection) as col:
        if len(col) == 0:
            ids = list(test.corpus)
            col.add(ids, texts=[test.passage(d) for d in ids], progress=True)
        col.set_hubness_bank(list(train.queries.values()))
        qids = list(test.queries)
        queries = [test.queries[q] for q in qids]
        skew = col.hubness_report(k=10, queries=queries)["methods"]
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
            report[method] = {"ndcg@10": ndcg, "skewness_n10": skew[method]["skewness"]}
            print(method, report[method], flush=True)
    base = report["none"]
    for method in METHODS:
        report[method]["skewness_change"] = (
            report[method]["skewness_n10"] / base["skewness_n10"] - 1
        )
        report[method]["ndcg_change"] = report[method]["ndcg@10"] - base["ndcg@10"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hubness.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
