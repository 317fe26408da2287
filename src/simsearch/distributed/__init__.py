"""Sharded collections on Ray (the ``ray`` extra): :class:`ShardedCollection` spreads a
collection over shard actors, each an ordinary collection in its own folder, and merges
their searches exactly. Importing this package does not import Ray; opening a sharded
collection does, and without the extra it raises
:class:`~simsearch.MissingDependencyError` naming it.
"""

from __future__ import annotations

from simsearch.distributed.sharded import ShardedCollection, ShardedResults

__all__ = ["ShardedCollection", "ShardedResults"]
