"""The global phase of a sharded search: each shard's best hits merged into one ranking.

Every shard ranks its own items exactly as one collection does (filter first, then the
``k + offset`` best), so the best ``k + offset`` of all shards are among the union of
theirs, and the merge only sorts that union by score. Ties (exactly equal scores) are
broken by shard number, then by the shard's own order (a collection's insertion order):
the merged scores always equal one collection's, and its ids do too unless two items
score exactly the same.

>>> rows = merge([[[("a", 0.5, {}, None, None, None, None)]],
...               [[("b", 0.9, {}, None, None, None, None)]]], k=2, offset=0)
>>> [h.id for h in rows[0]]
['b', 'a']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simsearch.distributed.shard import HitTuple
from simsearch.types import Hit

__all__ = ["merge", "merge_fields", "merge_info"]


def merge(
    per_shard: Sequence[Sequence[Sequence[HitTuple]]], *, k: int, offset: int
) -> list[list[Hit]]:
    """Rows of hits, best first: ``per_shard[s][q]`` is shard ``s``'s ranking for query
    ``q``; the hits ``offset .. offset + k`` of the merged ranking come back per query."""
    if not per_shard:
        return []
    merged: list[list[Hit]] = []
    for q in range(len(per_shard[0])):
        pool = [hit for shard in per_shard for hit in shard[q]]  # shard order, then rank
        pool.sort(key=lambda h: -h[1])  # stable: ties keep shard and rank order
        merged.append(
            [
                Hit(i, s, m, t, r, dense_score=d, lexical_score=lex)
                for i, s, m, t, r, d, lex in pool[offset : offset + k]
            ]
        )
    return merged


def merge_fields(per_shard: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The metadata fields of every shard as one collection lists them: counts summed,
    the most common first."""
    merged: dict[str, dict[str, Any]] = {}
    for fields in per_shard:
        for f in fields:
            into = merged.setdefault(
                f["field"], {"field": f["field"], "count": 0, "types": {}, "indexed": None}
            )
            into["count"] += f["count"]
            for kind, n in f["types"].items():
                into["types"][kind] = into["types"].get(kind, 0) + n
            into["indexed"] = into["indexed"] or f.get("indexed")
    return sorted(merged.values(), key=lambda f: (-f["count"], f["field"]))


def merge_info(root: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The shards' :meth:`Collection.info` summaries as one: count and size summed, the
    fields merged, and each shard's own summary under ``shards``."""
    first = parts[0]
    dims = [p["dim"] for p in parts if p["dim"] is not None]
    encoders = [p["encoder"] for p in parts if p["encoder"] is not None]
    return {
        "path": root,
        "count": sum(p["count"] for p in parts),
        "metric": first["metric"],
        "dim": dims[0] if dims else None,
        "encoder": encoders[0] if encoders else None,
        "index": first["index"],
        "seq": None,  # each shard numbers its own writes
        "size_bytes": sum(p["size_bytes"] for p in parts),
        "migration": None,
        "fields": merge_fields([p["fields"] for p in parts]),
        "field_indexes": first["field_indexes"],
        "multivector": None,
        "shard_count": len(parts),
        "shards": list(parts),
    }
