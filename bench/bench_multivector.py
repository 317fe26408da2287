"""Multi-vector (late-interaction, MaxSim) search on SciFact and arcd, in one run.

    python bench/bench_multivector.py [--queries N] [--speed-queries N] [--datasets ...]

Token vectors come from ``minilm-l6-v2-tokens`` through a file cache (bench/token_cache.py),
pooled vectors from the default encoder through bench/embedding_cache.py, so a second
run embeds nothing. Measured, per data set (test split):

- quality: nDCG@10 and recall@100 of mean-pooled single-vector search (exact cosine),
  of exact MaxSim over every document (numpy, float32) with and without [CLS]/[SEP]
  (cached under .data/tokens/ beside the token vectors), and of simsearch's multi-vector
  collection (FDE candidates + exact MaxSim over the stored int8 or float16 token
  vectors) at several rerank depths, with its recall of the exact-MaxSim top-10;
- FDE quality: recall of the exact-MaxSim top-10 among the FDE top-N (N = 10 ... 500)
  for several FDE sizes, and the candidates needed for 0.9 of it (in steps of 5), beside
  the token-level baseline of the MUVERA paper (each query token's k nearest document
  tokens from an exact token index, the union of their documents) at every k from 1 to
  64, counted both as distinct documents and as token hits (before deduplication);
- FDE partitions fitted to the data (bench/fde_partitions.py: SimHash through the mean
  token vector, k-means) beside the product's SimHash at the default size, with nDCG@10
  after the rerank and how evenly documents fill the partitions (``--partitions-only``
  measures only these);
- speed, same run: queries per second of simsearch's FDE + rerank (one query a call, and
  a batch) for each storage at the depth where the default FDE reaches 0.9 recall, of
  exact MaxSim over the whole collection (simsearch ``exact=True``, and numpy over the
  token vectors held in memory), and of the token-level baseline (a FAISS IVF token
  index, union, MaxSim rerank in numpy); memory per item of the stored token vectors
  and of the FDE index of each kind.

Writes bench/results/multivector.json. Figures are taken on a shared 2-core machine:
read the ratios between peers of the same run, not the bare times.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import simsearch
from embedding_cache import cache_encoder
from fde_partitions import VARIANTS, PartitionFDE
from simsearch.eval import BeirData, evaluate_rankings, load_beir
from simsearch.multivector.fde import FDEEncoder, MultiVector
from simsearch.multivector.tokens import maxsim, pack
from token_cache import TokenSets, cached_scores, drop_special, token_sets

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
RESULTS = Path(__file__).parent / "results"
DEPTHS = (10, 50, 100, 200, 500)
FDE_SIZES = (
    {"k_sim": 4, "d_proj": 16, "r_reps": 10},  # 2,560 (Weaviate's R=10)
    {"k_sim": 4, "d_proj": 16, "r_reps": 20},  # 5,120 (the default until k_sim=3, d_proj=32)
    {"k_sim": 3, "d_proj": 32, "r_reps": 20},  # 5,120 (the default)
    {"k_sim": 5, "d_proj": 16, "r_reps": 20},  # 10,240 (fastembed's, Qdrant's)
    {"k_sim": 4, "d_proj": 16, "r_reps": 40},  # 10,240
    {"k_sim": 5, "d_proj": 64, "r_reps": 20},  # 40,960: half the token baseline's candidates
)
TOKEN_KS = (1, 2, 4, 8, 16, 32, 64)
RERANK_DEPTHS = (50, 100, 200)


def quality(
    scores: np.ndarray, qids: list[str], doc_ids: list[str], data: BeirData
) -> dict[str, float]:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    ranked = {q: [doc_ids[j] for j in row] for q, row in zip(qids, top, strict=True)}
    m = evaluate_rankings(ranked, {q: data.qrels[q] for q in qids})
    return {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4)}


def ranked_quality(res: simsearch.Results, qids: list[str], data: BeirData) -> dict[str, float]:
    ranked = {q: [h.id for h in row] for q, row in zip(qids, res, strict=True)}
    m = evaluate_rankings(ranked, {q: data.qrels[q] for q in qids})
    return {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4)}


def exact_maxsim(queries: list[np.ndarray], docs: TokenSets) -> np.ndarray:
    """MaxSim of every query against every document, float32, in blocks."""
    out = np.empty((len(queries), len(docs)), dtype=np.float32)
    starts = docs.offsets[:-1]
    step_docs = 400
    for qs in range(0, len(queries), 32):
        group = queries[qs : qs + 32]
        for ds in range(0, len(docs), step_docs):
            de = min(ds + step_docs, len(docs))
            block = np.asarray(docs.vectors[starts[ds] : docs.offsets[de]], dtype=np.float32)
            out[qs : qs + len(group), ds:de] = maxsim(group, block, starts[ds:de] - starts[ds])
    return out


def recall_of_top(candidates: list[set[int]] | np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(c) & set(t)) / len(t) for c, t in zip(candidates, truth, strict=True)])
    )


def fde_quality(
    q_sets: list[np.ndarray], docs: TokenSets, truth: np.ndarray
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Recall of the exact top-10 among FDE top-N for each FDE size."""
    rows, scores = [], {}
    doc_sets = docs.sets()
    for params in FDE_SIZES:
        enc = FDEEncoder(MultiVector(**params), docs.vectors.shape[1])
        started = time.perf_counter()
        d = enc.documents([np.asarray(s, dtype=np.float32) for s in doc_sets])
        encode_s = time.perf_counter() - started
        s = enc.queries(q_sets) @ d.T
        order = np.argsort(-s, axis=1, kind="stable")
        recall = {str(n): round(recall_of_top(order[:, :n], truth), 4) for n in DEPTHS}
        grid = list(range(5, 2001, 5))
        need = next((n for n in grid if recall_of_top(order[:, :n], truth) >= 0.9), None)
        name = f"k_sim={params['k_sim']},d_proj={params['d_proj']},R={params['r_reps']}"
        scores[name] = s
        rows.append(
            {
                "fde": name,
                "dims": enc.out_dim,
                "recall_of_exact_top10": recall,
                "candidates_for_0.9": need,
                "encode_s_per_1000_docs": round(1000 * encode_s / len(docs), 2),
            }
        )
        print("  fde", rows[-1], flush=True)
    return rows, scores


