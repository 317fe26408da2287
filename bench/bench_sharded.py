"""Sharded collections on a local Ray cluster beside one plain collection, in one run:
ingest throughput and search queries per second with 1, 2 and 3 shards, the per-shard
and merge costs measured apart, and a scaling model for 100 million 384-d vectors built
from them (written into the output and bench/results/sharded.json).

The cluster is 3 Ray nodes inside this machine (1 CPU each, bound to 127.0.0.1), so the
shards share this machine's cores: the figures show the cost of going through Ray and
merging, not the speed-up of more machines, which the model estimates instead.

    python bench/bench_sharded.py [--items 20000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from simsearch.distributed.merge import merge

DIM = 384
OUT = Path(__file__).resolve().parent / "results" / "sharded.json"


def _cluster() -> Any:
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # keep ray.init on 127.0.0.1
    node = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 200 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(**node)
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
    return cluster


def _measure(col: Any, x: np.ndarray, q: np.ndarray, batch: int) -> dict[str, float]:
    ids = [str(i) for i in range(len(x))]
    start = time.perf_counter()
    for at in range(0, len(x), batch):
        col.add(ids[at : at + batch], vectors=x[at : at + batch])
    ingest = len(x) / (time.perf_counter() - start)
    col.search(q[:5], k=10)  # the index catches up once, outside the timings
    start = time.perf_counter()
    for row in q:
        col.search(row, k=10)
    single = len(q) / (time.perf_counter() - start)
    start = time.perf_counter()
    col.search(q, k=10)
    batched = len(q) / (time.perf_counter() - start)
    return {"ingest_items_per_s": ingest, "single_qps": single, "batch_qps": batched}


def _merge_cost(shards: int, k: int = 10, repeat: int = 2000) -> float:
    """Seconds the global phase takes for one query over ``shards`` shards' top ``k``."""
    rng = np.random.default_rng(0)
    rows = [
        [
            [
                (f"{s}-{j}", float(v), {}, None, None, None, None)
                for j, v in enumerate(sorted(rng.random(k), reverse=True))
            ]
        ]
        for s in range(shards)
    ]
    start = time.perf_counter()
    for _ in range(repeat):
        merge(rows, k=k, offset=0)
    return (time.perf_counter() - start) / repeat


def _hnsw_shard(x: np.ndarray, q: np.ndarray, root: Path) -> dict[str, float]:
    """One query's cost and recall@10 of an int8 HNSW shard, the index the model assumes."""
    exact = np.argsort(
        -(q / np.linalg.norm(q, axis=1, keepdims=True))
        @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T,
        axis=1,
    )[:, :10]
    index = simsearch.HNSW(exact_below=0, quantization="int8")
    with simsearch.Collection.open(root / "hnsw", metric="cosine", index=index) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        col.search(q[:5], k=10)
        for ef in (64, 128, 256, 512):  # the smallest beam reaching recall@10 = 0.95
            start = time.perf_counter()
            rows = [col.search(row, k=10, ef=ef)[0] for row in q]
            seconds = (time.perf_counter() - start) / len(q)
            found = [
                len({int(h.id) for h in row} & set(exact[i].tolist())) / 10
                for i, row in enumerate(rows)
            ]
            if np.mean(found) >= 0.95:
                break
    return {
        "seconds_per_query": seconds,
        "recall_at_10": float(np.mean(found)),
        "items": len(x),
        "ef": ef,
    }


