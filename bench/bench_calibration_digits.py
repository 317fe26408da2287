"""Calibrated relevance cutoffs where every query has dozens of relevant items.

    python bench/bench_calibration_digits.py      (needs simsearch[bench]: scikit-learn)

SciFact has one or two relevant documents per query; here every query has
about 140. scikit-learn's handwritten digits (1,797 x 64) are split at random
into 1,297 items and two sets of 250 queries (train and test); an item is
relevant to a query when it shows the same digit. Everything else is as in
bench_calibration.py (baselines and calibration tuned or fitted on the train
queries, measured on the test queries), except that each query's top 300
candidates are cut, since the top 100 hold fewer than its relevant items. Writes
bench/results/calibration-digits.json.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

import simsearch
from bench_calibration import baseline_sets, sets_where, tune_baselines
from simsearch.eval import cutoff_metrics, expected_calibration_error

RESULTS = Path(__file__).parent / "results"
#: Candidates per query: more than the ~140 relevant items, so a cutoff has room.
DEPTH = 300


def main() -> None:
    digits = load_digits()
    vectors, labels = digits.data.astype(np.float32), digits.target
    order = np.random.default_rng(0).permutation(len(vectors))
    items, train_rows, test_rows = order[500:], order[:250], order[250:500]
    ids = [f"d{i}" for i in items]

    def qrels(rows: np.ndarray) -> dict[str, dict[str, int]]:
        return {f"q{r}": {f"d{i}": 1 for i in items if labels[i] == labels[r]} for r in rows}

    train_qrels, test_qrels = qrels(train_rows), qrels(test_rows)
    train_q, test_q = list(train_qrels), list(test_qrels)
    report: dict[str, Any] = {
        "items": len(items),
        "relevant per query (mean)": float(np.mean([len(v) for v in test_qrels.values()])),
    }
    with tempfile.TemporaryDirectory() as tmp, simsearch.Collection.open(Path(tmp) / "c") as col:
        col.add(ids, vectors=vectors[items])
        train_res = col.search(vectors[train_rows], k=DEPTH)
        test_res = col.search(vectors[test_rows], k=DEPTH)

        def measure(name: str, chosen: dict[str, list[str]]) -> None:
            report[name] = cutoff_metrics(chosen, test_qrels)
            print(f"{name:>28}: {report[name]}", flush=True)

        measure("top-10", sets_where(test_res, test_q, lambda row, i, h: i < 10))
        best, margin = tune_baselines(train_res, train_q, train_qrels, np.arange(0.0, 0.3, 0.002))
        report["global threshold value"] = best
        report["margin rule value"] = margin
        for name, chosen in baseline_sets(test_res, test_q, best, margin).items():
            measure(name, chosen)
        summary = col.calibrate(vectors[train_rows], [train_qrels[q] for q in train_q])
        report["calibration"] = summary
        measure(
            "calibrated, min_relevance",
            sets_where(
                col.search(vectors[test_rows], k=DEPTH, min_relevance=summary["threshold"]),
                test_q,
                lambda row, i, h: True,
            ),
        )
        measure(
            "calibrated, cutoff=f1",
            sets_where(
                col.search(vectors[test_rows], k=DEPTH, cutoff="f1"),
                test_q,
                lambda row, i, h: True,
            ),
        )
        probs, outcomes = [], []
        for q, row in zip(test_q, col.search(vectors[test_rows], k=DEPTH), strict=True):
            for h in row:
                probs.append(float(h.relevance or 0.0))
                outcomes.append(h.id in test_qrels[q])
        report["ece_test"] = expected_calibration_error(probs, outcomes)
        print("ECE", report["ece_test"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration-digits.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
