"""Chooses, per search, between exact search and the approximate index.

Exact search is chosen when it is cheap or when a graph walk would cost more: for a
flat index always; for a small collection; for a filter leaving few items; and for
a filter whose allowed rows cost less to score exactly (from a flat copy of them,
reused while the filter repeats) than the walk, whose beam widens by the excluded
share (see ``HNSWIndex.search``). The payload indexes give the exact allowed count
before the plan is made. The costs come from GloVe-50 at 1,000,000 items, one query a
call: scoring a flat copy of 100,000 allowed rows took 1.28 ms (about 0.013
microseconds a row at 50 dimensions), a walk about 3.6 microseconds per unit of its
widened beam (0.47 ms at ef 128 unfiltered, 1.09 ms for a beam of 286, 1.46 ms for
405). Measured again in one run: 0.93 ms exact against 0.70 ms for the walk of a beam
of 300 (90% excluded), which the model orders the same way (1.3 against 1.08 ms).
Rows whose copy does not fit the copies' memory budget (see
:mod:`simsearch.index.subsets`) would be copied out of the graph at every search
(about 7 microseconds a row), so those are walked. A range filter on a window field
(:mod:`simsearch.index.window`) may also walk the smallest bucket graph holding its
range, whose beam widens by the allowed share of the bucket instead of the
collection's: chosen when that costs the least of the three.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from simsearch.config import Flat, IndexConfig
from simsearch.index.hnsw import BEAM_POWER, MAX_FILTERED_EF, SPREAD
from simsearch.index.subsets import BUDGET_SHARE, MIN_BUDGET

__all__ = ["EXACT_FILTER_SHARE", "EXACT_US_PER_ROW_DIM", "WALK_US_PER_EF", "Plan", "plan_search"]

#: Without the dimension to cost them, a filter leaving at most this share of the
#: collection is searched exactly (as is one leaving at most ``HNSW.exact_below`` items).
EXACT_FILTER_SHARE = 0.10
#: Microseconds to score one row of one dimension exactly from a flat copy.
EXACT_US_PER_ROW_DIM = 0.00026
#: Microseconds a filtered graph walk spends per unit of its beam.
WALK_US_PER_EF = 3.6


@dataclass(frozen=True)
class Plan:
    """How one search runs, and why (shown by ``Collection.explain`` and tests)."""

    exact: bool
    reason: str
    window: bool = False  # walk the window bucket instead of the whole graph


def plan_search(
    index: IndexConfig,
    *,
    live: int,
    allowed: int | None,
    force_exact: bool = False,
    dim: int | None = None,
    ef: int | None = None,
    window: int | None = None,
    k: int = 10,
) -> Plan:
    """The plan for a search over ``live`` items of which ``allowed`` pass the filter, of
    ``dim`` dimensions with a beam of ``ef`` (the index's own when ``None``), where a
    window bucket of ``window`` items holds every allowed one (``None``: no bucket).

    >>> from simsearch.config import HNSW
    >>> plan_search(HNSW(), live=390_000, allowed=3_900)
    Plan(exact=True, reason='the filter leaves 3900 items', window=False)
    >>> plan_search(HNSW(), live=390_000, allowed=39_000, dim=50).reason  # doctest: +ELLIPSIS
    'the filter leaves 39000 items: scoring them (about 0.5 ms) costs less than the walk...'
    >>> plan_search(HNSW(), live=390_000, allowed=195_000, dim=50).exact
    False
    >>> plan_search(HNSW(), live=1_000_000, allowed=100_000, dim=50, window=250_000).window
    True
    """
    if isinstance(index, Flat):
        return _FLAT
    if force_exact:
        return _FORCED
    if live <= index.exact_below:
        return _small(live)
    if allowed is None:
        return _GRAPH
    if allowed <= index.exact_below:
        return Plan(True, f"the filter leaves {allowed} items")
    if dim is None:
        if allowed <= EXACT_FILTER_SHARE * live:
            return Plan(True, f"the filter leaves {allowed} items")
        return Plan(False, "graph search filtered")
    width = ef if ef is not None else int(getattr(index, "ef_search", 64))
    walk_ms = _walk_ms(width, allowed / max(live, 1), k)
    exact_ms = EXACT_US_PER_ROW_DIM * allowed * dim / 1000
    budget = max(BUDGET_SHARE * live * dim, MIN_BUDGET)
    if allowed * dim > budget:
        exact_ms = float("inf")  # copied out of the graph at every search: never chosen
    if window is not None:
        window_ms = _walk_ms(width, allowed / max(window, 1), k)
        if window_ms < min(exact_ms, walk_ms):
            scoring = (
                "copying" if exact_ms == float("inf") else f"scoring (about {exact_ms:.1f} ms)"
            )
            return Plan(
                False,
                f"window graph of {window} items ({allowed / window:.0%} allowed): walking "
                f"it (about {window_ms:.1f} ms) costs less than {scoring} the {allowed} "
                f"allowed items and the whole walk (about {walk_ms:.1f} ms)",
                window=True,
            )
    if exact_ms == float("inf"):
        return Plan(
            False, f"graph search filtered: the {allowed} allowed items are too many to copy"
        )
    costs = f"scoring them (about {exact_ms:.1f} ms) costs {{}} the walk (about {walk_ms:.1f} ms)"
    if exact_ms <= walk_ms:
        return Plan(True, f"the filter leaves {allowed} items: " + costs.format("less than"))
    return Plan(False, "graph search filtered: " + costs.format("more than"))


# The plans every unfiltered search makes, made once (a server makes one a request).
_FLAT = Plan(True, "flat index")
_FORCED = Plan(True, "exact=True")
_GRAPH = Plan(False, "graph search")


@functools.lru_cache(maxsize=64)
def _small(live: int) -> Plan:
    """The plan of every search of a collection of ``live`` items, below ``exact_below``
    (made once: a frozen dataclass and its reason cost a one-query search about 1 us)."""
    return Plan(True, f"the collection holds {live} items")


def _walk_ms(width: int, share: float, k: int) -> float:
    """The cost model's milliseconds for a filtered walk for ``k`` hits whose allowed share
    is ``share``: its beam as ``HNSWIndex.search`` widens it, or its depth if deeper."""
    share = max(share, 1e-9)
    depth = (k + SPREAD * k**0.5 + 10) / share
    beam = max(width / share**BEAM_POWER, depth)
    return float(WALK_US_PER_EF * min(beam, MAX_FILTERED_EF) / 1000)
