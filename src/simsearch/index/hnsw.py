"""Approximate search on an HNSW graph (hnswlib), kept in step with the store.

Labels in the graph are the store's row numbers. Writes are inserted (or
replace the vector of an existing label) and deletions are marked, so a write
is searchable as soon as the index has caught up with it; once deleted marks
pass ``COMPACT_FRACTION`` of the graph, the collection builds a fresh graph of
the live vectors in the background (:meth:`HNSWIndex.built_from`) so recall
does not decay. The graph is saved with the store sequence number it
has applied, and a reopened collection loads it and applies only what came later.

hnswlib was chosen after measuring it beside FAISS HNSW and usearch on GloVe
(bench/bench_ann_libraries.py): at the same M and ef_construction it gave the
most single-threaded queries per second at recall@10 >= 0.95.
"""

from __future__ import annotations

import json
import math
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.config import HNSW
from simsearch.encoders.base import require
from simsearch.index.base import Int64Array
from simsearch.index.flat import FlatIndex, normalize
from simsearch.index.hnsw_file import check_graph_file
from simsearch.index.persist import OtherSettingsError, check_folder, replace_folder
from simsearch.store import Changes
from simsearch.types import FloatArray, Metric

__all__ = ["HNSWIndex"]

COMPACT_FRACTION = 0.25
#: A filtered walk keeps the first k allowed rows among its nearest (k + SPREAD * sqrt(k)
#: + 10) / share: under a filter unrelated to the query that many hold k allowed rows with
#: a few standard deviations to spare, and a query it fails walks again (see
#: HNSWIndex._search_allowed). The depth barely moves recall on GloVe (3k / share and 4k /
#: share gave the same as 2k / share); the beam sets it.
SPREAD = 3.0
#: The beam of a filtered walk is the search's own divided by the allowed share to this
#: power (and at least the depth above). Measured on GloVe-50 at 1,000,000 items (M 16,
#: ef 128, k 10, 300 queries; unfiltered recall 0.962): 1.0 (the beam widened by the
#: whole excluded share) gave recall 0.982 at 1,044 us at 50% excluded and 0.994 at 1,488
#: us at 80%; 0.5 gave 0.971 at 50% and 0.982 at 90%; 0.37 gives 0.966 at 50% and 0.965
#: at 90% (the unfiltered search's own recall) in 91% and 81% of 0.5's time, and makes
#: the walk cheaper than exact search at 90% (703 against 929 us). What the depth
#: already brings makes more widening buy recall the unfiltered search does not have.
BEAM_POWER = 0.37
MAX_FILTERED_EF = 4096
APPLY_CHUNK = 50_000
GRAPH_FILE = "hnsw.bin"
LABELS_FILE = "hnsw.labels.npy"
META_FILE = "hnsw.json"


def _threads() -> int:
    return os.cpu_count() or 1


