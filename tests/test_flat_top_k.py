"""One query's best scores found through group maxima equal a full stable sort's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simsearch.index.flat import GROUP, _best_of_row


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 6 * GROUP + 5),
    k=st.integers(1, 40),
    levels=st.integers(1, 6),
    dead=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_best_of_a_row_are_a_stable_sorts_first(
    width: int, k: int, levels: int, dead: float, seed: int
) -> None:
    """Few distinct values (many ties), some -inf (deleted or filtered slots), widths on
    and off a multiple of the group size, and k above the real scores' count."""
    rng = np.random.default_rng(seed)
    row = rng.integers(0, levels, width).astype(np.float32)
    row[rng.random(width) < dead] = -np.inf
    real = np.flatnonzero(row > -np.inf)
    expected = real[np.argsort(-row[real], kind="stable")][:k]
    assert _best_of_row(row, k).tolist() == expected.tolist()


def test_a_row_of_only_minus_infinity_has_no_best() -> None:
    assert _best_of_row(np.full(5 * GROUP, -np.inf, dtype=np.float32), 3).tolist() == []
