"""Child process of the backfill crash test: runs a backfill and reports each batch."""

from __future__ import annotations

import sys

import simsearch


def main() -> None:
    path, batch = sys.argv[1], int(sys.argv[2])
    with simsearch.Collection.open(path) as col:
        print("started", flush=True)
        col.backfill(batch=batch, progress=lambda n: print(n, flush=True))
        print("finished", flush=True)


if __name__ == "__main__":
    main()
