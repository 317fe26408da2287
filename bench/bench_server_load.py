"""Load run of the HTTP server on loopback: concurrent clients mixing searches and writes.

    python bench/bench_server_load.py [--clients 8] [--seconds 30] [--n 20000]

Starts `simsearch serve` on 127.0.0.1 at a free port (with API keys), fills a
collection, then runs the clients for a fixed time. Every write is checked
afterwards (nothing lost). Writes bench/results/server_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server_process import KEYS, key_file, running_server

RESULTS = Path(__file__).parent / "results"
DIM = 384


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--n", type=int, default=20_000, help="items before the run")
    parser.add_argument("--write-share", type=float, default=0.2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="simsearch-load-"))
    with running_server(root / "data", keys=key_file(root / "keys.json")) as server:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        httpx.post(
            f"{server.url}/collections", headers=admin, json={"name": "load", "dim": DIM}
        ).raise_for_status()
        rng = np.random.default_rng(0)
        for start in range(0, args.n, 1000):
            vecs = rng.standard_normal((1000, DIM)).astype(np.float32)
            httpx.post(
                f"{server.url}/collections/load/add",
                headers=admin,
                timeout=120,
                json={
                    "ids": [f"base-{i}" for i in range(start, start + 1000)],
                    "vectors": vecs.tolist(),
                    "metadata": [{"shard": i % 10} for i in range(start, start + 1000)],
                },
            ).raise_for_status()

        lock = threading.Lock()
        latencies: dict[str, list[float]] = {"search": [], "write": []}
        errors: list[str] = []
        written: list[str] = []
        deadline = time.monotonic() + args.seconds

        def client(worker: int) -> None:
            local = np.random.default_rng(worker + 1)
            headers = {"Authorization": f"Bearer {KEYS['admin']}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                n = 0
                while time.monotonic() < deadline:
                    is_write = local.random() < args.write_share
                    start = time.perf_counter()
                    if is_write:
                        ids = [f"w{worker}-{n}-{j}" for j in range(10)]
                        body = {
                            "ids": ids,
                            "vectors": local.standard_normal((10, DIM)).tolist(),
                            "metadata": [{"shard": int(local.integers(10))}] * 10,
                        }
                        r = http.post("/collections/load/add", json=body)
                    else:
                        body = {"query": local.standard_normal(DIM).tolist(), "k": 10}
                        if local.random() < 0.5:
                            body["where"] = {"shard": {"$in": [int(local.integers(10)), 3]}}
                        r = http.post("/collections/load/search", json=body)
                    elapsed = time.perf_counter() - start
                    with lock:
                        if r.status_code >= 400 or (
                            not is_write and len(r.json()["results"][0]) != 10
                        ):
                            errors.append(f"{r.status_code} {r.text[:200]}")
                        else:
                            latencies["write" if is_write else "search"].append(elapsed)
                            if is_write:
                                written.extend(ids)
                    n += 1

        threads = [threading.Thread(target=client, args=(w,)) for w in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started

        info = httpx.get(f"{server.url}/collections/load", headers=admin).json()
        found = 0
        for start in range(0, len(written), 1000):
            r = httpx.post(
                f"{server.url}/collections/load/get",
                headers=admin,
                timeout=120,
                json={"ids": written[start : start + 1000]},
            )
            found += len(r.json().get("items", [])) if r.status_code == 200 else 0
        total = len(latencies["search"]) + len(latencies["write"])
        report = {
            "setup": {
                "clients": args.clients,
                "seconds": args.seconds,
                "items_before": args.n,
                "dim": DIM,
                "write_share": args.write_share,
                "cpus": os.cpu_count(),
                "search": "k=10, half of them with a $in filter",
                "write": "add of 10 new vectors per request",
            },
            "requests": total,
            "errors": len(errors),
            "error_samples": errors[:5],
            "throughput_rps": total / wall,
            "search": {
                "count": len(latencies["search"]),
                "p50_ms": percentile(latencies["search"], 50),
                "p99_ms": percentile(latencies["search"], 99),
            },
            "write": {
                "count": len(latencies["write"]),
                "p50_ms": percentile(latencies["write"], 50),
                "p99_ms": percentile(latencies["write"], 99),
            },
            "items_written": len(written),
            "items_found_after": found,
            "lost": len(written) - found,
            "count_after": info["count"],
            "count_expected": args.n + len(written),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if report["errors"] or report["lost"] or report["count_after"] != report["count_expected"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
