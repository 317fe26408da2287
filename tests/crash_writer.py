"""Child process of the crash tests: ingests batches and reports each acknowledged one."""

from __future__ import annotations

import sys

import numpy as np

import simsearch

BATCH = 50
DIM = 16


def batch_vectors(b: int) -> np.ndarray:
    return np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)


def index_of(kind: str) -> simsearch.Flat | simsearch.HNSW | simsearch.IVFPQ:
    """The index a crash test uses; approximate kinds are on from the first items."""
    kinds: dict[str, simsearch.Flat | simsearch.HNSW | simsearch.IVFPQ] = {
        "flat": simsearch.Flat(),
        "hnsw": simsearch.HNSW(m=8, ef_construction=64, exact_below=0),
        "int8": simsearch.HNSW(m=8, ef_construction=64, exact_below=0, quantization="int8"),
        "ivfpq": simsearch.IVFPQ(nbits=4, exact_below=0),
        # A graph with a payload index on "batch", searched through it and saved often.
        "fields": simsearch.HNSW(m=8, ef_construction=64, exact_below=0),
    }
    return kinds[kind]


def main() -> None:
    path, start, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    col = simsearch.Collection.open(path, metric="l2", index=index_of(kind))
    if kind == "fields":
        col.index_field("batch", "integer")
    with col:
        b = start
        while True:
            ids = [f"b{b}-{i}" for i in range(BATCH)]
            col.add(ids, vectors=batch_vectors(b), metadata=[{"batch": b}] * BATCH)
            # Printed only after add() returned: everything named here must survive a kill.
            print(b, flush=True)
            if kind != "flat":
                # Kills also land while the graph absorbs writes, compacts and is saved.
                col.search(batch_vectors(b)[:2], k=3)
                if b % 3 == 0:
                    col.delete([f"b{b}-{BATCH - 1}"])
                if b % 4 == 0:
                    col.optimize()
            if kind == "fields":
                col.search(batch_vectors(b)[:1], k=3, where={"batch": {"$gte": b - 2}})
                if b % 5 == 0:  # closing saves the payload index: kills land there too
                    col.close()
                    col = simsearch.Collection.open(path)
            b += 1


if __name__ == "__main__":
    main()
