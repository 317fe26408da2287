"""Exact search gives an item the same score by every path, and ranks large rows as an
oracle does: one query, a filter's positions, a filter's flat copy and a small batch all
score through whole blocks of the same width, and one query's top k over many slots is
found through group maxima."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.index.flat import GROUP, FlatIndex, _at_least_kth, block_width
from simsearch.store import Changes
from simsearch.types import Metric


def _index(metric: Metric, vectors: np.ndarray) -> FlatIndex:
    rows = np.arange(len(vectors), dtype=np.int64) * 3 + 5  # store rows are not positions
    return FlatIndex.from_arrays(metric, rows, vectors)


@pytest.mark.parametrize("dim", [3, 50, 384, 700])
@pytest.mark.parametrize("metric", [Metric.DOT, Metric.COSINE, Metric.L2])
def test_every_path_gives_an_item_the_same_score_bits(metric: Metric, dim: int) -> None:
    rng = np.random.default_rng(dim)
    n = 2 * block_width(dim) + 37  # past whole blocks, and a short last one
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    index = _index(metric, vectors)
    q = rng.standard_normal((1, dim)).astype(np.float32)
    scores, rows = index.search(q, k=20)
    by_row = dict(zip(rows[0].tolist(), scores[0].tolist(), strict=True))
    # The same rows at other positions: a filter that keeps them among others, shuffled
    # into a different place in every block.
    others = rng.choice(index.live_rows(), size=min(n, 2 * block_width(dim)) - 20, replace=False)
    allowed = np.union1d(rows[0], others)
    filtered_s, filtered_r = index.search(q, k=20, allowed_rows=allowed)
    copy = FlatIndex.from_arrays(metric, allowed, vectors[(allowed - 5) // 3])
    copy_s, copy_r = copy.search(q, k=20)
    batch_s, batch_r = index.search(np.vstack([q, -q, 2 * q]), k=20)
    for found_s, found_r in ((filtered_s[0], filtered_r[0]), (copy_s[0], copy_r[0])):
        for row, score in zip(found_r.tolist(), found_s.tolist(), strict=True):
            if row in by_row:
                assert score == by_row[row]  # the same bits, not merely close
    assert batch_r[0].tolist() == rows[0].tolist()
    assert batch_s[0].tolist() == scores[0].tolist()


@pytest.mark.parametrize("metric", [Metric.DOT, Metric.L2])
def test_one_query_over_many_slots_ranks_as_the_oracle_with_ties_and_deletions(
    metric: Metric,
) -> None:
    rng = np.random.default_rng(11)
    n = 3 * GROUP * GROUP + 123  # the group-maxima path
    vectors = rng.integers(-2, 3, (n, 4)).astype(np.float32)  # many exact ties
    index = _index(metric, vectors)
    rows = index.live_rows()
    gone = rng.choice(n, n // 5, replace=False)
    index.apply(
        Changes(
            seq=1,
            rows=np.empty(0, dtype=np.int64),
            vectors=np.empty((0, 4), dtype=np.float32),
            deleted=rows[gone],
        )
    )
    live = np.setdiff1d(np.arange(n), gone)
    for q in rng.integers(-2, 3, (10, 4)).astype(np.float32):
        _, found = index.search(q[None], k=15)
        if metric is Metric.L2:
            key = np.sum((vectors[live] - q) ** 2, axis=1)
        else:
            key = -(vectors[live] @ q)
        order = live[np.lexsort((live, key))][:15]
        assert found[0].tolist() == rows[order].tolist()


def test_the_kth_best_bound_keeps_every_top_score_and_leaves_masked_ones_out() -> None:
    rng = np.random.default_rng(3)
    for width in (GROUP * GROUP, GROUP * GROUP + 1, 50_000):
        row = rng.integers(0, 50, width).astype(np.float32)
        row[rng.random(width) < 0.3] = -np.inf
        for k in (1, 10, 100):
            pick = _at_least_kth(row, k)
            kth = np.sort(row)[::-1][k - 1]
            assert np.all(np.diff(pick) > 0)
            assert set(np.flatnonzero(row >= kth)) <= set(pick.tolist())
            assert np.isfinite(row[pick]).all()
    few = np.full(GROUP * GROUP * 2, -np.inf, dtype=np.float32)
    few[[5, 900, 7000]] = [1.0, 2.0, 3.0]
    assert _at_least_kth(few, 10).tolist() == [5, 900, 7000]


def test_blocks_are_whole_kernel_steps_under_the_serial_product() -> None:
    for dim in (1, 3, 50, 384, 768, 1536, 5000):
        width = block_width(dim)
        assert width % 64 == 0
        assert width >= 64
        assert width * dim <= 262_144 or width == 64
