"""Model upgrades on SciFact: old/old, new/new, mapped new queries on the old index,
the blended queries a collection answers during the upgrade, and the collection
after backfill.

    python bench/bench_migration.py --old minilm-l6-v2-int8 --new static-64 [--sample 2000]

Each collection holds the SciFact corpus (title and text); queries are the 300
test queries. The map is fitted on ``--sample`` stored texts. Writes
bench/results/migration-OLD-to-NEW.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import simsearch
from embedding_cache import cache_encoder
from simsearch.eval import evaluate_rankings, load_beir
from simsearch.upgrade.compat import DEFAULT_BLEND

RESULTS = Path(__file__).parent / "results"
SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact"


def build(path: Path, encoder: str, data: Any) -> None:
    with simsearch.Collection.open(path, encoder=encoder) as col:
        if len(col) == 0:
            ids = list(data.corpus)
            col.add(ids, texts=[data.passage(d) for d in ids], progress=True)


def save_report(name: str, report: dict[str, Any]) -> None:
    """Print ``report`` and write it to bench/results/NAME.json."""
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")


def measure(path: Path, data: Any) -> dict[str, float]:
    with simsearch.Collection.open(path) as col:
        qids = list(data.queries)
        res = col.search([data.queries[q] for q in qids], k=100)
    rankings = {q: [h.id for h in row] for q, row in zip(qids, res, strict=True)}
    metrics = evaluate_rankings(rankings, data.qrels)
    return {"ndcg@10": metrics["ndcg@10"], "recall@100": metrics["recall@100"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default=simsearch.DEFAULT_ENCODER)
    parser.add_argument("--new", default="static-64")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=Path(".data"))
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        help="serve the new encoder's vectors from this file (see embedding_cache.py)",
    )
    args = parser.parse_args()
    data = load_beir(SCIFACT, "test")
    cached = None
    if args.embedding_cache is not None:
        cached = cache_encoder(args.new, args.embedding_cache)
    old_path, new_path = args.cache / f"scifact-{args.old}", args.cache / f"scifact-{args.new}"
    build(old_path, args.old, data)
    build(new_path, args.new, data)
    report: dict[str, Any] = {"old": args.old, "new": args.new, "sample": args.sample}
    if cached is not None:
        texts = [data.passage(d) for d in data.corpus]
        report["embedding cache: largest difference from a fresh embedding"] = cached.check(
            texts, "passage"
        )
    report["old/old"] = measure(old_path, data)
    report["new/new"] = measure(new_path, data)
    work = Path(tempfile.mkdtemp(prefix="simsearch-migration-")) / "c"
    try:
        shutil.copytree(old_path, work)
        with simsearch.Collection.open(work) as col:
            report["map"] = col.migrate(args.new, sample=args.sample, blend=1.0, progress=True)
        report["mapped new query / old index"] = measure(work, data)
        with simsearch.Collection.open(work) as col:  # the same map: the sample is reused
            report["blended map"] = col.migrate(args.new, sample=args.sample)
        report[f"blended query ({DEFAULT_BLEND} mapped) / old index"] = measure(work, data)
        with simsearch.Collection.open(work) as col:
            col.backfill(progress=True)
        report["after backfill"] = measure(work, data)
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    old = report["old/old"]["ndcg@10"]
    report["mapped / old-old ndcg ratio"] = report["mapped new query / old index"]["ndcg@10"] / old
    blended = report[f"blended query ({DEFAULT_BLEND} mapped) / old index"]["ndcg@10"]
    report["blended / old-old ndcg ratio"] = blended / old
    save_report(f"migration-{args.old}-to-{args.new}", report)


if __name__ == "__main__":
    main()
