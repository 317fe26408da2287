"""Chooses, per search, between exact search and the approximate index.

Exact search is chosen when it is cheap or when a graph walk would struggle:
for a flat index always; for a small collection; and when a filter leaves few
items (a graph walk would pass mostly through excluded nodes, which is where
peers lose recall). Otherwise the graph walk filters (see ``HNSWIndex.search``).
"""

from __future__ import annotations

from dataclasses import dataclass

from simsearch.config import Flat, IndexConfig

__all__ = ["EXACT_FILTER_SHARE", "Plan", "plan_search"]

#: A filter leaving at most this share of the collection is searched exactly (as is one
#: leaving at most ``HNSW.exact_below`` items).
EXACT_FILTER_SHARE = 0.10


@dataclass(frozen=True)
class Plan:
    """How one search runs, and why (shown by ``Collection.explain``-style tooling and tests)."""

    exact: bool
    reason: str


def plan_search(
    index: IndexConfig, *, live: int, allowed: int | None, force_exact: bool = False
) -> Plan:
    """The plan for a search over ``live`` items of which ``allowed`` pass the filter.

    >>> from simsearch.config import HNSW
    >>> plan_search(HNSW(), live=390_000, allowed=3_900)
    Plan(exact=True, reason='the filter leaves 3900 items')
    >>> plan_search(HNSW(), live=390_000, allowed=195_000).exact
    False
    """
    if isinstance(index, Flat):
        return Plan(True, "flat index")
    if force_exact:
        return Plan(True, "exact=True")
    if live <= index.exact_below:
        return Plan(True, f"the collection holds {live} items")
    if allowed is not None and (
        allowed <= index.exact_below or allowed <= EXACT_FILTER_SHARE * live
    ):
        return Plan(True, f"the filter leaves {allowed} items")
    return Plan(False, "graph search" + ("" if allowed is None else " filtered"))
