"""MaxSim over packed sets, decoded a chunk at a time, against a numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsearch.blas import serial_blas
from simsearch.multivector import scoring
from simsearch.multivector.fde import STORAGES
from simsearch.multivector.scoring import maxsim_packed
from simsearch.multivector.tokens import pack, unpack


def oracle(queries: list[np.ndarray], stored: list[np.ndarray]) -> np.ndarray:
    return np.array(
        [[float((q.astype(np.float64) @ s.T).max(axis=1).sum()) for s in stored] for q in queries]
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    storage=st.sampled_from(STORAGES),
    chunk=st.integers(1, 40),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=12),
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
)
def test_maxsim_packed_matches_numpy_over_decoded_sets(
    seed: int, storage: str, chunk: int, sizes: list[int], widths: list[int]
) -> None:
    """Whatever the chunk size (sets larger than a chunk, sets split across chunks), every
    score is MaxSim of the query against the set as stored."""
    rng = np.random.default_rng(seed)
    dim = 5
    sets = [rng.standard_normal((n, dim)).astype(np.float32) for n in sizes]
    queries = [rng.standard_normal((w, dim)).astype(np.float32) for w in widths]
    blobs = [pack(s, storage) for s in sets]
    pairs = zip(blobs, sizes, strict=True)
    stored = [unpack(b, n, dim, storage).astype(np.float64) for b, n in pairs]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scoring, "CHUNK_VECTORS", chunk)
        got = maxsim_packed(queries, blobs, sizes, dim, storage)
    assert got.shape == (len(queries), len(sets))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, oracle(queries, stored), rtol=1e-5, atol=1e-4)


def test_maxsim_packed_of_no_sets_is_empty() -> None:
    got = maxsim_packed([np.ones((2, 3), np.float32)], [], [], 3, "float16")
    assert got.shape == (1, 0)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    # numpy's own BLAS, the one its products run on (FAISS loads another of its own)
    return [
        lib["num_threads"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas" and "numpy" in lib["filepath"]
    ]


def test_serial_blas_holds_one_thread_and_overlapping_blocks_restore_the_setting() -> None:
    before = _blas_threads()
    assert before, "numpy loads a BLAS that threadpoolctl controls"
    outer = serial_blas()
    inner = serial_blas()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the first out is not the last: still one thread
    assert set(_blas_threads()) <= {1}
    inner.__exit__(None, None, None)
    assert _blas_threads() == before