class HNSWIndex:
    """An hnswlib graph over the live rows of a collection."""

    def __init__(self, metric: Metric, dim: int, config: HNSW) -> None:
        self._lib: Any = require("hnswlib", "hnsw")  # a default dependency; named for clarity
        self.metric = metric
        self.dim = dim
        self.config = config
        self._graph: Any = self._new_graph(1024)
        # Which store rows are live, as a bitmap indexed by row (1 byte a row, not a Python set).
        self._alive = np.zeros(1024, dtype=bool)
        self._count = 0
        self._dead = 0
        # The live allowed rows and their mask, per allowed-rows array: a repeated filter
        # hands over the same (read-only) array, and building the mask costs a pass over
        # every row, which at 390,000 rows was a millisecond of each filtered walk.
        self._changes = 0
        self._masks: list[tuple[weakref.ref[Any], int, Int64Array, Any]] = []

    def _new_graph(self, capacity: int) -> Any:
        graph = self._lib.Index(space="l2" if self.metric is Metric.L2 else "ip", dim=self.dim)
        graph.init_index(
            max_elements=capacity, M=self.config.m, ef_construction=self.config.ef_construction
        )
        graph.set_ef(self.config.ef_search)
        return graph

    def __len__(self) -> int:
        return self._count

    def _ensure_rows(self, top: int) -> None:
        if top >= len(self._alive):
            grown = np.zeros(max(top + 1, 2 * len(self._alive)), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown

    @property
    def dead(self) -> int:
        """Deleted rows still marked in the graph."""
        return self._dead

    # -- updates ------------------------------------------------------------------------------
    def _prepare(self, vectors: FloatArray) -> FloatArray:
        return normalize(vectors) if self.metric is Metric.COSINE else vectors

    def reserve(self, extra: int) -> None:
        needed = self._graph.element_count + extra
        if needed > self._graph.get_max_elements():
            self._graph.resize_index(needed)  # exactly: a bulk load should not overshoot

    def apply(self, changes: Changes) -> None:
        self._changes += 1
        if len(changes.rows):
            self._ensure_rows(int(changes.rows.max()))
            new = int((~self._alive[changes.rows]).sum())
            needed = self._graph.element_count + new
            if needed > self._graph.get_max_elements():
                self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
            # An existing label gets its vector replaced in place. Chunks keep the normalised
            # copy small when a whole collection is loaded at once.
            for start in range(0, len(changes.rows), APPLY_CHUNK):
                part = slice(start, start + APPLY_CHUNK)
                self._graph.add_items(
                    self._prepare(changes.vectors[part]), changes.rows[part], num_threads=_threads()
                )
            self._alive[changes.rows] = True
            self._count += new
        if len(changes.deleted):
            deleted = changes.deleted[changes.deleted < len(self._alive)]
            deleted = np.unique(deleted[self._alive[deleted]])
            for row in deleted.tolist():
                self._graph.mark_deleted(row)
            self._alive[deleted] = False
            self._count -= len(deleted)
            self._dead += len(deleted)

    @property
    def wants_rebuild(self) -> bool:
        """Whether deleted marks have passed ``COMPACT_FRACTION`` of the graph."""
        return self._dead > COMPACT_FRACTION * (self._count + self._dead)

    def live_copy(self) -> tuple[Int64Array, FloatArray]:
        """The live rows and their vectors, copied: what :meth:`built_from` takes."""
        rows = self.live_rows()
        return rows, self.vectors(rows)

    @classmethod
    def built_from(
        cls, metric: Metric, dim: int, config: HNSW, rows: Int64Array, vectors: FloatArray
    ) -> HNSWIndex:
        """A fresh graph of ``rows`` (vectors as :meth:`vectors` gives them). hnswlib
        releases the GIL while it builds, so other threads keep searching meanwhile."""
        index = cls(metric, dim, config)
        index._fill(rows, vectors)
        return index

    def _fill(self, rows: Int64Array, vectors: FloatArray) -> None:
        self._changes += 1
        self._graph = self._new_graph(max(1024, len(rows)))
        if len(rows):
            self._graph.add_items(vectors, rows, num_threads=_threads())
            self._ensure_rows(int(rows.max()))
        self._alive[:] = False
        self._alive[rows] = True
        self._count = len(rows)
        self._dead = 0

    def rebuild(self) -> None:
        """A fresh graph of the live vectors only (drops every deleted mark)."""
        self._fill(*self.live_copy())

    def live_rows(self) -> Int64Array:
        """Every live row, ascending."""
        return np.flatnonzero(self._alive).astype(np.int64)

    def keep_live(self, rows: Int64Array) -> Int64Array:
        """Those of ``rows`` (ascending) that are live, in order (one look-up a row)."""
        rows = rows[rows < len(self._alive)]
        return rows[self._alive[rows]]

    def exact_vectors(self, rows: Int64Array) -> FloatArray | None:
        """The float vectors of ``rows`` (this index holds them all)."""
        return self.vectors(rows)

    def vectors(self, rows: Int64Array) -> FloatArray:
        """The stored (normalised, for cosine) vectors of ``rows``."""
        if not len(rows):
            return np.empty((0, self.dim), dtype=np.float32)
        got = self._graph.get_items(rows, return_type="numpy")
        return np.ascontiguousarray(got, dtype=np.float32)

    # -- search -------------------------------------------------------------------------------
    def search(
        self,
        queries: FloatArray,
        k: int,
        allowed_rows: Int64Array | None = None,
        *,
        ef: int | None = None,
    ) -> tuple[FloatArray, Int64Array]:
        """Graph search; with ``allowed_rows``, the nearest ``k`` of those rows (see
        :meth:`_search_allowed`)."""
        queries = self._prepare(np.ascontiguousarray(queries, dtype=np.float32))
        if allowed_rows is None and 0 < k <= self._count:
            beam = max(ef or self.config.ef_search, k)
            if beam < self._count:
                # The path of nearly every unfiltered search (a server's one query a call):
                # the walk's own arrays, with no padding to fill.
                self._graph.set_ef(beam)
                labels, distances = self._graph.knn_query(queries, k=k, num_threads=1)
                # hnswlib's labels are uint64 rows, all below 2**63: the same bits as int64.
                return self._scores_of(distances), labels.view(np.int64)
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        rows = np.full((nq, k), -1, dtype=np.int64)
        mask = None
        if allowed_rows is not None:
            allowed, mask = self._allowed_mask(allowed_rows)
            population = len(allowed)
            if population == self._count:
                allowed_rows = None  # every live row passes: an unfiltered walk
        else:
            population = self._count
        k_eff = min(k, population)
        if k_eff == 0:
            return scores, rows
        ef = max(ef or self.config.ef_search, k_eff)
        if ef >= population:
            # A beam as wide as the candidates would visit them all: scan them instead. A
            # walk can miss items no edge leads to (many equal vectors prune each other's
            # links), and scanning this few costs less than the walk.
            candidates = self.live_rows() if allowed_rows is None else np.sort(allowed)
            return FlatIndex.from_arrays(self.metric, candidates, self.vectors(candidates)).search(
                queries, k
            )
        if allowed_rows is None:
            self._graph.set_ef(ef)
            labels, distances = self._graph.knn_query(queries, k=k_eff, num_threads=1)
        else:
            labels, distances = self._search_allowed(queries, k_eff, allowed, mask, ef)
        rows[:, :k_eff] = labels.astype(np.int64)
        scores[:, :k_eff] = self._scores_of(distances)
        return scores, rows

    def _scores_of(self, distances: Any) -> FloatArray:
        """hnswlib's distances as simsearch's higher-is-better scores."""
        if self.metric is Metric.L2:
            return -np.sqrt(np.maximum(distances, 0.0))  # type: ignore[no-any-return]
        return 1.0 - distances  # type: ignore[no-any-return]

    def _allowed_mask(self, allowed_rows: Int64Array) -> tuple[Int64Array, Any]:
        """The live rows of ``allowed_rows`` and a mask of them over every row, reused
        while the same array comes back and the graph has not changed."""
        for ref, changes, allowed, mask in self._masks:
            if ref() is allowed_rows and changes == self._changes:
                return allowed, mask
        rows = np.asarray(allowed_rows, dtype=np.int64)
        rows = rows[rows < len(self._alive)]
        allowed = rows[self._alive[rows]]
        mask = np.zeros(len(self._alive), dtype=bool)
        mask[allowed] = True
        try:
            ref = weakref.ref(allowed_rows)
        except TypeError:  # not an array that takes weak references: nothing to reuse
            return allowed, mask
        self._masks = [(ref, self._changes, allowed, mask), *self._masks[:3]]
        return allowed, mask

    def _search_allowed(
        self, queries: FloatArray, k: int, allowed: Int64Array, mask: Any, ef: int
    ) -> tuple[Any, Any]:
        """Labels and distances of the nearest ``k`` of the ``allowed`` rows.

        The walk widens its beam by the excluded share (see ``BEAM_POWER``), runs without
        the filter and keeps the first ``k`` allowed rows among its nearest ``depth`` (see
        ``SPREAD``).
        The allowed rows among the true nearest ``depth`` are the nearest allowed rows,
        so this is as accurate as the unfiltered walk it rests on, and it costs no
        Python call per visited node (hnswlib's filter is a Python callable; measured on
        GloVe in bench/bench_ann.py). Queries that find fewer than ``k`` allowed rows
        there, where a filter excludes their neighbourhood, walk again with the filter
        inside.
        """
        share = len(allowed) / max(self._count, 1)
        ef = int(min(max(ef / max(share, 1e-3) ** BEAM_POWER, k), MAX_FILTERED_EF))
        depth = min(self._count, math.ceil((k + SPREAD * math.sqrt(k) + 10) / share))
        self._graph.set_ef(max(ef, depth))
        try:
            near, dist = self._graph.knn_query(queries, k=depth, num_threads=1)
        except RuntimeError:  # the walk reached fewer than ``depth`` live nodes
            near = np.zeros((len(queries), 0), dtype=np.uint64)
            dist = np.zeros((len(queries), 0), dtype=np.float32)
        if len(near) == 1:  # one query (a server's call): its first k allowed, if it has k
            first = np.flatnonzero(mask[near[0].astype(np.int64)])[:k]
            if len(first) == k:
                return near[:, first], dist[:, first]
        keep = mask[near.astype(np.int64)]
        first = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        labels = np.zeros((len(queries), k), dtype=np.uint64)
        distances = np.zeros((len(queries), k), dtype=np.float32)
        short = keep.sum(axis=1) < k
        if not short.all():
            found = ~short
            labels[found] = np.take_along_axis(near[found], first[found], axis=1)
            distances[found] = np.take_along_axis(dist[found], first[found], axis=1)
        if short.any():
            members = set(allowed.tolist())
            self._graph.set_ef(ef)
            labels[short], distances[short] = self._graph.knn_query(
                queries[short], k=k, num_threads=1, filter=members.__contains__
            )
        return labels, distances

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path, seq: int, store_id: str) -> None:
        """Write the graph, its live labels and the applied sequence number to ``directory``
        for the store ``store_id`` (a complete set or nothing, see
        :mod:`simsearch.index.persist`)."""

        def write(staging: Path) -> None:
            self._graph.save_index(str(staging / GRAPH_FILE))
            np.save(staging / LABELS_FILE, self.live_rows())
            meta = {
                "seq": seq,
                "live": self._count,
                "dead": self._dead,
                "metric": self.metric.value,
                "dim": self.dim,
                "config": [self.config.m, self.config.ef_construction],
            }
            (staging / META_FILE).write_text(json.dumps(meta))

        replace_folder(directory, store_id, write)

    @classmethod
    def load(
        cls, directory: Path, metric: Metric, dim: int, config: HNSW, store_id: str
    ) -> tuple[HNSWIndex, int]:
        """A saved graph and the sequence number it has applied; raises ``FileNotFoundError``
        when there is none and ``ValueError`` when it does not fit, was saved from another
        store, changed on disk, or fails the bounds checks of :mod:`simsearch.index.hnsw_file`."""
        check_folder(directory, store_id)
        meta = json.loads((directory / META_FILE).read_text())
        if (meta["metric"], meta["dim"], meta["config"]) != (
            metric.value,
            dim,
            [config.m, config.ef_construction],
        ):
            raise OtherSettingsError("the saved graph was built with other settings")
        saved = check_graph_file(directory / GRAPH_FILE, dim, config.m, config.ef_construction)
        labels = np.load(directory / LABELS_FILE, allow_pickle=False)
        live = saved.labels[~saved.deleted]
        if (
            labels.dtype.kind not in "iu"
            or len(np.unique(saved.labels)) != saved.count
            or not np.array_equal(np.sort(labels), np.sort(live))
            or len(labels) != meta["live"]
        ):
            raise ValueError("the saved graph and its labels disagree")
        index = cls(metric, dim, config)
        graph = index._lib.Index(space="l2" if metric is Metric.L2 else "ip", dim=dim)
        # Room for exactly what is there: the header's own capacity is not trusted.
        graph.load_index(str(directory / GRAPH_FILE), max_elements=max(saved.count, 1))
        graph.set_ef(config.ef_search)
        index._graph = graph
        labels = labels.astype(np.int64)
        if len(labels):
            index._ensure_rows(int(labels.max()))
        index._alive[labels] = True
        index._count = len(labels)
        index._dead = int(saved.deleted.sum())
        return index, int(meta["seq"])
