"""Multi-vector collections: sets of vectors per item, FDE candidates, exact MaxSim."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.multivector import scoring
from simsearch.multivector.fde import FDEEncoder, MultiVector
from simsearch.multivector.tokens import MAX_QUERY_SET, pack, unpack

DIM = 8


def maxsim(q: np.ndarray, p: np.ndarray) -> float:
    return float((np.asarray(q, np.float64) @ np.asarray(p, np.float64).T).max(axis=1).sum())


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_sets(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 12)), DIM)) for _ in range(n)]


def make(path: Path, n: int = 60, **kw: Any) -> tuple[simsearch.Collection, list[np.ndarray]]:
    # float16 storage (not the int8 default): sets come back within 1e-3 of what was added
    multi = simsearch.MultiVector(storage="float16")
    col = simsearch.Collection.open(path, dim=DIM, multivector=multi, **kw)
    sets = random_sets(n)
    col.add([f"d{i}" for i in range(n)], multivectors=sets, metadata=[{"n": i} for i in range(n)])
    return col, sets


def exact_order(q: np.ndarray, sets: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    scored = [(i, maxsim(unit(q), unit(s))) for i, s in sets.items()]
    return sorted(scored, key=lambda t: -t[1])


def test_search_reranks_fde_candidates_by_exact_maxsim(tmp_path: Path) -> None:
    col, sets = make(tmp_path / "c")
    with col:
        assert col.config.multivector is not None
        assert col.config.multivector.dim == DIM
        q = sets[5][:3] + 0.05
        want = exact_order(q, {f"d{i}": s for i, s in enumerate(sets)})
        hits = col.search(q, k=5, candidates=60)[0]
        assert [h.id for h in hits] == [i for i, _ in want[:5]]
        # float16 storage: scores within its precision of exact MaxSim
        assert all(abs(h.score - s) < 5e-3 for h, (_, s) in zip(hits, want, strict=False))
        exact = col.search(q, k=5, exact=True)[0]
        assert [h.id for h in exact] == [i for i, _ in want[:5]]
        # fewer candidates: still exact MaxSim scores, of live items, best first
        few = col.search(q, k=5, candidates=10)[0]
        scores = [h.score for h in few]
        assert scores == sorted(scores, reverse=True)
        assert hits[0].id == few[0].id == "d5"


def test_filters_apply_before_ranking(tmp_path: Path) -> None:
    col, sets = make(tmp_path / "c")
    with col:
        q = sets[5][:3]
        hits = col.search(q, k=10, where={"n": {"$gte": 30}}, exact=True)[0]
        want = exact_order(q, {f"d{i}": s for i, s in enumerate(sets) if i >= 30})
        assert [h.id for h in hits] == [i for i, _ in want[:10]]
        few = col.search(q, k=10, where={"n": {"$lt": 3}})[0]
        assert {h.id for h in few} == {"d0", "d1", "d2"}


def test_batches_upserts_deletes_and_reopen(tmp_path: Path) -> None:
    col, sets = make(tmp_path / "c")
    new = np.random.default_rng(9).standard_normal((4, DIM))
    col.upsert(["d0"], multivectors=[new], metadata=[{"n": 0}])
    assert col.delete(["d1"]) == 1
    col.close()
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert len(col) == len(sets) - 1
        got = col.get(["d0"], include=["multivector"])[0]
        np.testing.assert_allclose(got.multivector, unit(new), atol=2e-3)
        assert got.vector is None
        res = col.search([new, sets[2]], k=1)
        assert [row[0].id for row in res] == ["d0", "d2"]
        assert all(h.id != "d1" for h in col.search(sets[1], k=60)[0])
        con = sqlite3.connect(tmp_path / "c" / "simsearch.sqlite3")
        assert con.execute("SELECT count(*) FROM tokens").fetchone()[0] == len(sets) - 1
        con.close()
        assert col.info()["multivector"]["dim"] == DIM


@pytest.mark.parametrize("index", [simsearch.HNSW(exact_below=0), simsearch.IVFPQ(exact_below=0)])
def test_any_index_kind_holds_the_encodings(tmp_path: Path, index: Any) -> None:
    col, sets = make(tmp_path / "c", n=300, index=index)
    with col:
        hit = col.search(sets[17], k=1, candidates=50)[0][0]
        assert hit.id == "d17"
        assert abs(hit.score - len(sets[17])) < 1e-2  # a set's MaxSim with itself


def test_dot_metric_keeps_raw_vectors_and_int8_storage(tmp_path: Path) -> None:
    multi = simsearch.MultiVector(storage="int8", k_sim=3, r_reps=8)
    with simsearch.Collection.open(tmp_path / "c", metric="dot", multivector=multi) as col:
        sets = random_sets(20)
        col.add([f"d{i}" for i in range(20)], multivectors=sets)
        got = col.get(["d3"], include=["multivector"])[0].multivector
        assert got is not None
        np.testing.assert_allclose(got, sets[3], atol=np.abs(sets[3]).max() / 127)
        hit = col.search(sets[3], k=1, exact=True)[0][0]
        assert hit.id == "d3"
        assert abs(hit.score - maxsim(sets[3], sets[3])) < 0.1
    with simsearch.Collection.open(tmp_path / "c", metric="dot", dim=DIM) as col:
        saved = col.config.multivector
        assert saved is not None
        assert saved.same_encoding(multi)
        assert saved.dim == DIM
        assert not saved.cosine
    with pytest.raises(simsearch.ConfigMismatchError, match="metric 'dot'"):
        simsearch.Collection.open(tmp_path / "c", metric="cosine")
    with pytest.raises(simsearch.ConfigMismatchError, match="encodes its sets"):
        simsearch.Collection.open(tmp_path / "c", multivector=simsearch.MultiVector())


def test_an_older_collection_opens_and_gains_the_tokens_table(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
    db = sqlite3.connect(tmp_path / "c" / "simsearch.sqlite3")
    db.execute("DROP TRIGGER tokens_delete")
    db.execute("DROP TABLE tokens")
    db.execute("PRAGMA user_version=5")
    db.commit()
    db.close()
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert col.search([1.0, 0.0], k=1)[0][0].id == "a"
    db = sqlite3.connect(tmp_path / "c" / "simsearch.sqlite3")
    from simsearch.store.sqlite import SCHEMA_VERSION

    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    db.close()


def test_bad_input_raises_specific_errors_and_writes_nothing(tmp_path: Path) -> None:
    col, _ = make(tmp_path / "c", n=3)
    with col:
        seq = col.info()["seq"]
        ok = np.ones((2, DIM))
        cases: list[tuple[Any, type[Exception], str]] = [
            ([np.full((2, DIM), np.nan)], simsearch.InvalidVectorError, "NaN"),
            ([np.ones((2, DIM + 1))], simsearch.DimensionMismatchError, "dimension"),
            ([np.ones((0, DIM))], simsearch.InvalidVectorError, "empty set"),
            ([[[1.0] * DIM, [1.0] * (DIM - 1)]], simsearch.InvalidVectorError, "ragged"),
            ([np.ones(DIM)], simsearch.InvalidVectorError, "2-D"),
            (["text"], simsearch.InvalidVectorError, "2-D array of numbers"),
            ("abc", simsearch.InvalidVectorError, "list of 2-D arrays"),
            ([ok, ok], simsearch.InvalidArgumentError, "1 ids but 2"),
            ([np.array([["a"] * DIM])], simsearch.InvalidVectorError, "numbers"),
        ]
        for sets, error, words in cases:
            with pytest.raises(error, match=words):
                col.add(["new"], multivectors=sets)
        with pytest.raises(simsearch.InvalidArgumentError, match=r"multivectors=\[\.\.\.\]"):
            col.add(["new"], vectors=[np.ones(DIM)])
        with pytest.raises(simsearch.InvalidArgumentError, match="not both"):
            col.add(["new"], vectors=[np.ones(DIM)], multivectors=[ok])
        with pytest.raises(simsearch.DuplicateIdError):
            col.add(["d0", "new"], multivectors=[ok, ok])
        with pytest.raises(simsearch.InvalidArgumentError, match="metadata"):
            col.update(["d0"], vectors=[np.ones(DIM)])
        assert col.info()["seq"] == seq
        assert len(col) == 3
        with pytest.raises(simsearch.DimensionMismatchError):
            col.search(np.ones((2, DIM + 1)))
        with pytest.raises(simsearch.InvalidVectorError, match="NaN"):
            col.search(np.full((2, DIM), np.nan))
        with pytest.raises(simsearch.InvalidArgumentError, match="candidates"):
            col.search(ok, candidates=0)
        with pytest.raises(simsearch.InvalidArgumentError, match="MaxSim"):
            col.search("words", mode="lexical")
        for call in (col.find_duplicates, lambda: col.export(tmp_path / "x.jsonl")):
            with pytest.raises(simsearch.InvalidArgumentError, match="sets of vectors"):
                call()
        assert col.update(["d0"], metadata={"n": 7}) == 1
        assert col.get(["d0"])[0].metadata == {"n": 7}


def test_open_refuses_what_a_multivector_collection_cannot_be(tmp_path: Path) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="not 'l2'"):
        simsearch.Collection.open(tmp_path / "a", metric="l2", multivector=True)
    with pytest.raises(simsearch.InvalidArgumentError, match="token encoder"):
        simsearch.Collection.open(tmp_path / "b", encoder="minilm-l6-v2-int8", multivector=True)
    with pytest.raises(simsearch.InvalidArgumentError, match="multivector must be"):
        simsearch.Collection.open(tmp_path / "c", multivector="yes")  # type: ignore[arg-type]
    with pytest.raises(simsearch.InvalidArgumentError, match="k_sim"):
        simsearch.MultiVector(k_sim=-1)
    with pytest.raises(simsearch.InvalidArgumentError, match="storage"):
        simsearch.MultiVector(storage="float8")
    with simsearch.Collection.open(tmp_path / "d", dim=2) as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
        with pytest.raises(simsearch.InvalidArgumentError, match="one vector per item"):
            col.add(["b"], multivectors=[np.ones((2, 2))])
        with pytest.raises(simsearch.InvalidArgumentError, match="candidates"):
            col.search([1.0, 0.0], candidates=10)
    with pytest.raises(simsearch.ConfigMismatchError, match="one vector per item"):
        simsearch.Collection.open(tmp_path / "d", multivector=True)


def test_fde_follows_the_paper() -> None:
    """Against a direct, one-set-at-a-time reading of the construction."""
    rng = np.random.default_rng(1)
    enc = FDEEncoder(MultiVector(k_sim=3, r_reps=3, d_proj=4, seed=5), 8)
    sets = [rng.standard_normal((n, 8)).astype(np.float32) for n in (1, 2, 7, 30)]
    docs, queries = enc.documents(sets), enc.queries(sets)
    for i, points in enumerate(sets):
        want_d, want_q = [], []
        for r in range(3):
            bits = (points @ enc.gaussians[r] > 0).astype(int)
            buckets = []
            for b in bits:
                idx = 0
                for t in b:
                    idx = (idx << 1) + (t ^ (idx & 1))
                buckets.append(idx)
            proj = points @ enc.projections[r]
            for k in range(8):
                inside = np.array(buckets) == k
                want_q.append(proj[inside].sum(0))
                if inside.any():
                    want_d.append(proj[inside].mean(0))
                else:
                    nearest = int(np.argmin((bits != enc.bits_of[k]).sum(1)))
                    want_d.append(proj[nearest])
        np.testing.assert_allclose(docs[i], np.concatenate(want_d), atol=1e-5)
        np.testing.assert_allclose(queries[i], np.concatenate(want_q), atol=1e-5)
    # Seeded: another process builds the same encoding; the final projection has d_final dims.
    again = FDEEncoder(MultiVector(k_sim=3, r_reps=3, d_proj=4, seed=5), 8)
    np.testing.assert_array_equal(again.documents(sets), docs)
    final = FDEEncoder(MultiVector(k_sim=3, r_reps=3, d_proj=4, d_final=16), 8)
    assert final.documents(sets).shape == (4, 16)


def test_fde_inner_product_tracks_maxsim() -> None:
    rng = np.random.default_rng(3)
    docs = [unit(rng.standard_normal((20, 32))) for _ in range(200)]
    queries = [unit(d[:5] + 0.2 * rng.standard_normal((5, 32))) for d in docs[:20]]
    enc = FDEEncoder(MultiVector(k_sim=4, r_reps=20, d_proj=16), 32)
    scores = enc.queries(queries) @ enc.documents(docs).T
    top = np.argsort(-scores, axis=1)[:, :10]
    assert np.mean([i in top[i] for i in range(20)]) >= 0.9


@pytest.mark.parametrize("storage", ["float16", "int8", "float32"])
def test_packing_round_trips(storage: str) -> None:
    x = unit(np.random.default_rng(0).standard_normal((5, 16))).astype(np.float32)
    back = unpack(pack(x, storage), 5, 16, storage)
    assert back.shape == (5, 16)
    np.testing.assert_allclose(back, x, atol={"float16": 1e-3, "int8": 1e-2, "float32": 0}[storage])


def test_a_query_set_is_bounded_and_large_products_are_made_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col, sets = make(tmp_path / "c")
    too_many = np.ones((MAX_QUERY_SET + 1, DIM))
    for query in (too_many, [too_many], [sets[0], too_many]):
        with pytest.raises(simsearch.InvalidVectorError, match=f"at most {MAX_QUERY_SET}"):
            col.search(query, k=3)
    query = sets[5] + 0.1
    whole = col.search(query, k=5, candidates=40)[0]
    # A product past PRODUCT_CELLS scores is made a few query vectors at a time (bounded
    # memory), to the same ranking.
    monkeypatch.setattr(scoring, "PRODUCT_CELLS", 16)
    blocked = col.search(query, k=5, candidates=40)[0]
    assert [h.id for h in blocked] == [h.id for h in whole]
    assert [h.score for h in blocked] == pytest.approx([h.score for h in whole], abs=1e-5)


def test_maxsim_of_a_large_set_keeps_its_products_small(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    rng = np.random.default_rng(9)
    stored = rng.standard_normal((20_000, 4)).astype(np.float32)  # one large stored set
    query = rng.standard_normal((1_000, 4)).astype(np.float32)
    want = maxsim(query, stored)
    monkeypatch.setattr(scoring, "PRODUCT_CELLS", 1 << 20)  # 4 MiB of scores a product
    tracemalloc.start()
    try:
        got = scoring.maxsim_packed([query], [pack(stored, "float32")], [20_000], 4, "float32")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got[0, 0] == pytest.approx(want, rel=1e-5)
    assert peak < 20_000_000  # the whole product would be 80 MB
