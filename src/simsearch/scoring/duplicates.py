"""Near-duplicate mining with margin scoring (Artetxe & Schwenk, ACL 2019).

A raw similarity threshold treats every neighbourhood alike, but in a dense
region many unrelated items are close, and in a sparse one a true duplicate
may be far. The margin compares a pair's similarity with how similar each
side is to its own nearest neighbours:

    margin(x, y) = cos(x, y) / (r(x) / 2 + r(y) / 2),  r(x) = mean_{z in NN_k(x)} cos(x, z)

(the ratio margin, the best of the paper's three; the distance margin,
similarity minus the same background, is offered too). Candidate pairs are
each item's ``k`` nearest neighbours, in both directions, deduplicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from simsearch.errors import InvalidArgumentError
from simsearch.index.flat import FlatIndex
from simsearch.types import FloatArray, Item, Metric

__all__ = ["DuplicatePair", "find_pairs", "mine_pairs"]

#: The paper's neighbourhood size.
DEFAULT_K = 4


@dataclass(frozen=True)
class DuplicatePair:
    """Two items that are probably duplicates, with their similarity and margin."""

    a: str
    b: str
    similarity: float
    margin: float


def mine_pairs(
    ids: list[str],
    vectors: FloatArray,
    *,
    k: int = DEFAULT_K,
    candidates: int = DEFAULT_K,
    margin: str = "ratio",
    metric: Metric = Metric.COSINE,
) -> list[DuplicatePair]:
    """Every candidate pair with its margin, best margin first.

    Each item proposes its ``candidates`` nearest neighbours (so a pair is found
    from either side); the margin's background uses ``k`` neighbours.
    ``margin`` is ``"ratio"`` (similarity over background) or ``"distance"``
    (similarity minus background). ``vectors`` are compared with ``metric``
    (cosine or dot); each item's neighbours exclude itself.
    """
    if margin not in ("ratio", "distance"):
        raise InvalidArgumentError(f"margin must be 'ratio' or 'distance', not {margin!r}")
    for name, given in (("k", k), ("candidates", candidates)):
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {given!r}")
    n = len(ids)
    if n < 2:
        return []
    k = min(k, n - 1)
    candidates = min(candidates, k)
    rows = np.arange(n, dtype=np.int64)
    index = FlatIndex.from_arrays(metric, rows, vectors)
    scores, found = index.search(vectors, k + 1)
    # Drop each item itself (usually first, but an identical twin may tie with it); k of the
    # k + 1 places always remain.
    keep = found != rows[:, None]
    nn_scores = np.array([row[m][:k] for row, m in zip(scores, keep, strict=True)])
    nn_rows = np.array([row[m][:k] for row, m in zip(found, keep, strict=True)])
    background = nn_scores.mean(axis=1).astype(np.float64)
    proposed: dict[tuple[int, int], float] = {}  # unordered pair -> similarity
    for x in range(n):
        near, sims = nn_rows[x, :candidates].tolist(), nn_scores[x, :candidates].tolist()
        for y, sim in zip(near, sims, strict=True):
            proposed[(min(x, y), max(x, y))] = float(sim)
    out = []
    for (a, b), sim in proposed.items():
        denom = float(background[a] + background[b]) / 2
        if margin == "distance":
            value = sim - denom
        elif denom > 0:
            value = sim / denom
        else:
            value = float("inf") if sim > 0 else 0.0
        out.append(DuplicatePair(ids[a], ids[b], sim, value))
    out.sort(key=lambda p: (-p.margin, -p.similarity, p.a, p.b))
    return out


def find_pairs(
    items: Iterable[Item],
    metric: Metric,
    *,
    k: int,
    margin: str,
    min_margin: float | None,
    candidates: int,
) -> list[DuplicatePair]:
    """Near-duplicate pairs among ``items`` at or above ``min_margin``, best first."""
    if metric is Metric.L2:
        raise InvalidArgumentError("duplicate mining works on cosine and dot collections")
    if min_margin is not None and (
        isinstance(min_margin, bool) or not isinstance(min_margin, int | float)
    ):
        raise InvalidArgumentError(f"min_margin must be a number, got {min_margin!r}")
    listed = list(items)
    if not listed:
        return []
    vectors = [i.vector for i in listed if i.vector is not None]
    if len(vectors) != len(listed):
        raise InvalidArgumentError("duplicate mining needs every item's vector")
    pairs = mine_pairs(
        [i.id for i in listed],
        np.stack(vectors),
        k=k,
        candidates=candidates,
        margin=margin,
        metric=metric,
    )
    return [p for p in pairs if min_margin is None or p.margin >= min_margin]
