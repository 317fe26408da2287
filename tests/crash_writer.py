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
        # Texts in the lexical index: added, replaced by upserts, deleted.
        "texts": simsearch.Flat(),
    }
    return kinds[kind]


def text_of(b: int, i: int, version: int = 0) -> str:
    """An item's text: a word of its own (``w{b}x{i}v{version}``) and one all texts share."""
    return f"w{b}x{i}v{version} common words"


def batch_sets(b: int) -> list[np.ndarray]:
    """A multi-vector batch: sets of 1 to 6 vectors, fixed by the batch number."""
    rng = np.random.default_rng(b)
    return [rng.standard_normal((int(rng.integers(1, 7)), DIM)) for _ in range(BATCH)]


def write_sets(path: str, start: int) -> None:
    """Add multi-vector batches, replace a set of the previous one and delete another."""
    multi = simsearch.MultiVector(k_sim=3, r_reps=4, storage="float16")  # sets back to 1e-3
    with simsearch.Collection.open(path, dim=DIM, multivector=multi) as col:
        b = start
        while True:
            ids = [f"b{b}-{i}" for i in range(BATCH)]
            col.add(ids, multivectors=batch_sets(b), metadata=[{"batch": b}] * BATCH)
            print(b, flush=True)
            if b > 0:
                prev = b - 1
                replaced = [-batch_sets(prev)[0]]
                col.upsert(f"b{prev}-0", multivectors=replaced, metadata={"batch": prev})
                col.delete([f"b{prev}-1"])
                print(f"changed {prev}", flush=True)
            col.search(batch_sets(b)[0], k=3)
            b += 1


def main() -> None:
    path, start, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == "sets":
        write_sets(path, start)
        return
    col = simsearch.Collection.open(path, metric="l2", index=index_of(kind))
    if kind == "fields":
        col.index_field("batch", "integer")
    with col:
        b = start
        while True:
            ids = [f"b{b}-{i}" for i in range(BATCH)]
            texts = [text_of(b, i) for i in range(BATCH)] if kind == "texts" else None
            col.add(ids, vectors=batch_vectors(b), texts=texts, metadata=[{"batch": b}] * BATCH)
            # Printed only after add() returned: everything named here must survive a kill.
            print(b, flush=True)
            if kind == "texts" and b > 0:  # the previous batch: a text replaced, one deleted
                prev = b - 1
                vector, text = batch_vectors(prev)[:1], [text_of(prev, 0, 1)]
                col.upsert(f"b{prev}-0", vectors=vector, texts=text, metadata={"batch": prev})
                col.delete([f"b{prev}-1"])
                print(f"changed {prev}", flush=True)
            if kind not in ("flat", "texts"):
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
