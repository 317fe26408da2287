"""Behaviour of the in-process Collection beyond the shared suite (test_behaviour.py):
reopening, several handles, compaction, deterministic ties, chunked search, imports."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import simsearch


def test_empty_collection_search_returns_empty_rows(col: simsearch.Collection) -> None:
    res = col.search([1.0, 2.0], k=3)
    assert res.rows == [[]]


def test_reopen_restores_everything(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "c"
    x = rng.standard_normal((500, 16)).astype(np.float32)
    with simsearch.Collection.open(path, metric="l2") as col:
        col.add([f"{i}" for i in range(500)], vectors=x, metadata=[{"i": i} for i in range(500)])
        col.delete(["3", "4"])
        before = col.search(x[:5], k=7, where={"i": {"$lt": 400}}).to_list()
        info = col.info()
    with simsearch.Collection.open(path) as col:
        assert col.search(x[:5], k=7, where={"i": {"$lt": 400}}).to_list() == before
        assert col.info()["count"] == info["count"] == 498
        assert col.config.metric is simsearch.Metric.L2


def test_two_handles_in_one_process_see_each_others_writes(tmp_path: Path) -> None:
    a = simsearch.Collection.open(tmp_path / "c", metric="dot")
    b = simsearch.Collection.open(tmp_path / "c")
    a.add(["x"], vectors=[[1.0, 0.0]])
    assert b.search([1, 0], k=1)[0][0].id == "x"
    b.upsert(["x"], vectors=[[0.0, 1.0]])
    assert a.search([1, 0], k=1)[0][0].score == pytest.approx(0.0)
    b.delete(["x"])
    assert a.search([1, 0], k=1)[0] == []
    a.close()
    b.close()


def test_many_deletes_compact_and_stay_correct(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add([str(i) for i in range(1000)], vectors=x)
        col.search(x[0], k=1)  # index built
        col.delete([str(i) for i in range(0, 1000, 2)])
        col.add(["new"], vectors=[x[0] * 10])
        hits = col.search(x[0], k=20)[0]
        keep = np.arange(1, 1000, 2)
        want = keep[np.argsort(-(x[keep] @ x[0]))][:19]
        assert [h.id for h in hits] == ["new"] + [str(i) for i in want]


def test_ties_are_broken_by_insertion_order(col: simsearch.Collection) -> None:
    col.add(["z", "y", "x"], vectors=[[1, 0], [1, 0], [1, 0]])
    col.add(["w"], vectors=[[1, 0]])
    assert [h.id for h in col.search([1, 0], k=3)[0]] == ["z", "y", "x"]
    col.upsert(["z"], vectors=[[1, 0]])  # an upsert keeps the item's place
    assert [h.id for h in col.search([1, 0], k=4)[0]] == ["z", "y", "x", "w"]


def test_large_batch_is_searched_in_bounded_chunks(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    # More rows than one block and more queries than one query chunk.
    x = rng.standard_normal((20_000, 8)).astype(np.float32)
    q = rng.standard_normal((1500, 8)).astype(np.float32)
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        res = col.search(q, k=5)
    want = np.argsort(-(q @ x.T), axis=1)[:, :5]
    got = np.array([[int(i) for i in row] for row in res.ids])
    assert (got == want).mean() > 0.999  # float32 near-ties may swap neighbours
    assert (got[:, 0] == want[:, 0]).all()


def test_import_is_light() -> None:
    code = (
        "import sys, simsearch\n"
        "heavy = [m for m in ('onnxruntime', 'torch', 'tokenizers', 'sentence_transformers',"
        " 'fastapi', 'ray', 'rich', 'typer', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_curated() -> None:
    # Adding to the public API is a decision: update this list on purpose.
    assert sorted(n for n in simsearch.__all__ if not n.endswith("Error")) == [
        "CheckReport",
        "Client",
        "Collection",
        "CollectionConfig",
        "DEFAULT_ENCODER",
        "Encoder",
        "EncoderSpec",
        "Flat",
        "HNSW",
        "Hit",
        "IVFPQ",
        "Item",
        "Metric",
        "MultiVector",
        "RemoteCollection",
        "Results",
        "ShardedCollection",
        "TextTruncatedWarning",
        "__version__",
        "available_encoders",
        "check_collection",
        "get_encoder",
        "list_collections",
        "register_encoder",
    ]
    for name in simsearch.__all__:
        assert hasattr(simsearch, name), name
    assert "Collection" in simsearch.__all__
    assert "Results" in simsearch.__all__
    exported_errors = {n for n in simsearch.__all__ if n.endswith("Error")}
    assert exported_errors == {n for n in simsearch.errors.__all__ if n.endswith("Error")}


def test_filtered_search_over_more_rows_than_one_block(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from simsearch.index.flat import BLOCK

    n = BLOCK + 4000
    x = rng.standard_normal((n, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    keep = rng.random(n) < 0.97  # the allowed rows alone span two blocks
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add([str(i) for i in range(n)], vectors=x, metadata=[{"k": bool(v)} for v in keep])
        col.delete([str(i) for i in range(0, n, 7)])  # dead slots inside the blocks too
        res = col.search(q, k=10, where={"k": True})
    alive = keep.copy()
    alive[::7] = False
    idx = np.flatnonzero(alive)
    for qi, row in enumerate(res):
        want = idx[np.argsort(-(x[idx] @ q[qi]), kind="stable")][:10]
        assert [h.id for h in row] == [str(i) for i in want]


def test_repeated_filters_are_patched_not_rescanned(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = rng.standard_normal((500, 4)).astype(np.float32)
    where = {"g": {"$in": [1, 2]}}
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(
            [str(i) for i in range(500)], vectors=x, metadata=[{"g": i % 5} for i in range(500)]
        )
        first = col.search(x[0], k=500, where=where)[0]
        assert len(first) == 200
        col.upsert(["1"], vectors=[x[1]], metadata=[{"g": 4}])  # leaves the filter
        col.upsert(["3"], vectors=[x[3]], metadata=[{"g": 2}])  # enters it
        col.delete(["2"])
        col.add(["new"], vectors=[x[0]], metadata=[{"g": 1}])
        ids = {h.id for h in col.search(x[0], k=500, where=where)[0]}
        want = {str(i) for i in range(500) if i % 5 in (1, 2)} - {"1", "2"} | {"3", "new"}
        assert ids == want
        cache = col._keeper.filters
        assert (cache.full_scans, cache.patches) == (1, 1)


def test_hits_parse_metadata_lazily_and_stay_immutable(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["a", "b"], vectors=[[1, 0], [0, 1]], metadata=[{"n": [1, "ü"]}, None])
        res = col.search([[1.0, 0.5], [0.0, 1.0]], k=3)
        assert res.ids.tolist() == [["a", "b", None], ["b", "a", None]]
        assert res.scores.tolist() == [[1.0, 0.5, -np.inf], [1.0, 0.0, -np.inf]]
        hit = res[0][0]
        assert isinstance(hit._meta, str)  # not parsed until looked at
        assert hit.metadata == {"n": [1, "ü"]}
        assert res[1][1] == simsearch.Hit("a", 0.0, {"n": [1, "ü"]})
        assert res == simsearch.Results(k=3, rows=res.rows)
        with pytest.raises(AttributeError):
            hit.score = 2.0  # type: ignore[misc]
        with pytest.raises(AttributeError):
            res.k = 1  # type: ignore[misc]


def test_hits_pickle_and_copy_whole(tmp_path: Path) -> None:
    import copy
    import pickle

    plain = simsearch.Hit._from_stored("a", 0.5, '{"n": 1}', "text")  # metadata unparsed
    scored = simsearch.Hit("b", 0.25, {"m": [2]}, None, 0.75, dense_score=0.1, lexical_score=3.0)
    for hit in (plain, scored):
        for twin in (pickle.loads(pickle.dumps(hit)), copy.copy(hit), copy.deepcopy(hit)):
            assert twin == hit
            assert (twin.relevance, twin.dense_score, twin.lexical_score) == (
                hit.relevance, hit.dense_score, hit.lexical_score,
            )  # fmt: skip
    assert (scored.relevance, scored.dense_score, scored.lexical_score) == (0.75, 0.1, 3.0)
    assert (plain.relevance, plain.dense_score, plain.lexical_score) == (None, None, None)
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]], metadata=[{"n": 1}])
        res = col.search([1.0, 0.0], k=1)
        assert pickle.loads(pickle.dumps(res.rows)) == res.rows
        assert pickle.loads(pickle.dumps(res)) == copy.deepcopy(res) == res
    from simsearch.distributed.request import ShardedResults

    partial = ShardedResults(1, [[plain]], (1,), 3)
    for twin in (pickle.loads(pickle.dumps(partial)), copy.copy(partial)):
        assert type(twin) is ShardedResults
        assert twin == partial
        assert (twin.partial, twin.missing_shards, twin.shards) == (True, (1,), (0, 2))


def test_a_hits_size_hint_holds_whether_its_metadata_was_read() -> None:
    hit = simsearch.Hit._from_stored("a", 0.5, '{"n":[1,2],"s":"üüüü"}', "t")
    before = hit.size_hint()
    assert hit.metadata == {"s": "üüüü", "n": [1, 2]}
    assert hit.size_hint() == before


def test_a_few_queries_score_in_parts_small_enough_to_stay_off_blas_threads(monkeypatch) -> None:
    """One query over many rows is scored in products of at most ``SERIAL_PRODUCT``
    multiply-adds (OpenBLAS threads larger ones, which stall on busy cores), with the
    same hits as one whole product; a batch keeps whole products."""
    from simsearch.index import flat
    from simsearch.types import Metric

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((20_000, 50)).astype(np.float32)
    index = flat.FlatIndex.from_arrays(Metric.COSINE, np.arange(20_000), vectors)
    query = rng.standard_normal((1, 50)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = query[0] / np.linalg.norm(query[0])
    expected = np.argsort(-(unit @ q), kind="stable")[:10]

    sizes: list[int] = []
    real = np.matmul

    def counting(a, b, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(a.shape[0] * a.shape[1] * b.shape[1])
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", counting)
    _, rows = index.search(query, 10)
    assert list(rows[0]) == list(expected)
    assert len(sizes) > 1
    assert max(sizes) <= flat.SERIAL_PRODUCT
    sizes.clear()
    index.search(np.repeat(query, flat.SERIAL_QUERIES + 1, axis=0), 10)
    assert max(sizes) > flat.SERIAL_PRODUCT


def test_an_l2_distance_past_float32_is_minus_inf_without_a_warning(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="l2") as col:
        col.add(["far", "near"], vectors=[[0.0, 1.8e19], [1.0, 0.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's overflow RuntimeWarning would raise
            hits = col.search([1.8e19, 0.0], k=2)[0]
    scores = {h.id: h.score for h in hits}
    assert scores["far"] == float("-inf")
    assert np.isfinite(scores["near"])
