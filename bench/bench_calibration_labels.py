"""Calibration with few judged queries: the few-label protocol on three shapes of data.

    python bench/bench_calibration_labels.py [--sets scifact,digits,sts-source]
        [--sizes 10,20,50,100,all] [--repeats 20]

For each judged set (:mod:`calibration_sets`: SciFact, 1-2 relevant per query;
digits, about 130; STS-B sentences by source, hundreds) the collection is
calibrated on random subsets of 10, 20, 50, 100 and all of its training
queries (``--repeats`` subsets of each size below all; 5 of 100 when that is
not all), and every fit is measured on the same test queries over each query's
top ``depth`` candidates: the F1 of ``cutoff="f1"``, beside the single global
cosine threshold that maximises F1 on the same subset (the baseline), and the
expected calibration error of ``relevance`` over the candidates it is
calibrated for (each test query's nearest items down to the depth the judged
relevant items reached, as the calibration reports it) and over the top
``depth``. Beside those, the floor of that ECE for any single score-to-probability
map fitted on the same subset: isotonic regression (the monotone map of highest
likelihood on those labels) of the subset's own top ``depth``, measured the same
way; where judged queries differ in how many relevant items they have, a few of
them fix that share only so well, and no global map does better. Means and spreads
over repeats go to bench/results/calibration-labels.json, with what each fit chose.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

import simsearch
from calibration_sets import SETS, JudgedSet
from simsearch.eval import cutoff_metrics, expected_calibration_error

RESULTS = Path(__file__).parent / "results"


def sets_of(results: simsearch.Results, keep: Any = None) -> dict[str, list[str]]:
    return {str(i): [h.id for h in row if keep is None or keep(h)] for i, row in enumerate(results)}


def qrels_of(judgements: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    return {str(i): j for i, j in enumerate(judgements)}


def best_global_threshold(results: Any, qrels: dict[str, dict[str, int]]) -> float:
    """The cosine threshold that maximises mean F1 on these results (lowest on ties)."""
    scores = np.unique(np.round([h.score for row in results for h in row], 3))
    return float(max(scores, key=lambda t: threshold_f1(results, qrels, float(t))))


def threshold_f1(results: Any, qrels: dict[str, dict[str, int]], t: float) -> float:
    """Mean F1 of the hits scoring at least ``t``."""
    return cutoff_metrics(sets_of(results, lambda h: h.score >= t), qrels)["f1"]


def top_ece(probs: list[list[float]], truth: list[list[bool]], k: int) -> float:
    """The expected calibration error over each query's ``k`` best hits."""
    p = [x for row in probs for x in row[:k]]
    y = [x for row in truth for x in row[:k]]
    return expected_calibration_error(p, y)


def global_map_floor(
    fitted_on: list[Any], judged: list[dict[str, int]], measured_on: Any, truth: list[list[bool]]
) -> float:
    """ECE over ``measured_on`` of the isotonic score-to-probability map fitted on the
    hits ``fitted_on`` with their ``judged`` relevance."""
    scores = [h.score for row in fitted_on for h in row]
    labels = [h.id in judged[i] for i, row in enumerate(fitted_on) for h in row]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    probs = [iso.predict([h.score for h in row]).tolist() for row in measured_on]
    return top_ece(probs, truth, len(max(probs, key=len)))


def spread(values: list[float]) -> dict[str, float]:
    a = np.array(values)
    return {
        "mean": round(float(a.mean()), 4),
        "std": round(float(a.std()), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


def run_set(data: JudgedSet, sizes: list[str], repeats: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "items": len(data.ids),
        "train queries": len(data.train),
        "test queries": len(data.test),
        "relevant per test query (mean)": float(np.mean([len(j) for j in data.test_qrels])),
        "depth": data.depth,
        "sizes": {},
    }
    test_qrels = qrels_of(data.test_qrels)
    with tempfile.TemporaryDirectory() as tmp, simsearch.Collection.open(Path(tmp) / "c") as col:
        col.add(data.ids, vectors=data.vectors)
        train_res = col.search(data.train, k=data.depth)
        test_res = col.search(data.test, k=data.depth)
        rng = np.random.default_rng(seed)
        for size in sizes:
            n = len(data.train) if size == "all" else int(size)
            if n > len(data.train):
                continue
            runs = 1 if n == len(data.train) else (repeats if n < 100 else max(5, repeats // 4))
            rows: list[dict[str, Any]] = []
            started = time.perf_counter()
            for _ in range(runs):
                pick = np.sort(rng.choice(len(data.train), n, replace=False))
                judged = [data.train_qrels[i] for i in pick]
                sub_res = [train_res[i] for i in pick]
                t = best_global_threshold(sub_res, qrels_of(judged))
                base = threshold_f1(test_res, test_qrels, t)
                summary = col.calibrate(data.train[pick], judged)
                cut = col.search(data.test, k=data.depth, cutoff="f1")
                f1 = cutoff_metrics(sets_of(cut), test_qrels)["f1"]
                # Relevance is calibrated over the candidates to the depth the judged
                # relevant items reach: measured there, and at the fixed depth too.
                depth = max(data.depth, summary["depth"])
                full = col.search(data.test, k=depth)
                probs = [[float(h.relevance or 0.0) for h in row] for row in full]
                truth = [[h.id in data.test_qrels[i] for h in row] for i, row in enumerate(full)]

                test_truth = [
                    [h.id in data.test_qrels[i] for h in row] for i, row in enumerate(test_res)
                ]
                floor = global_map_floor(sub_res, judged, test_res, test_truth)
                rows.append(
                    {
                        "f1": f1,
                        "global map floor": floor,
                        "global threshold f1": base,
                        "ece": top_ece(probs, truth, summary["depth"]),
                        "ece at depth": top_ece(probs, truth, data.depth),
                        "calibration depth": summary["depth"],
                        "model": summary["model"],
                        "rule": summary["cutoff_rule"],
                        "cv": summary["cross_validation"],
                    }
                )
            result = {
                "repeats": runs,
                "calibrated cutoff=f1 F1": spread([r["f1"] for r in rows]),
                "global threshold F1": spread([r["global threshold f1"] for r in rows]),
                "F1 gain": spread([r["f1"] - r["global threshold f1"] for r in rows]),
                "ECE (to the calibration depth)": spread([r["ece"] for r in rows]),
                "ECE (top depth)": spread([r["ece at depth"] for r in rows]),
                "ECE floor of a global map (top depth)": spread(
                    [r["global map floor"] for r in rows]
                ),
                "calibration depth": spread([r["calibration depth"] for r in rows]),
                "models chosen": dict(Counter(r["model"] for r in rows)),
                "rules chosen": dict(Counter(r["rule"] for r in rows)),
                "seconds per calibrate": round((time.perf_counter() - started) / runs, 2),
            }
            if runs == 1:
                result["report"] = rows[0]["cv"]
            out["sizes"][size] = result
            print(data.name, size, json.dumps(result), flush=True)
    return out


def with_depth(data: JudgedSet, depth: int | None) -> JudgedSet:
    """``data`` measured over each query's top ``depth`` (its own depth when None)."""
    return data if depth is None else dataclasses.replace(data, depth=depth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sizes", default="10,20,50,100,all")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, help="Candidates per query measured (all sets).")
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration-labels.json")
    args = parser.parse_args()
    report = {
        name: run_set(
            with_depth(SETS[name](), args.depth), args.sizes.split(","), args.repeats, args.seed
        )
        for name in args.sets.split(",")
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
