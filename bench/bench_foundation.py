"""Foundation benchmarks: durable ingest, exact search and reopen, each beside a peer.

Every figure is measured in this one process beside its peer on the same data
and reported as a ratio (timings on shared machines are noisy; ratios are not).

    python bench/bench_foundation.py [--n 100000] [--dim 384] [--queries 1000]

Writes bench/results/foundation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

import simsearch
from simsearch.index import FlatIndex
from simsearch.store import Changes
from simsearch.store.sqlite import PAGE_SIZE, WAL_CHECKPOINT_PAGES
from simsearch.types import Metric

RESULTS = Path(__file__).parent / "results"


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_ingest(root: Path, x: np.ndarray, batch: int) -> dict[str, float]:
    """simsearch.add (one durable transaction per batch) against two raw ceilings."""
    ids = [f"doc-{i}" for i in range(len(x))]

    def simsearch_ingest() -> None:
        path = root / "ingest"
        shutil.rmtree(path, ignore_errors=True)
        with simsearch.Collection.open(path, metric="cosine") as col:
            for s in range(0, len(x), batch):
                col.add(ids[s : s + batch], vectors=x[s : s + batch])

    def raw_sqlite() -> None:
        # The storage engine alone: same schema and pragmas, one transaction per batch.
        path = root / "raw.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        conn.execute(
            "CREATE TABLE t (row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
            "seq INTEGER NOT NULL, v BLOB NOT NULL, meta TEXT NOT NULL)"
        )
        conn.execute("CREATE INDEX t_seq ON t (seq)")
        for s in range(0, len(x), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO t (id, seq, v, meta) VALUES (?, ?, ?, '{}')",
                ((ids[i], s, x[i].tobytes()) for i in range(s, min(s + batch, len(x)))),
            )
            conn.execute("COMMIT")
        conn.close()

    def append_fsync() -> None:
        # A file append with fsync per batch: the floor of any durable write.
        path = root / "append.bin"
        with path.open("wb") as fh:
            for s in range(0, len(x), batch):
                fh.write(x[s : s + batch].tobytes())
                fh.flush()
                os.fsync(fh.fileno())

    t_sim = best_of(2, simsearch_ingest)
    t_sql = best_of(2, raw_sqlite)
    t_app = best_of(2, append_fsync)
    n = len(x)
    return {
        "vectors_per_s": n / t_sim,
        "raw_sqlite_vectors_per_s": n / t_sql,
        "append_fsync_vectors_per_s": n / t_app,
        "ratio_vs_raw_sqlite": t_sql / t_sim,
        "ratio_vs_append_fsync": t_app / t_sim,
    }


def bench_search(root: Path, x: np.ndarray, q: np.ndarray, k: int) -> dict[str, float]:
    """Exact search against FAISS IndexFlatIP, at two levels.

    ``FlatIndex.search`` returns row numbers and scores, as IndexFlatIP does;
    ``Collection.search`` also fetches each hit's id, text and metadata from the store.
    """
    col = simsearch.Collection.open(root / "ingest")
    col.search(q[:1], k=k)  # the index is loaded at open; warm the code path
    flat = FlatIndex(Metric.COSINE, x.shape[1])
    flat.apply(
        Changes(seq=1, rows=np.arange(len(x)), vectors=x, deleted=np.empty(0, dtype=np.int64))
    )
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    index.search(q[:1], k)
    out: dict[str, object] = {}
    runs = {
        "collection": lambda: out.__setitem__("collection", col.search(q, k=k)),
        "flat_index": lambda: out.__setitem__("flat_index", flat.search(q, k)),
        "faiss": lambda: out.__setitem__("faiss", index.search(q, k)),
    }
    # Interleaved repeats so that machine noise hits all three alike; best of each.
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):
        for name, fn in runs.items():
            times[name].append(best_of(1, fn))
    col.close()
    _, faiss_rows = out["faiss"]  # type: ignore[misc]
    _, flat_rows = out["flat_index"]  # type: ignore[misc]
    col_rows = np.array(
        [[int(str(i).split("-")[1]) for i in row] for row in out["collection"].ids]  # type: ignore[attr-defined]
    )
    qps = {name: len(q) / min(t) for name, t in times.items()}
    return {
        "collection_qps": qps["collection"],
        "flat_index_qps": qps["flat_index"],
        "faiss_flat_ip_qps": qps["faiss"],
        "collection_ratio_vs_faiss": qps["collection"] / qps["faiss"],
        "flat_index_ratio_vs_faiss": qps["flat_index"] / qps["faiss"],
        "top_k_agreement_with_faiss": float(
            (np.sort(flat_rows, 1) == np.sort(faiss_rows, 1)).mean()
        ),
        "collection_agreement_with_flat_index": float((col_rows == flat_rows).mean()),
    }


def bench_reopen(root: Path, x: np.ndarray) -> dict[str, float]:
    """Collection.open of a stored collection (vectors loaded) against faiss.read_index."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    faiss_file = str(root / "flat.faiss")
    faiss.write_index(index, faiss_file)

    def reopen() -> None:
        simsearch.Collection.open(root / "ingest").close()

    def peer() -> None:
        faiss.read_index(faiss_file)

    t_ours = best_of(3, reopen)
    t_peer = best_of(3, peer)
    return {
        "reopen_s": t_ours,
        "faiss_read_index_s": t_peer,
        "ratio_time_vs_faiss": t_ours / t_peer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((args.n, args.dim)))
    q = unit(rng.standard_normal((args.queries, args.dim)))
    root = Path(tempfile.mkdtemp(prefix="simsearch-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        report = {
            "setup": {
                "n": args.n,
                "dim": args.dim,
                "queries": args.queries,
                "batch": args.batch,
                "k": args.k,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "faiss": faiss.__version__,
                "numpy": np.__version__,
            },
            "ingest": bench_ingest(root, x, args.batch),
            "exact_search": bench_search(root, x, q, args.k),
            "reopen": bench_reopen(root, x),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "foundation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
