"""How far a fitted map can carry new-model queries into the old space on SciFact,
and how the blend with the old encoder's query behaves.

    python bench/bench_migration_ceiling.py --old minilm-l6-v2-int8 --new e5-small \
        --embedding-cache .data/e5-small-cache.npz

Maps are fitted on more and more pairs: random samples of abstracts, then every
abstract, then every abstract and the 809 train queries (pairs a collection
never has: an upper bound for a map fitted on stored items). Each map carries
the new encoder's test queries into the old index, searched exactly. Then, for
the map a collection fits by default (2,000 abstracts, procrustes), the blend
``(1 - w) * old query + w * mapped query`` is swept over ``w`` on the train and
the test queries; the default weight (``DEFAULT_BLEND``) was chosen on train.
Writes bench/results/migration-ceiling-OLD-to-NEW.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from bench_migration import SCIFACT, build, save_report
from embedding_cache import cache_encoder
from simsearch.encoders import get_encoder
from simsearch.eval import evaluate_rankings, load_beir
from simsearch.index.flat import normalize
from simsearch.upgrade.compat import fit_map

WEIGHTS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0)


def evaluate(
    queries: np.ndarray, corpus: np.ndarray, ids: list[str], qids: list[str], qrels: Any
) -> dict[str, float]:
    scores = normalize(queries) @ normalize(corpus).T
    top = np.argsort(-scores, axis=1)[:, :100]
    rankings = {q: [ids[j] for j in top[i]] for i, q in enumerate(qids)}
    metrics = evaluate_rankings(rankings, qrels)
    return {"ndcg@10": round(metrics["ndcg@10"], 4), "recall@100": round(metrics["recall@100"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default=simsearch.DEFAULT_ENCODER)
    parser.add_argument("--new", default="static-64")
    parser.add_argument("--cache", type=Path, default=Path(".data"))
    parser.add_argument("--embedding-cache", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    test, train = load_beir(SCIFACT, "test"), load_beir(SCIFACT, "train")
    if args.embedding_cache is not None:
        cache_encoder(args.new, args.embedding_cache)
    old_path = args.cache / f"scifact-{args.old}"
    build(old_path, args.old, test)
    with simsearch.Collection.open(old_path) as col:
        stored = {item.id: item.vector for item in col.iter_items()}
    ids = list(test.corpus)
    old_corpus = np.stack([stored[d] for d in ids])
    old_enc, new_enc = get_encoder(args.old), get_encoder(args.new)
    new_corpus = new_enc.encode([test.passage(d) for d in ids], kind="passage")
    splits = {}
    for name, data in (("test", test), ("train", train)):
        qids = list(data.queries)
        texts = [data.queries[q] for q in qids]
        splits[name] = (
            qids,
            data.qrels,
            old_enc.encode(texts, kind="query"),
            new_enc.encode(texts, kind="query"),
        )
    t_qids, t_qrels, t_old, t_new = splits["test"]
    report: dict[str, Any] = {"old": args.old, "new": args.new}
    report["old/old"] = evaluate(t_old, old_corpus, ids, t_qids, t_qrels)
    order = np.random.default_rng(args.seed).permutation(len(ids))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {
        f"{n} abstracts": (new_corpus[order[:n]], old_corpus[order[:n]]) for n in (500, 1000, 2000)
    }
    pairs["every abstract"] = (new_corpus, old_corpus)
    _, _, tr_old, tr_new = splits["train"]
    pairs["every abstract and the train queries"] = (
        np.vstack([new_corpus, tr_new]),
        np.vstack([old_corpus, tr_old]),
    )
    fitted: dict[str, Any] = {}
    for label, (new, old) in pairs.items():
        for method in ("procrustes", "ridge"):
            mapping = fit_map(new, old, method=method)
            fitted[f"{label}, {method}"] = evaluate(
                mapping(t_new), old_corpus, ids, t_qids, t_qrels
            )
            print(label, method, fitted[f"{label}, {method}"], flush=True)
    report["mapped new query / old index, by the pairs the map is fitted on"] = fitted
    mapping = fit_map(*pairs["2000 abstracts"], method="procrustes")
    blends: dict[str, Any] = {}
    for name, (qids, qrels, q_old, q_new) in splits.items():
        mapped = normalize(mapping(q_new))
        blends[name] = {
            str(w): evaluate((1 - w) * normalize(q_old) + w * mapped, old_corpus, ids, qids, qrels)[
                "ndcg@10"
            ]
            for w in WEIGHTS
        }
        print(name, blends[name], flush=True)
    report["blended query ndcg@10 by weight (2000 abstracts, procrustes)"] = blends
    save_report(f"migration-ceiling-{args.old}-to-{args.new}", report)


if __name__ == "__main__":
    main()
