"""Child process of the crash tests: ingests batches and reports each acknowledged one."""

from __future__ import annotations

import sys

import numpy as np

import simsearch

BATCH = 50
DIM = 16


def batch_vectors(b: int) -> np.ndarray:
    return np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    with simsearch.Collection.open(path, metric="l2") as col:
        b = start
        while True:
            ids = [f"b{b}-{i}" for i in range(BATCH)]
            col.add(ids, vectors=batch_vectors(b), metadata=[{"batch": b}] * BATCH)
            # Printed only after add() returned: everything named here must survive a kill.
            print(b, flush=True)
            b += 1


if __name__ == "__main__":
    main()
