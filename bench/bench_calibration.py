"""Calibrated relevance cutoffs on SciFact, beside the three baselines.

    python bench/bench_calibration.py [--collection .data/scifact]

The collection holds the SciFact corpus embedded with the default encoder (built
when missing). The calibration is fitted on the train split's judgements and
everything is measured on the test split, over each query's top-100
candidates; precision, recall and F1 are averaged over queries. Baselines:
plain top-10; the single global cosine threshold that maximises train F1; and
keeping the hits within a margin of the query's top score, the margin tuned on
train. Writes bench/results/calibration.json, a reliability diagram (calibration.png)
and the score histograms of relevant and non-relevant candidates
(calibration-scores.png).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from calibration_sets import CACHE
from embedding_cache import cache_encoder
from simsearch.encoders import DEFAULT_ENCODER
from simsearch.eval import cutoff_metrics, expected_calibration_error, load_beir
from simsearch.plots import reliability_diagram, score_histograms

RESULTS = Path(__file__).parent / "results"
SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact"
DEPTH = 100


def candidates(col: simsearch.Collection, split: str) -> tuple[Any, list[str], simsearch.Results]:
    data = load_beir(SCIFACT, split)
    qids = list(data.queries)
    return data, qids, col.search([data.queries[q] for q in qids], k=DEPTH)


def sets_where(results: simsearch.Results, qids: list[str], keep: Any) -> dict[str, list[str]]:
    return {
        q: [h.id for i, h in enumerate(row) if keep(row, i, h)]
        for q, row in zip(qids, results, strict=True)
    }


def tune(values: np.ndarray, f1_of: Any) -> float:
    return float(max(np.unique(np.round(values, 3)), key=f1_of))


def tune_baselines(
    results: simsearch.Results, qids: list[str], qrels: Any, margins: np.ndarray
) -> tuple[float, float]:
    """The global score threshold and the margin below each query's top score that
    maximise F1 on these (training) results."""
    scores = np.array([h.score for row in results for h in row])
    best = tune(
        scores,
        lambda t: cutoff_metrics(sets_where(results, qids, lambda row, i, h: h.score >= t), qrels)[
            "f1"
        ],
    )
    margin = tune(
        margins,
        lambda d: cutoff_metrics(
            sets_where(results, qids, lambda row, i, h: h.score >= row[0].score - d), qrels
        )["f1"],
    )
    return best, margin


def baseline_sets(
    results: simsearch.Results, qids: list[str], threshold: float, margin: float
) -> dict[str, dict[str, list[str]]]:
    """The sets kept by the global threshold and by the margin rule."""
    return {
        "global threshold": sets_where(results, qids, lambda row, i, h: h.score >= threshold),
        "margin rule": sets_where(
            results, qids, lambda row, i, h: h.score >= row[0].score - margin
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", type=Path, default=Path(".data/scifact"))
    args = parser.parse_args()
    corpus = load_beir(SCIFACT, "test")
    cache_encoder(DEFAULT_ENCODER, CACHE)  # texts embedded before are read from the cache
    with simsearch.Collection.open(args.collection) as col:
        if len(col) == 0:
            ids = list(corpus.corpus)
            col.add(ids, texts=[corpus.passage(d) for d in ids], progress=True)
        col.uncalibrate()
        train, train_q, train_res = candidates(col, "train")
        test, test_q, test_res = candidates(col, "test")
        report: dict[str, Any] = {"train_queries": len(train_q), "test_queries": len(test_q)}

        def measure(name: str, chosen: dict[str, list[str]]) -> None:
            report[name] = cutoff_metrics(chosen, test.qrels)
            print(f"{name:>32}: {report[name]}", flush=True)

        measure("top-10", sets_where(test_res, test_q, lambda row, i, h: i < 10))
        best, margin = tune_baselines(train_res, train_q, train.qrels, np.arange(0.0, 0.2, 0.002))
        report["global threshold value"] = best
        report["margin rule value"] = margin
        for name, chosen in baseline_sets(test_res, test_q, best, margin).items():
            measure(name, chosen)

        summary = col.calibrate(
            [train.queries[q] for q in train_q], [train.qrels[q] for q in train_q]
        )
        report["calibration"] = summary
        queries = [test.queries[q] for q in test_q]
        measure(
            "calibrated, min_relevance",
            sets_where(
                col.search(queries, k=DEPTH, min_relevance=summary["threshold"]),
                test_q,
                lambda row, i, h: True,
            ),
        )
        measure(
            "calibrated, cutoff=f1",
            sets_where(col.search(queries, k=DEPTH, cutoff="f1"), test_q, lambda row, i, h: True),
        )
        calibrated = col.search(queries, k=DEPTH)
        probs, outcomes = [], []
        for q, row in zip(test_q, calibrated, strict=True):
            for h in row:
                probs.append(float(h.relevance or 0.0))
                outcomes.append(test.qrels[q].get(h.id, 0) > 0)
        report["ece_test_top100"] = expected_calibration_error(probs, outcomes)
        print("ECE", report["ece_test_top100"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(np.array(probs), np.array(outcomes), test_res, test_q, test.qrels)


def plot(
    probs: np.ndarray, outcomes: np.ndarray, results: Any, qids: list[str], qrels: Any
) -> None:
    scores = [h.score for row in results for h in row]
    relevant = [
        qrels[q].get(h.id, 0) > 0 for q, row in zip(qids, results, strict=True) for h in row
    ]
    reliability_diagram(
        probs.tolist(), outcomes.tolist(), RESULTS / "calibration.png", "SciFact test, top-100"
    )
    score_histograms(
        scores, relevant, RESULTS / "calibration-scores.png", "SciFact test, top-100 candidates"
    )


if __name__ == "__main__":
    main()