def scaling_model(measured: dict[str, Any]) -> dict[str, Any]:
    """Shards and machines for 100M 384-d vectors at a stated rate and recall, from the
    measured per-shard cost, merge cost and Ray call overhead; every assumption named."""
    total, target_qps, shard_items = 100_000_000, 1_000, 5_000_000
    machine_cores, machine_ram_gb, utilisation = 16, 64, 0.5
    hnsw = measured["hnsw_shard"]
    # HNSW visits grow with log(n); at 5M items memory is no longer cache-resident: x2.
    growth = math.log(shard_items) / math.log(hnsw["items"]) * 2.0
    shard_seconds = hnsw["seconds_per_query"] * growth
    shards = math.ceil(total / shard_items)
    rpc = measured["ray_call_overhead_s"]
    merge_s = measured["merge_seconds"][str(20) if "20" in measured["merge_seconds"] else "3"]
    cpu_per_query = shards * (shard_seconds + rpc) + merge_s
    cores = target_qps * cpu_per_query / utilisation
    # RAM per vector: int8 codes (384 B) + graph links (M=16: 2*16*4 B) + id map ~40 B;
    # float32 vectors for rescoring stay in the SQLite store on disk (1.5 KB each).
    ram_gb = total * (384 + 128 + 40) / 1e9
    machines = max(math.ceil(cores / machine_cores), math.ceil(ram_gb / (machine_ram_gb * 0.7)))
    return {
        "target": {
            "items": total,
            "dim": DIM,
            "qps": target_qps,
            "recall_at_10": hnsw["recall_at_10"],
        },
        "assumptions": {
            "index": f"HNSW int8 per shard, ef={hnsw['ef']} (measured), rescored from the store",
            "shard_items": shard_items,
            "hnsw_cost_growth_to_shard_size": round(growth, 2),
            "machine": f"{machine_cores} cores, {machine_ram_gb} GB RAM, NVMe for the store",
            "cpu_utilisation": utilisation,
            "fan_out": "every query visits every shard (no routing by content)",
            "store_on_disk_per_vector_bytes": measured["store_bytes_per_item"],
        },
        "shard_seconds_per_query": shard_seconds,
        "cpu_seconds_per_query": cpu_per_query,
        "shards": shards,
        "cores_needed": math.ceil(cores),
        "ram_gb_for_indexes": round(ram_gb, 1),
        "disk_tb_for_stores": round(total * measured["store_bytes_per_item"] / 1e12, 2),
        "machines": machines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((args.items, DIM)).astype(np.float32)
    q = rng.standard_normal((args.queries, DIM)).astype(np.float32)
    root = Path(tempfile.mkdtemp(prefix="bench-sharded-"))
    cluster = _cluster()
    rows: dict[str, Any] = {}
    try:
        with simsearch.Collection.open(root / "plain", metric="cosine") as plain:
            rows["plain"] = _measure(plain, x, q, args.batch)
            store_bytes = plain.info()["size_bytes"] / args.items
        for shards in (1, 2, 3):
            with simsearch.ShardedCollection.open(
                root / f"s{shards}", shards=shards, metric="cosine"
            ) as col:
                rows[f"sharded-{shards}"] = _measure(col, x, q, args.batch)
        hnsw = _hnsw_shard(x, q, root)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    plain = rows["plain"]
    for row in rows.values():
        row["ingest_vs_plain"] = row["ingest_items_per_s"] / plain["ingest_items_per_s"]
        row["single_qps_vs_plain"] = row["single_qps"] / plain["single_qps"]
        row["batch_qps_vs_plain"] = row["batch_qps"] / plain["batch_qps"]
    measured: dict[str, Any] = {
        "items": args.items,
        "dim": DIM,
        "queries": args.queries,
        "rows": rows,
        # One shard does the plain collection's work; the rest of its latency is Ray's.
        "ray_call_overhead_s": 1 / rows["sharded-1"]["single_qps"] - 1 / plain["single_qps"],
        "merge_seconds": {str(s): _merge_cost(s) for s in (3, 20, 100)},
        "hnsw_shard": hnsw,
        "store_bytes_per_item": store_bytes,
        "machine": "2 shared cores (other work running); 3 Ray nodes on this one machine",
    }
    measured["model"] = scaling_model(measured)
    OUT.write_text(json.dumps(measured, indent=2) + "\n")
    print(
        f"{'':12} {'ingest/s':>10} {'x plain':>8} {'1-query q/s':>12} {'x plain':>8} "
        f"{'batch q/s':>10} {'x plain':>8}"
    )
    for name, row in rows.items():
        print(
            f"{name:12} {row['ingest_items_per_s']:10.0f} {row['ingest_vs_plain']:8.2f} "
            f"{row['single_qps']:12.1f} {row['single_qps_vs_plain']:8.2f} "
            f"{row['batch_qps']:10.1f} {row['batch_qps_vs_plain']:8.2f}"
        )
    print(f"Ray call overhead per query: {measured['ray_call_overhead_s'] * 1e3:.2f} ms")
    print(
        "merge per query: "
        + ", ".join(f"{s} shards {v * 1e6:.0f} us" for s, v in measured["merge_seconds"].items())
    )
    print(
        f"int8 HNSW shard of {hnsw['items']:,}: {hnsw['seconds_per_query'] * 1e3:.2f} ms a query, "
        f"recall@10 {hnsw['recall_at_10']:.3f}"
    )
    print("model:", json.dumps(measured["model"], indent=2))


if __name__ == "__main__":
    main()
