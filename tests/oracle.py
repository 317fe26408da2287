"""A brute-force reference for searches and filters, written independently of simsearch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = object()


def lookup(meta: dict[str, Any], field: str) -> Any:
    value: Any = meta
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _eq(v: Any, x: Any) -> bool:
    if v is MISSING:
        return False
    if x is None:
        return v is None
    if isinstance(x, bool):
        return isinstance(v, bool) and v == x
    if _is_number(x):
        return _is_number(v) and v == x
    return isinstance(v, str) and v == x


def _cmp(v: Any, x: Any, op: str) -> bool:
    ok = _is_number(v) if _is_number(x) else isinstance(v, str)
    if not ok:
        return False
    return {"$gt": v > x, "$gte": v >= x, "$lt": v < x, "$lte": v <= x}[op]


def matches(meta: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, cond in where.items():
        if key == "$and":
            ok = all(matches(meta, c) for c in cond)
        elif key == "$or":
            ok = any(matches(meta, c) for c in cond)
        elif key == "$not":
            ok = not matches(meta, cond)
        else:
            v = lookup(meta, key)
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            ok = True
            for op, x in ops.items():
                if op == "$eq":
                    ok &= _eq(v, x)
                elif op == "$ne":
                    ok &= not _eq(v, x)
                elif op == "$in":
                    ok &= any(_eq(v, y) for y in x)
                elif op == "$nin":
                    ok &= not any(_eq(v, y) for y in x)
                elif op == "$exists":
                    ok &= (v is not MISSING) == x
                elif op == "$contains":
                    ok &= isinstance(v, list) and any(_eq(e, x) for e in v)
                elif op == "$all":
                    ok &= isinstance(v, list) and all(any(_eq(e, y) for e in v) for y in x)
                else:
                    ok &= _cmp(v, x, op)
        if not ok:
            return False
    return True


_POSITIVE = {"$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$contains", "$all"}


def required_fields(where: dict[str, Any]) -> set[str]:
    """Fields a match must hold: compared positively, reached through $and alone."""
    found: set[str] = set()
    for key, cond in where.items():
        if key == "$and":
            for c in cond:
                found |= required_fields(c)
        elif not key.startswith("$") and (not isinstance(cond, dict) or _POSITIVE & set(cond)):
            found.add(key)
    return found


def names_unknown_field(metas: list[dict[str, Any]], where: dict[str, Any] | None) -> bool:
    """Whether simsearch must refuse ``where`` as a likely typo: there are items, but
    none holds a field every match needs."""
    if not where or not metas:
        return False
    return any(all(lookup(m, f) is MISSING for m in metas) for f in required_fields(where))


class Oracle:
    """Items in insertion order (an upsert keeps an item's place; delete + add moves it last)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.items: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}

    def refuses(self, where: dict[str, Any] | None) -> bool:
        return names_unknown_field([m for _, m in self.items.values()], where)

    def search(
        self, query: np.ndarray, k: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        ids = [i for i, (_, m) in self.items.items() if where is None or matches(m, where)]
        if not ids:
            return []
        x = np.array([self.items[i][0] for i in ids], dtype=np.float64)
        q = np.asarray(query, dtype=np.float64)
        if self.metric == "dot":
            key = x @ q
            scores = key
        elif self.metric == "l2":
            key = -((x - q) ** 2).sum(axis=1)
            scores = -np.sqrt(-key)
        else:
            xn = np.linalg.norm(x, axis=1)
            qn = np.linalg.norm(q)
            key = (x @ q) / np.maximum(xn * qn, 1e-30)
            scores = key
        order = sorted(range(len(ids)), key=lambda j: (-key[j], j))[:k]
        return [(ids[j], float(scores[j])) for j in order]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
