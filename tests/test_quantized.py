"""Quantized indexes: int8 and binary HNSW graphs and IVF-PQ, against exact search."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.index import quantized
from simsearch.index.keeper import IndexKeeper
from simsearch.index.quantized import QuantizedIndex

DIM = 32
N = 3000


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around 50 centres: structure that quantizers and inverted lists can exploit."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


def embeddings(n: int, seed: int, dim: int = 384, latent: int = 24) -> np.ndarray:
    """High-dimensional vectors with a low intrinsic dimension, like text embeddings."""
    projection = np.random.default_rng(99).standard_normal((latent, dim))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent))
    return (z @ projection + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


INDEXES = {
    "int8": simsearch.HNSW(exact_below=0, quantization="int8", ef_search=128),
    "binary": simsearch.HNSW(exact_below=0, quantization="binary", ef_search=256, rescore=20),
    "ivfpq": simsearch.IVFPQ(exact_below=0, nbits=6, nprobe=16, rescore=10),
}


def fill(path: Path, index: simsearch.HNSW | simsearch.IVFPQ, metric: str = "cosine") -> None:
    with simsearch.Collection.open(path, metric=metric, index=index) as col:
        x = clustered(N, DIM, 0)
        col.add(
            [f"v{i}" for i in range(N)],
            vectors=x,
            metadata=[{"label": i % 100} for i in range(N)],
        )


def overlap(a: simsearch.Results, b: simsearch.Results) -> float:
    return float(
        np.mean(
            [len({h.id for h in x} & {h.id for h in y}) / 10 for x, y in zip(a, b, strict=True)]
        )
    )


@pytest.fixture(scope="module", params=list(INDEXES))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp(f"{request.param}-") / "c"
    fill(path, INDEXES[request.param])
    return path


QUERIES = clustered(200, DIM, 1)
#: One bit a dimension is coarse at 32 dimensions; binary codes are meant for the
#: high-dimensional embeddings of test_binary_codes_find_neighbours_in_high_dimensions.
MIN_RECALL = {"int8": 0.95, "binary": 0.6, "ivfpq": 0.9}


def kind_of(path: Path) -> str:
    return path.parent.name.split("-")[0]


def test_recall_against_exact_and_scores_are_exact(built: Path) -> None:
    with simsearch.Collection.open(built) as col:
        assert isinstance(col._keeper.index, QuantizedIndex)
        assert col._keeper.index.built
        got = col.search(QUERIES, k=10)
        want = col.search(QUERIES, k=10, exact=True)
        assert overlap(got, want) >= MIN_RECALL[kind_of(built)]
        # Rescoring with the stored floats: every score is the exact cosine of its item.
        for q, row in zip(QUERIES[:20], got, strict=False):
            vecs = np.stack([i.vector for i in col.get([h.id for h in row])])
            exact = vecs @ q / np.linalg.norm(vecs, axis=1) / np.linalg.norm(q)
            np.testing.assert_allclose([h.score for h in row], exact, rtol=1e-4, atol=1e-5)
            assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)


def test_more_rescoring_never_lowers_recall(built: Path) -> None:
    with simsearch.Collection.open(built) as col:
        want = col.search(QUERIES, k=10, exact=True)
        low = overlap(col.search(QUERIES, k=10, rescore=1), want)
        high = overlap(col.search(QUERIES, k=10, rescore=40), want)
        assert high >= low


@pytest.mark.parametrize("excluded", [0.5, 0.8])
def test_filter_inside_the_search_keeps_recall_and_k(built: Path, excluded: float) -> None:
    where = {"label": {"$gte": int(100 * excluded)}}
    with simsearch.Collection.open(built) as col:
        got = col.search(QUERIES, k=10, where=where)
        want = col.search(QUERIES, k=10, where=where, exact=True)
        assert all(len(row) == 10 for row in got)
        assert all(h.metadata["label"] >= int(100 * excluded) for row in got for h in row)
        assert overlap(got, want) >= MIN_RECALL[kind_of(built)] - 0.05


def test_reopen_loads_the_saved_index_and_answers_the_same(built: Path) -> None:
    with simsearch.Collection.open(built) as col:
        before = col.search(QUERIES, k=10)
        seq = col.info()["seq"]
    with simsearch.Collection.open(built) as col:
        # Loaded from disk at the store's sequence number: nothing was rebuilt or replayed.
        assert col._keeper.saved_seq == seq
        after = col.search(QUERIES, k=10)
    assert [[h.id for h in r] for r in before] == [[h.id for h in r] for r in after]


def test_int8_codes_take_a_quarter_of_the_float_memory(tmp_path: Path) -> None:
    fill(tmp_path / "c", INDEXES["int8"])
    with simsearch.Collection.open(tmp_path / "c") as col:
        index = col._keeper.index
        assert isinstance(index, QuantizedIndex)
        assert index.code_bytes() <= 0.35 * N * DIM * 4


def test_deleted_items_never_return_and_compaction_rebuilds(tmp_path: Path) -> None:
    fill(tmp_path / "c", INDEXES["int8"])
    with simsearch.Collection.open(tmp_path / "c") as col:
        gone = [f"v{i}" for i in range(0, N, 3)]
        col.delete(gone[: len(gone) // 2])
        index = col._keeper.index
        assert isinstance(index, QuantizedIndex)
        col.search(QUERIES[:1], k=1)
        assert index.dead > 0  # masked, not yet compacted
        col.delete(gone[len(gone) // 2 :])
        hits = {h.id for row in col.search(QUERIES, k=10) for h in row}
        assert not hits & set(gone)  # masked until the rebuild takes over
        col._keeper.wait_for_rebuild()  # past a quarter dead: rebuilt from the store meanwhile
        assert col._keeper.index is not index
        assert getattr(col._keeper.index, "dead", None) == 0
        hits = {h.id for row in col.search(QUERIES, k=10) for h in row}
        assert not hits & set(gone)


def test_a_collection_closed_and_removed_during_a_rebuild_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    fill(tmp_path / "c", INDEXES["int8"])
    go = threading.Event()
    build = IndexKeeper._quantized_from_store

    def slow_build(self: IndexKeeper, config: Any) -> Any:
        go.wait(30)
        return build(self, config)  # the folder is gone by now

    monkeypatch.setattr(IndexKeeper, "_quantized_from_store", slow_build)
    col = simsearch.Collection.open(tmp_path / "c")
    col.delete([f"v{i}" for i in range(0, N, 2)])
    col.search(QUERIES[:1], k=1)  # starts the rebuild, which waits
    thread = col._keeper.rebuild
    assert thread is not None
    col.close()
    shutil.rmtree(tmp_path / "c")
    go.set()
    thread.join()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_growth_retrains_the_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantized, "MIN_TRAIN_GRAPH", 100)
    x = clustered(2000, DIM, 3)
    with simsearch.Collection.open(tmp_path / "c", index=INDEXES["int8"]) as col:
        col.add([f"a{i}" for i in range(150)], vectors=x[:150])
        col.search(QUERIES[:1], k=1)
        first = col._keeper.index
        assert isinstance(first, QuantizedIndex)
        assert first._trained_on == 150
        for start in range(150, 2000, 150):
            col.add(
                [f"a{i}" for i in range(start, min(start + 150, 2000))], vectors=x[start:][:150]
            )
            col.search(QUERIES[:1], k=1)
        col._keeper.wait_for_rebuild()
        col.search(QUERIES[:1], k=1)
        col._keeper.wait_for_rebuild()
        assert col._keeper.index is not first
        assert getattr(col._keeper.index, "_trained_on", 0) > 4 * 150


def test_a_small_collection_stays_exact_until_it_is_worth_training(tmp_path: Path) -> None:
    x = clustered(100, DIM, 4)
    with simsearch.Collection.open(tmp_path / "c", index=simsearch.IVFPQ()) as col:
        col.add([f"s{i}" for i in range(100)], vectors=x)
        got = col.search(QUERIES[:5], k=10)
        want = col.search(QUERIES[:5], k=10, exact=True)
        assert not getattr(col._keeper.index, "built", True)
        assert [[h.id for h in r] for r in got] == [[h.id for h in r] for r in want]


def test_an_unreadable_saved_index_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    fill(tmp_path / "c", INDEXES["int8"])
    with simsearch.Collection.open(tmp_path / "c") as col:
        want = col.search(QUERIES, k=10, exact=True)
    (tmp_path / "c" / "index" / quantized.INDEX_FILE).write_bytes(b"not an index")
    with pytest.warns(RuntimeWarning, match="rebuilt from the store"):
        col = simsearch.Collection.open(tmp_path / "c")
    with col:
        assert overlap(col.search(QUERIES, k=10), want) >= 0.95


def test_binary_codes_find_neighbours_in_high_dimensions(tmp_path: Path) -> None:
    # One bit a dimension suits high-dimensional embeddings (the 384-d default encoder), whose
    # variation lies near a low-dimensional subspace, as it does here.
    x, q = embeddings(2000, 5), embeddings(50, 6)
    index = simsearch.HNSW(exact_below=0, quantization="binary", rescore=10)
    with simsearch.Collection.open(tmp_path / "c", index=index) as col:
        col.add([f"b{i}" for i in range(2000)], vectors=x)
        assert overlap(col.search(q, k=10), col.search(q, k=10, exact=True)) >= 0.95


def test_ivfpq_m_must_divide_the_dimension_and_nothing_is_written(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", index=simsearch.IVFPQ(m=7)) as col:
        with pytest.raises(simsearch.InvalidArgumentError, match="m=7 must divide 32"):
            col.add(["a"], vectors=np.ones((1, DIM)))
        assert len(col) == 0
        assert col.config.dim is None
    with pytest.raises(simsearch.InvalidArgumentError, match="m=7"):
        simsearch.Collection.open(tmp_path / "d", dim=DIM, index=simsearch.IVFPQ(m=7))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: simsearch.HNSW(quantization="int4"), "quantization must be one of"),
        (lambda: simsearch.HNSW(rescore=0), "rescore must be an integer"),
        (lambda: simsearch.IVFPQ(nbits=16), "nbits must be an integer"),
        (lambda: simsearch.IVFPQ(nlist=0), "nlist must be an integer"),
        (lambda: simsearch.IVFPQ(nprobe=True), "nprobe must be an integer"),
        (lambda: simsearch.IVFPQ(2), "positional"),
    ],
)
def test_bad_index_settings_are_refused(make: object, match: str) -> None:
    with pytest.raises((simsearch.InvalidArgumentError, TypeError), match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "knobs",
    [{"rescore": 0}, {"nprobe": "8"}, {"ef": 1.5}, {"rescore": True}, {"exact": "yes"}],
)
def test_bad_search_knobs_are_refused(tmp_path: Path, knobs: dict[str, object]) -> None:
    with simsearch.Collection.open(tmp_path / "c", index=INDEXES["ivfpq"]) as col:
        col.add(["a"], vectors=np.ones((1, DIM)))
        with pytest.raises(simsearch.InvalidArgumentError):
            col.search(np.ones(DIM), k=1, **knobs)  # type: ignore[arg-type]


def test_exact_search_of_a_quantized_index_reads_the_store_block_by_block(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simsearch.search import candidates

    with simsearch.Collection.open(built) as col:
        whole = col.search(QUERIES[:30], k=10, exact=True)
        filtered = col.search(QUERIES[:30], k=10, exact=True, where={"label": {"$lt": 3}})
        monkeypatch.setattr(candidates, "EXACT_BLOCK", 7)
        for got, want in (
            (col.search(QUERIES[:30], k=10, exact=True), whole),
            (col.search(QUERIES[:30], k=10, exact=True, where={"label": {"$lt": 3}}), filtered),
        ):
            # Blocks of other sizes may round the last bit differently: ids exact, scores close.
            assert got.ids.tolist() == want.ids.tolist()
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    with simsearch.Collection.open(built, index=simsearch.Flat()) as flat:
        assert flat.search(QUERIES[:30], k=10).ids.tolist() == whole.ids.tolist()
    with simsearch.Collection.open(built, index=INDEXES[kind_of(built)]):
        pass  # back to the kind under test for the other tests of this module
