"""A sharded search's request and results: the request is built and checked in the driver,
before any shard is asked (so bad input raises even while a shard is down, and costs no
round trip), and the results say which shards they rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simsearch.errors import InvalidArgumentError, NotCalibratedError
from simsearch.search.request import SearchRequest
from simsearch.types import Results

__all__ = ["ShardedResults", "checked_request"]


def checked_request(**options: Any) -> SearchRequest:
    """The request of these ``search`` options (:meth:`SearchRequest.build`'s checks), less
    what a sharded collection cannot do.

    Relevance needs a calibration fitted over every item's scores and hubness reduction a
    bank of every item's neighbours: neither is kept for a sharded collection (each shard
    would fit its own, and the merged hits would not compare), so both are refused here
    rather than by every shard.
    """
    request = SearchRequest.build(**options)
    if request.wants_relevance:
        raise NotCalibratedError(
            "sharded collections do not calibrate relevance (yet), so min_relevance and "
            "cutoff are not available: search without them"
        )
    if request.hubness.method != "none":
        raise InvalidArgumentError(
            "sharded collections do not reduce hubness (yet): search with hubness='none'"
        )
    if request.candidates is not None:
        raise InvalidArgumentError(
            "candidates sets how many encodings a multi-vector collection reranks by MaxSim; "
            "a sharded collection holds one vector per item"
        )
    return request


class ShardedResults(Results):
    """:class:`~simsearch.Results` of a sharded search; ``partial`` is true when
    ``allow_partial=True`` let it leave out the shards named in ``missing_shards``;
    ``shards`` names those whose items it ranked."""

    __slots__ = ("missing_shards", "partial", "shards")
    partial: bool
    missing_shards: tuple[int, ...]
    shards: tuple[int, ...]

    def __init__(
        self, k: int, rows: Sequence[Sequence[Any]], missing: tuple[int, ...], count: int
    ) -> None:
        super().__init__(k, rows)
        object.__setattr__(self, "missing_shards", missing)
        object.__setattr__(self, "partial", bool(missing))
        object.__setattr__(self, "shards", tuple(s for s in range(count) if s not in missing))

    def __reduce__(self) -> tuple[Any, ...]:
        count = len(self.shards) + len(self.missing_shards)
        return (ShardedResults, (self.k, self.rows, self.missing_shards, count))
