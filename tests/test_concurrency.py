"""Every public operation at once on one collection, then the store against an oracle.

Two writers (a batch in five repeats a stored id and must be refused whole), a
deleter, a searcher, a hubness report, calibration, model upgrades with their
backfill, and optimize() share one collection for a bounded time. Afterwards
every acknowledged write is present, every refused one absent, every stored
vector is its text's embedding, and the only exceptions seen are documented.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import simsearch
from simsearch.encoders import register_encoder

DIM = 16
SECONDS = 6.0


class HashEncoder:
    """A deterministic encoder: each text's vector is drawn from a generator seeded by its
    hash (a real encoder with none of a model's cost, so the threads contend on the store)."""

    dim = DIM

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = "1"

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: str = "passage",
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(f"{self.name}:{text}".encode()).digest()[:8])
            out[i] = np.random.default_rng(seed).standard_normal(DIM)
        if progress is not None:
            progress(len(texts))
        return out


ENCODERS = ("hash-a", "hash-b")
for _name in ENCODERS:
    register_encoder(_name, lambda n=_name: HashEncoder(n))


def test_every_operation_at_once_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    index = simsearch.HNSW(m=8, ef_construction=40, exact_below=50)
    col = simsearch.Collection.open(tmp_path / "c", encoder="hash-a", index=index)
    seed_ids = [f"seed-{i}" for i in range(200)]
    col.add(seed_ids, texts=[f"seed text {i}" for i in seed_ids], metadata=[{"g": 0}] * 200)
    stop = time.monotonic() + SECONDS
    lock = threading.Lock()
    added: set[str] = set(seed_ids)
    refused: list[str] = []
    deleted: set[str] = set()
    unexpected: list[BaseException] = []
    counts: dict[str, int] = {}

    def tally(name: str) -> None:
        with lock:
            counts[name] = counts.get(name, 0) + 1

    def run(name: str, step: Callable[[int], None], documented: tuple[type, ...] = ()) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                step(n)
                tally(name)
            except documented:
                tally(f"{name} refused")
            except BaseException as exc:
                unexpected.append(exc)
                return
            n += 1

    def writer(who: str) -> Callable[[int], None]:
        def step(n: int) -> None:
            ids = [f"{who}-{n}-{j}" for j in range(20)]
            if n % 5 == 2:
                ids[7] = seed_ids[n % len(seed_ids)]  # refused whole
            try:
                col.add(ids, texts=[f"text of {i}" for i in ids], metadata=[{"g": n % 3}] * 20)
            except (simsearch.DuplicateIdError, simsearch.ConfigMismatchError):
                with lock:
                    refused.extend(i for i in ids if i not in seed_ids)
                raise
            with lock:
                added.update(ids)

        return step

    def deleter(n: int) -> None:
        with lock:
            mine = sorted(i for i in added - deleted if i.startswith("w1-"))[:5]
        if mine:
            col.delete(mine)
            with lock:
                deleted.update(mine)

    def searcher(n: int) -> None:
        where = {"g": n % 3} if n % 2 else None
        res = col.search([f"text of w1-{n}-0", "seed text seed-3"], k=7, where=where)
        for row in res:
            ids = [h.id for h in row]
            assert len(ids) == len(set(ids)) <= 7
            if where is not None:
                assert all(h.metadata["g"] == n % 3 for h in row)

    def upgrader(n: int) -> None:
        current = col.info()["encoder"]["name"]
        col.migrate(ENCODERS[current == ENCODERS[0]], sample=30)
        col.backfill(batch=40)

    documented_upgrade = (simsearch.ConfigMismatchError, simsearch.InvalidArgumentError)
    threads = [
        threading.Thread(
            target=run,
            args=(w, writer(w), (simsearch.DuplicateIdError, simsearch.ConfigMismatchError)),
        )
        for w in ("w1", "w2")
    ]
    threads += [
        threading.Thread(target=run, args=("delete", deleter)),
        threading.Thread(target=run, args=("search", searcher)),
        threading.Thread(
            target=run, args=("hubness", lambda n: col.hubness_report(k=3, sample=30))
        ),
        threading.Thread(target=run, args=("calibrate", lambda n: col.calibrate())),
        threading.Thread(target=run, args=("upgrade", upgrader, documented_upgrade)),
        threading.Thread(target=run, args=("optimize", lambda n: col.optimize())),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unexpected, unexpected[:3]
    for name in ("w1", "w2", "delete", "search", "hubness", "calibrate", "upgrade", "optimize"):
        assert counts.get(name, 0) >= 1, counts
    assert counts.get("w1 refused", 0) + counts.get("w2 refused", 0) >= 1, counts

    # Finish any upgrade in flight, then hold the store against the oracle.
    if col.info()["migration"] is not None:
        col.backfill()
    col.close()
    with simsearch.Collection.open(tmp_path / "c") as col:
        items = {i.id: i for i in col.iter_items()}
        assert set(items) == added - deleted
        assert not set(refused) & set(items)
        encoder = simsearch.get_encoder(col.info()["encoder"]["name"])
        ids = sorted(items)
        texts = [items[i].text or "" for i in ids]
        stored = np.stack([items[i].vector for i in ids])
        np.testing.assert_allclose(stored, encoder.encode(texts), atol=1e-6)
        # And search over them is exact: the graph holds what the store holds.
        queries = encoder.encode(["text of w2-3-1", "seed text seed-9"])
        got = col.search(queries, k=10, exact=True)
        unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        want = np.argsort(-(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T)
        for row, best in zip(got, want[:, :10], strict=True):
            assert [h.id for h in row] == [ids[j] for j in best]
        assert len(col.search(queries, k=10)[0]) == 10