def partition_quality(
    q_sets: list[np.ndarray],
    docs: TokenSets,
    exact: np.ndarray,
    qids: list[str],
    doc_ids: list[str],
    data: BeirData,
) -> list[dict[str, Any]]:
    """The default FDE size with partitions fitted to the data (bench/fde_partitions.py)
    beside the product's SimHash: recall of the exact top-10 at each depth, candidates for
    0.9, nDCG@10 after an exact-MaxSim rerank (float32) of the candidates, and how evenly
    the documents' vectors fill the partitions."""
    truth = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    vectors = np.asarray(docs.vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    sample = vectors[np.sort(rng.choice(len(vectors), min(100_000, len(vectors)), replace=False))]
    doc_sets = [np.asarray(s, dtype=np.float32) for s in docs.sets()]
    qrels = {q: data.qrels[q] for q in qids}
    rows = []
    for variant in VARIANTS:
        enc = PartitionFDE(MultiVector(), vectors.shape[1], variant, sample)
        d = np.concatenate(
            [enc.documents(doc_sets[i : i + 500]) for i in range(0, len(doc_sets), 500)]
        )
        order = np.argsort(-(enc.queries(q_sets) @ d.T), axis=1, kind="stable")
        recall = {str(n): round(recall_of_top(order[:, :n], truth), 4) for n in DEPTHS}
        grid = list(range(5, 2001, 5))
        need = next((n for n in grid if recall_of_top(order[:, :n], truth) >= 0.9), None)
        ndcg = {}
        for depth in sorted({100, need or 100}):
            top = order[:, :depth]
            rerank = np.argsort(-np.take_along_axis(exact, top, axis=1), axis=1, kind="stable")
            best = np.take_along_axis(top, rerank, axis=1)[:, :100]
            ranked = {q: [doc_ids[j] for j in row] for q, row in zip(qids, best, strict=True)}
            ndcg[str(depth)] = round(evaluate_rankings(ranked, qrels)["ndcg@10"], 4)
        rows.append(
            {
                "partition": variant,
                "dims": d.shape[1],
                "recall_of_exact_top10": recall,
                "candidates_for_0.9": need,
                "ndcg@10_after_rerank_by_candidates": ndcg,
                **enc.balance(),
            }
        )
        print("  partition", rows[-1], flush=True)
    return rows


def token_baseline(
    q_sets: list[np.ndarray], docs: TokenSets, truth: np.ndarray
) -> tuple[dict[str, Any], Any]:
    """The paper's token-level heuristic over an exact (flat) token index, at every k from
    1 to 64 (a grid of powers of two puts the 0.9 crossing up to twice too deep)."""
    import faiss

    owner = np.repeat(np.arange(len(docs)), docs.lengths())
    flat = faiss.IndexFlatIP(docs.vectors.shape[1])
    flat.add(np.ascontiguousarray(docs.vectors, dtype=np.float32))
    stacked = np.concatenate(q_sets)
    _, nearest = flat.search(stacked, max(TOKEN_KS))
    bounds = np.cumsum([0] + [len(q) for q in q_sets])
    per_query = float(np.mean(np.diff(bounds)))
    rows = []
    for kk in range(1, max(TOKEN_KS) + 1):
        cands = [
            set(owner[nearest[a:b, :kk]].ravel().tolist()) for a, b in itertools.pairwise(bounds)
        ]
        rows.append(
            {
                "tokens_per_query_token": kk,
                "mean_candidates": round(float(np.mean([len(c) for c in cands])), 1),
                "token_hits": round(per_query * kk, 1),
                "recall_of_exact_top10": round(recall_of_top(cands, truth), 4),
            }
        )
    reach = next((r for r in rows if r["recall_of_exact_top10"] >= 0.9), rows[-1])
    out = {
        "by_k": [r for r in rows if r["tokens_per_query_token"] in TOKEN_KS or r is reach],
        "first_k_for_0.9": reach["tokens_per_query_token"],
        "candidates_for_0.9": reach["mean_candidates"],
        "token_hits_for_0.9": reach["token_hits"],
    }
    print("  token baseline", out, flush=True)
    return out, owner


def build(
    folder: Path, ids: list[str], docs: TokenSets, multi: MultiVector
) -> simsearch.Collection:
    col = simsearch.Collection.open(folder, dim=docs.vectors.shape[1], multivector=multi)
    for start in range(0, len(ids), 250):
        part = range(start, min(start + 250, len(ids)))
        col.add(
            [ids[i] for i in part],
            multivectors=[np.asarray(docs[i], dtype=np.float32) for i in part],
        )
    return col


def qps(run: Any, n: int) -> float:
    started = time.perf_counter()
    run()
    return round(n / (time.perf_counter() - started), 2)


def one_dataset(
    name: str, args: argparse.Namespace, pooled: Any, earlier: dict[str, Any]
) -> dict[str, Any]:
    data = load_beir(DATA / name, "test")
    qids = list(data.queries)[: args.queries]
    doc_ids = list(data.corpus)
    q_all = token_sets(f"{name}-queries", [data.queries[q] for q in data.queries], "query")
    d_all = token_sets(f"{name}-corpus", [data.passage(d) for d in doc_ids])
    q_plain, d_plain = drop_special(q_all), drop_special(d_all)
    q_sets = [np.asarray(q_plain[i], dtype=np.float32) for i in range(len(qids))]
    q_special = [np.asarray(q_all[i], dtype=np.float32) for i in range(len(qids))]
    out: dict[str, Any] = {
        "documents": len(doc_ids),
        "queries": len(qids),
        "tokens_per_document": round(float(d_plain.lengths().mean()), 1),
        "tokens_per_query": round(float(np.mean([len(q) for q in q_sets])), 1),
    }
    print(name, out, flush=True)
    # -- quality: mean-pooled beside exact MaxSim --------------------------------------------
    quality_rows: dict[str, Any] = {}
    if args.special:
        pq = pooled.encode([data.queries[q] for q in qids], kind="query")
        pd = pooled.encode([data.passage(d) for d in doc_ids], kind="passage")
        quality_rows["mean_pooled"] = quality(pq @ pd.T, qids, doc_ids, data)
    elif "mean_pooled" in earlier.get("quality", {}):
        # Nothing of this changes with the encoding or the search: the earlier run's figure.
        quality_rows["mean_pooled"] = earlier["quality"]["mean_pooled"] | {
            "from_an_earlier_run": True
        }
    exact = cached_scores(
        f"{name}-maxsim", q_plain, d_plain, len(qids), lambda: exact_maxsim(q_sets, d_plain)
    )
    quality_rows["maxsim_exact"] = quality(exact, qids, doc_ids, data)
    if args.special:
        with_special = cached_scores(
            f"{name}-maxsim-cls-sep",
            q_all,
            d_all,
            len(qids),
            lambda: exact_maxsim(q_special, d_all),
        )
        quality_rows["maxsim_exact_with_cls_sep"] = quality(with_special, qids, doc_ids, data)
    elif "maxsim_exact_with_cls_sep" in earlier.get("quality", {}):
        # Nothing of this changes with the encoding or the search: the earlier run's figure.
        quality_rows["maxsim_exact_with_cls_sep"] = earlier["quality"]["maxsim_exact_with_cls_sep"]
        quality_rows["maxsim_exact_with_cls_sep"]["from_an_earlier_run"] = True
    print("  quality", quality_rows, flush=True)
    out["quality"] = quality_rows
    truth = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    out["fde_partitions"] = partition_quality(q_sets, d_plain, exact, qids, doc_ids, data)
    if args.partitions_only:
        return earlier | {"fde_partitions": out["fde_partitions"]}
    out["fde"], _ = fde_quality(q_sets, d_plain, truth)
    default = MultiVector()
    default_name = f"k_sim={default.k_sim},d_proj={default.d_proj},R={default.r_reps}"
    need = next(r["candidates_for_0.9"] for r in out["fde"] if r["fde"] == default_name)
    need = need or 200
    if args.token_baseline:
        out["token_baseline"], owner = token_baseline(q_sets, d_plain, truth)
    position = {d: i for i, d in enumerate(doc_ids)}
    # -- the product: FDE candidates + MaxSim over the stored token vectors -------------------
    root = Path(tempfile.mkdtemp(prefix="bench-mv-"))
    storages = (default.storage, *(s for s in ("float16", "int8") if s != default.storage))
    try:
        product: dict[str, Any] = {}
        for storage in storages:
            started = time.perf_counter()
            col = build(root / storage, doc_ids, d_plain, replace(default, storage=storage))
            ingest_s = time.perf_counter() - started
            rows = {}
            depths = (*RERANK_DEPTHS, need) if storage == default.storage else (100, need)
            for depth in sorted(set(depths)):
                res = col.search(q_sets, k=min(depth, 100), candidates=depth)
                rows[str(depth)] = ranked_quality(res, qids, data)
                top = [{position[h.id] for h in row[:10]} for row in res]
                rows[str(depth)]["recall_of_exact_top10"] = round(recall_of_top(top, truth), 4)
            col.close()  # the last connection folds the write-ahead log into the file
            size = (root / storage / "simsearch.sqlite3").stat().st_size
            product[storage] = {
                "ingest_docs_per_s": round(len(doc_ids) / ingest_s, 1),
                "store_bytes_per_item": round(size / len(doc_ids)),
                "ndcg_recall_by_candidates": rows,
            }
            print("  product", storage, product[storage], flush=True)
        out["product"] = product
        # -- speed, same run ------------------------------------------------------------------
        n = min(args.speed_queries, len(q_sets))
        speed: dict[str, Any] = {"candidates_for_0.9": need}
        for storage in storages:
            speed_col = simsearch.Collection.open(root / storage)
            speed_col.search(q_sets[0], k=10)  # loads the index
            for depth in sorted({100, need}):
                speed[f"{storage}_fde_rerank_{depth}_one_query_a_call"] = qps(
                    lambda d=depth, c=speed_col: [
                        c.search(q, k=10, candidates=d) for q in q_sets[:n]
                    ],
                    n,
                )
            speed[f"{storage}_fde_rerank_{need}_batch"] = qps(
                lambda c=speed_col: c.search(q_sets[:n], k=10, candidates=need), n
            )
            if storage == default.storage:
                speed["exact_maxsim_simsearch"] = qps(
                    lambda c=speed_col: [c.search(q, k=10, exact=True) for q in q_sets[:10]],
                    len(q_sets[:10]),
                )
            speed_col.close()
        few = min(n, 20)
        speed["exact_maxsim_numpy_in_memory"] = qps(
            lambda: exact_maxsim(q_sets[:few], d_plain), few
        )
        if args.token_baseline:
            speed.update(token_speed(q_sets[:n], d_plain, owner, out["token_baseline"]))
        best = speed[f"{default.storage}_fde_rerank_{need}_one_query_a_call"]
        for peer in ("exact_maxsim_simsearch", "exact_maxsim_numpy_in_memory"):
            speed[f"fde_at_0.9_over_{peer}"] = round(best / speed[peer], 1)
        if args.token_baseline:
            speed["fde_at_0.9_over_token_baseline"] = round(
                best / speed["token_baseline_ivf_one_query_a_call"], 1
            )
        print("  speed", speed, flush=True)
        out["speed_queries_per_s"] = speed
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["memory_bytes_per_item"] = memory(d_plain)
    return out


def token_speed(
    q_sets: list[np.ndarray], docs: TokenSets, owner: np.ndarray, baseline: dict[str, Any]
) -> dict[str, Any]:
    """The token-level baseline end to end: an IVF token index (FAISS), union, MaxSim over
    float32 sets held in memory (one product a query)."""
    import faiss

    kk = int(baseline["first_k_for_0.9"])
    vectors = np.ascontiguousarray(docs.vectors, dtype=np.float32)
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    nlist = min(2048, len(vectors) // 40)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = min(len(vectors), 100_000)
    ivf.train(vectors[np.random.default_rng(0).choice(len(vectors), sample, replace=False)])
    ivf.add(vectors)
    ivf.nprobe = 16
    starts = docs.offsets

    def run() -> None:
        for q in q_sets:
            _, near = ivf.search(q, kk)
            cand = np.unique(owner[near[near >= 0]])
            block = np.concatenate([vectors[starts[c] : starts[c + 1]] for c in cand])
            firsts = np.concatenate([[0], np.cumsum(starts[cand + 1] - starts[cand])[:-1]])
            scores = maxsim([q], block, firsts)[0]
            _ = cand[np.argsort(-scores)[:10]]

    return {"token_baseline_ivf_one_query_a_call": qps(run, len(q_sets)), "token_baseline_k": kk}


def memory(docs: TokenSets) -> dict[str, Any]:
    """Bytes per item: stored token vectors (as packed) and the FDE index of each kind."""
    per_doc = float(docs.lengths().mean())
    dim = docs.vectors.shape[1]
    sample = np.asarray(docs[0], dtype=np.float32)
    out: dict[str, Any] = {
        "token_vectors_float16": round(per_doc * len(pack(sample, "float16")) / len(sample)),
        "token_vectors_int8": round(per_doc * len(pack(sample, "int8")) / len(sample)),
        "token_vectors_float32": round(per_doc * dim * 4),
    }
    for params in FDE_SIZES:
        d = MultiVector(**params).fde_dim
        # flat: float32 in memory; hnsw: float32 + 2m level-0 links of 4 bytes (m=16);
        # hnsw-int8: one byte a dimension + links; ivfpq: one byte per sub-quantizer
        # (d/4 by default) + an 8-byte id.
        out[f"fde_{d}"] = {
            "flat": 4 * d,
            "hnsw": 4 * d + 2 * 16 * 4,
            "hnsw-int8": d + 2 * 16 * 4,
            "ivfpq": d // 4 + 8,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--speed-queries", type=int, default=100)
    parser.add_argument("--datasets", nargs="+", default=["scifact", "arcd"])
    parser.add_argument("--no-token-baseline", dest="token_baseline", action="store_false")
    parser.add_argument(
        "--special",
        action="store_true",
        help="measure mean-pooled search and exact MaxSim with [CLS]/[SEP] again (else the "
        "earlier run's figures: neither depends on the multi-vector encoding or search)",
    )
    parser.add_argument(
        "--partitions-only",
        action="store_true",
        help="measure only the FDE partitions fitted to the data beside SimHash (keeps the "
        "file's other figures)",
    )
    parser.add_argument("--embedding-cache", type=Path, default=Path(".data/embeddings-minilm.npz"))
    parser.add_argument("--out", type=Path, default=RESULTS / "multivector.json")
    args = parser.parse_args()
    pooled = cache_encoder(simsearch.DEFAULT_ENCODER, args.embedding_cache)
    # A run of some data sets keeps the others' figures from the file it updates.
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result |= {
        "machine": "shared 2-core machine (other work running): compare peers of one run",
        "encoder": "minilm-l6-v2-tokens (int8 ONNX token states, L2-normalised)",
        "default_fde": MultiVector().to_dict(),
    }
    for name in args.datasets:
        result[name] = one_dataset(name, args, pooled, result.get(name, {}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
