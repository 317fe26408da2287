"""Model upgrades of collections of the user's own vectors: paired vectors fit the map,
then the user brings the new vectors of every item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import simsearch

N, OLD_DIM, NEW_DIM = 500, 32, 48


def spaces(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Old vectors in clusters, and a new model that sees the same items through a
    random linear view with a little noise of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, OLD_DIM))
    old = centres[rng.integers(0, 12, N)] + 0.4 * rng.normal(size=(N, OLD_DIM))
    view = rng.normal(size=(OLD_DIM, NEW_DIM)) / np.sqrt(OLD_DIM)
    new = old @ view + 0.05 * rng.normal(size=(N, NEW_DIM))
    return old.astype(np.float32), new.astype(np.float32), view


def brute(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(q @ v.T), axis=1)[:, :k].tolist()


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    old, _, _ = spaces()
    path = tmp_path / "c"
    with simsearch.Collection.open(path) as col:
        col.add([f"v{i}" for i in range(N)], vectors=old, texts=[f"item {i}" for i in range(N)])
    return path


def test_mapped_new_vectors_find_what_the_old_ones_found(collection: Path) -> None:
    old, new, _ = spaces()
    ids = [f"v{i}" for i in range(N)]
    with simsearch.Collection.open(collection) as col:
        summary = col.migrate_vectors(ids[:200], new[:200])
        assert summary["to"] is None
        assert summary["dim"] == NEW_DIM
        assert summary["method"] in {"procrustes", "ridge", "lowrank"}
        assert col.config.dim == OLD_DIM  # the index stays in the old space for now
        queries = new[300:340]  # items the map never saw
        got = [[int(h.id[1:]) for h in row] for row in col.search(queries, k=10, exact=True)]
    want = brute(old, old[300:340], 10)
    overlap = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    # The new model alone agrees with the old on this share; the map must do as well.
    alone = brute(new, new[300:340], 10)
    ceiling = np.mean([len(set(a) & set(w)) / 10 for a, w in zip(alone, want, strict=True)])
    assert overlap >= max(0.6, ceiling - 0.05), (overlap, ceiling)


def test_backfilling_the_new_vectors_moves_the_collection_to_the_new_space(
    collection: Path,
) -> None:
    _, new, _ = spaces()
    ids = [f"v{i}" for i in range(N)]
    with simsearch.Collection.open(collection) as col:
        col.migrate_vectors(ids[:100], new[:100])
        # During the upgrade, writes bring the new model's vectors; old-space ones are refused.
        with pytest.raises(simsearch.DimensionMismatchError, match="new model's"):
            col.add(["late"], vectors=np.ones(OLD_DIM))
        assert len(col) == N  # and nothing was written
        with pytest.raises(simsearch.InvalidArgumentError, match="new model's vectors"):
            col.add(["late"], texts=["a text alone"])
        late = np.linspace(-1, 1, NEW_DIM, dtype=np.float32)
        col.add(["late"], vectors=late)
        with pytest.raises(simsearch.InvalidArgumentError, match="backfill_vectors"):
            col.backfill()
        assert col.backfill_vectors(ids[100:300], new[100:300]) == N - 300
        assert col.config.dim == OLD_DIM
        assert col.backfill_vectors(ids[300:], new[300:]) == 0
        assert col.config.dim == NEW_DIM
        assert col.config.encoder is None
        got = {i.id: i.vector for i in col.iter_items()}
        assert len(got) == N + 1
        for i, key in enumerate(ids):
            np.testing.assert_array_equal(got[key], new[i])
        np.testing.assert_array_equal(got["late"], late)
        hits = col.search(new[:5], k=10, exact=True)
        vectors = np.stack([got[k] for k in [*ids, "late"]])
        names = [*ids, "late"]
        assert [[h.id for h in row] for row in hits] == [
            [names[j] for j in row] for row in brute(vectors, new[:5], 10)
        ]
    with simsearch.Collection.open(collection) as col:  # and it stays so
        assert col.config.dim == NEW_DIM
        with pytest.raises(simsearch.InvalidArgumentError, match="migrate_vectors"):
            col.backfill_vectors(ids[:1], new[:1])


def test_an_item_rewritten_during_the_upgrade_keeps_its_new_vector(collection: Path) -> None:
    _, new, _ = spaces()
    ids = [f"v{i}" for i in range(N)]
    with simsearch.Collection.open(collection) as col:
        col.migrate_vectors(ids[:50], new[:50])
        col.backfill_vectors(ids[50:499], new[50:499])
        # Written after its new vector was given, with vectors and text: the pair stays.
        col.upsert(["v10"], vectors=new[11], texts=["rewritten"])
        assert col.backfill_vectors(ids[499:], new[499:]) == 0
        assert col.get(["v10"])[0].text == "rewritten"
        np.testing.assert_array_equal(col.get(["v10"])[0].vector, new[11])


def test_bad_vector_migrations_write_nothing(collection: Path) -> None:
    _, new, _ = spaces()
    ids = [f"v{i}" for i in range(N)]
    with simsearch.Collection.open(collection) as col:
        with pytest.raises(simsearch.InvalidArgumentError, match="migrate_vectors"):
            col.backfill_vectors(ids[:5], new[:5])
        with pytest.raises(simsearch.InvalidArgumentError, match="ids but"):
            col.migrate_vectors(ids[:20], new[:19])
        with pytest.raises(simsearch.InvalidArgumentError, match="at least 10"):
            col.migrate_vectors(ids[:5], new[:5])
        with pytest.raises(simsearch.ItemNotFoundError, match="nope"):
            col.migrate_vectors([*ids[:20], "nope"], new[:21])
        with pytest.raises(simsearch.InvalidIdError, match="more than once"):
            col.migrate_vectors(ids[:20] + ids[:1], new[:21])
        bad = new[:20].copy()
        bad[3, 3] = np.nan
        with pytest.raises(simsearch.InvalidVectorError, match="NaN"):
            col.migrate_vectors(ids[:20], bad)
        with pytest.raises(simsearch.InvalidArgumentError, match="method must be"):
            col.migrate_vectors(ids[:20], new[:20], method="cca")
        assert col.info().get("migration") is None
        col.migrate_vectors(ids[:20], new[:20])
        with pytest.raises(simsearch.DimensionMismatchError):
            col.backfill_vectors(ids[20:30], new[20:30, :10])
        with pytest.raises(simsearch.ItemNotFoundError):
            col.backfill_vectors(["v30", "ghost"], new[30:32])
        with pytest.raises(simsearch.DimensionMismatchError, match="new model"):
            col.search(np.ones(OLD_DIM), k=3)
        assert col.info()["migration"]["remaining"] == N - 20
