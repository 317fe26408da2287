"""Near-duplicate mining on STS-B: margin scoring against a raw cosine threshold.

    python bench/bench_dedup.py

For each STS-B split a collection holds every sentence of the split (default
encoder). A mined pair is correct when it is an STS-B pair scored 4 or more;
recall counts those pairs. Each method's threshold is the one that maximises
F1 averaged over train and dev; F1, precision and recall are reported on test.
Candidates are each sentence's 4 nearest neighbours in both directions.
Writes bench/results/dedup.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from simsearch.scoring.duplicates import DuplicatePair, mine_pairs

RESULTS = Path(__file__).parent / "results"
STSB = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "stsbenchmark"
GOOD = 4.0


def load(split: str) -> tuple[list[str], set[tuple[str, str]]]:
    pairs = []
    with (STSB / f"sts-{split}.csv").open(encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 7:
                pairs.append((float(cols[4]), cols[5], cols[6]))
    sentences = sorted({s for _, a, b in pairs for s in (a, b)})
    gold = {(min(a, b), max(a, b)) for score, a, b in pairs if score >= GOOD and a != b}
    return sentences, gold


def scores(
    pairs: list[DuplicatePair], gold: set[tuple[str, str]], key: str, t: float
) -> dict[str, float]:
    chosen = [p for p in pairs if getattr(p, key) >= t]
    tp = sum((min(p.a, p.b), max(p.a, p.b)) in gold for p in chosen)
    precision = tp / len(chosen) if chosen else 0.0
    recall = tp / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "pairs": len(chosen)}


def main() -> None:
    encoder = simsearch.get_encoder(simsearch.DEFAULT_ENCODER)
    data = {}
    for split in ("train", "dev", "test"):
        sentences, gold = load(split)
        vectors = encoder.encode(sentences, kind="passage")
        data[split] = (sentences, vectors, gold)
        print(
            f"{split}: {len(sentences)} sentences, {len(gold)} pairs scored >= {GOOD}", flush=True
        )
    report: dict[str, Any] = {"encoder": encoder.name, "k": 4}
    methods = {
        "cosine threshold": ("ratio", "similarity"),
        "ratio margin": ("ratio", "margin"),
        "distance margin": ("distance", "margin"),
    }
    for name, (margin, key) in methods.items():
        mined = {s: mine_pairs(d[0], d[1], margin=margin) for s, d in data.items()}
        grid = np.unique(np.round([getattr(p, key) for s in ("train", "dev") for p in mined[s]], 3))

        def tuned(t: float, key: str = key, mined: Any = mined) -> float:
            return float(
                np.mean([scores(mined[s], data[s][2], key, t)["f1"] for s in ("train", "dev")])
            )

        best = float(max(grid, key=tuned))
        report[name] = {
            "threshold": best,
            "test": scores(mined["test"], data["test"][2], key, best),
        }
        print(name, report[name], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
