"""Approximate search over compressed vectors (FAISS): int8 or binary HNSW graphs and IVF-PQ.

Only the codes are held in memory. Scores from codes are approximate, so the
collection asks for ``k * rescore`` candidates and rescores them with the
float vectors it reads from the store (``approximate_scores`` tells it to).

Codes need training (the int8 ranges, the binary centre, the IVF cells and PQ
codebooks). Until a collection holds more than ``exact_below`` items, or while
a bulk load is still arriving, vectors wait in an exact in-memory buffer; the
index is then trained on them and built. Graph entries cannot be removed in
FAISS, so every vector gets a position, deleted or replaced positions are
masked with a bitmap selector inside the search (not afterwards), and once
masked positions pass ``COMPACT_FRACTION``, or the collection has grown
``RETRAIN_GROWTH`` times past the training sample, ``wants_rebuild`` asks the
collection to rebuild the index from the store.

FAISS was chosen for the quantized kinds after measuring it beside usearch on
GloVe-50 (390,000 base vectors, 2,000 queries, M=16, efConstruction=200, one
search thread, candidates rescored with float vectors): FAISS int8 HNSW with
the dimension padded to a multiple of 8 built in 50 s and gave 5,231 queries/s
at recall@10 0.965; usearch i8 built in 55 s and gave 3,196 queries/s at 0.960.
Unlike usearch's Python API, FAISS also takes a filter inside the walk.
bench/bench_ann.py keeps FAISS int8 HNSW as the peer of this index.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.config import HNSW, IVFPQ
from simsearch.index.base import Int64Array
from simsearch.index.flat import FlatIndex, normalize
from simsearch.index.persist import OtherSettingsError, check_folder, replace_folder
from simsearch.store import Changes
from simsearch.types import FloatArray, Metric

__all__ = ["QuantizedIndex"]

COMPACT_FRACTION = 0.25
#: Rebuild (and retrain) once the live count passes this multiple of the training sample.
RETRAIN_GROWTH = 4
#: At most this many buffered vectors wait for a bulk load before training starts.
TRAIN_SAMPLE = 100_000
#: The fewest vectors an int8 or binary graph is trained on.
MIN_TRAIN_GRAPH = 256
#: Training points per k-means centroid (IVF cells, PQ codebooks) that FAISS asks for.
POINTS_PER_CENTROID = 39
#: FAISS's SIMD kernels for int8 codes need the dimension to be a multiple of this.
SIMD_WIDTH = 8
INDEX_FILE = "quantized.faiss"
ROWS_FILE = "quantized.rows.npy"
CENTRE_FILE = "quantized.centre.npy"
META_FILE = "quantized.json"


def _padded(dim: int) -> int:
    return -(-dim // SIMD_WIDTH) * SIMD_WIDTH


@contextlib.contextmanager
def _all_threads(faiss: Any) -> Iterator[None]:
    """Build with every core, then give searches back the caller's thread setting."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _describe(config: HNSW | IVFPQ) -> str:
    if isinstance(config, IVFPQ):
        return "ivfpq"
    return f"hnsw-{config.quantization}"


class QuantizedIndex:
    """Compressed vectors of the live rows of a collection, searched approximately."""

    approximate_scores = True

    def __init__(self, metric: Metric, dim: int, config: HNSW | IVFPQ) -> None:
        self._faiss: Any = importlib.import_module("faiss")  # a default dependency
        self.metric = metric
        self.dim = dim
        self.config = config
        self.kind = _describe(config)
        self.padded = _padded(dim)
        self._buffer: FlatIndex | None = FlatIndex(metric, dim)
        self._index: Any = None
        self._centre = np.zeros(self.padded, dtype=np.float32)  # binary codes: sign(x - centre)
        self._trained_on = 0
        self._incoming = 0  # rows a bulk load announced with reserve() and has not yet applied
        # Position (insertion order in the FAISS index) -> row; -1 once deleted or replaced.
        self._rows = np.empty(0, dtype=np.int64)
        self._n = 0
        self._pos_of_row = np.full(1024, -1, dtype=np.int64)
        self._count = 0
        self._masked: np.ndarray | None = None  # packed bitmap of live positions, cached

    def __len__(self) -> int:
        return len(self._buffer) if self._buffer is not None else self._count

    @property
    def built(self) -> bool:
        """Whether the codes are trained and searched (otherwise an exact buffer is)."""
        return self._index is not None

    @property
    def min_train(self) -> int:
        """The fewest vectors the codes are trained on (k-means wants ~39 points a centroid)."""
        if isinstance(self.config, IVFPQ):
            return POINTS_PER_CENTROID << self.config.nbits
        return MIN_TRAIN_GRAPH

    @property
    def dead(self) -> int:
        """Positions of deleted or replaced vectors still in the index."""
        return self._n - self._count if self._index is not None else 0

    @property
    def wants_rebuild(self) -> bool:
        """Whether the collection should rebuild this index from the store."""
        if self._index is None:
            return False
        return self.dead > COMPACT_FRACTION * self._n or (
            self._count > RETRAIN_GROWTH * max(self._trained_on, 1)
        )

    def code_bytes(self) -> int:
        """Memory the search vectors take: codes of every position in the index."""
        if self._index is None:
            return 0
        if isinstance(self.config, IVFPQ):
            return int(self._index.pq.code_size) * self._n
        per_vector = self.padded // 8 if self.kind == "hnsw-binary" else self.padded
        return per_vector * self._n

    # -- updates ------------------------------------------------------------------------------
    def _prepare(self, vectors: FloatArray) -> FloatArray:
        x = normalize(vectors) if self.metric is Metric.COSINE else vectors
        if self.padded != self.dim:
            x = np.pad(x, ((0, 0), (0, self.padded - self.dim)))
        return np.ascontiguousarray(x, dtype=np.float32)

    def _binary_codes(self, x: FloatArray) -> np.ndarray:
        return np.packbits(x > self._centre, axis=1)

    def reserve(self, extra: int) -> None:
        self._incoming = extra
        if self._buffer is not None:
            self._buffer.reserve(min(extra, TRAIN_SAMPLE))

    def apply(self, changes: Changes) -> None:
        self._incoming = max(self._incoming - len(changes.rows), 0)
        if self._buffer is not None:
            self._buffer.apply(changes)
            waiting = len(self._buffer)
            if (
                waiting > self.config.exact_below
                and waiting >= self.min_train
                and (waiting >= TRAIN_SAMPLE or self._incoming == 0)
            ):
                self._build_from_buffer()
            return
        if len(changes.rows):
            self._forget(changes.rows)
            self._add(changes.rows, self._prepare(changes.vectors))
        if len(changes.deleted):
            self._forget(changes.deleted)

    def _ensure_rows(self, top: int) -> None:
        if top >= len(self._pos_of_row):
            grown = np.full(max(top + 1, 2 * len(self._pos_of_row)), -1, dtype=np.int64)
            grown[: len(self._pos_of_row)] = self._pos_of_row
            self._pos_of_row = grown

    def _forget(self, rows: Int64Array) -> None:
        """Mask the positions of ``rows`` (deleted, or about to get a new vector)."""
        rows = rows[rows < len(self._pos_of_row)]
        pos = self._pos_of_row[rows]
        held = pos >= 0
        pos = np.unique(pos[held])
        if len(pos):
            self._rows[pos] = -1
            self._pos_of_row[rows[held]] = -1
            self._count -= len(pos)
            self._masked = None

    def _add(self, rows: Int64Array, x: FloatArray) -> None:
        if not len(rows):
            return
        start, end = self._n, self._n + len(rows)
        if end > len(self._rows):
            grown = np.full(max(end, 2 * len(self._rows), 1024), -1, dtype=np.int64)
            grown[: self._n] = self._rows[: self._n]
            self._rows = grown
        self._ensure_rows(int(rows.max()))
        with _all_threads(self._faiss):
            if self.kind == "hnsw-binary":
                self._index.add(self._binary_codes(x))
            else:
                self._index.add(x)
        self._rows[start:end] = rows
        self._pos_of_row[rows] = np.arange(start, end, dtype=np.int64)
        self._n = end
        self._count += len(rows)
        self._masked = None

    def _new_faiss_index(self, sample: FloatArray, expected: int) -> Any:
        faiss = self._faiss
        ip = self.metric is not Metric.L2
        metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        config = self.config
        if isinstance(config, IVFPQ):
            nlist = config.nlist or int(np.clip(4 * np.sqrt(expected), 16, 65_536))
            nlist = max(1, min(nlist, len(sample) // POINTS_PER_CENTROID))
            m = config.m or max(1, self.padded // 4)
            if self.padded % m:
                raise ValueError(f"IVFPQ m={m} must divide the padded dimension {self.padded}")
            quantizer = faiss.IndexFlatIP(self.padded) if ip else faiss.IndexFlatL2(self.padded)
            index = faiss.IndexIVFPQ(quantizer, self.padded, nlist, m, config.nbits, metric)
            index.nprobe = config.nprobe
            index.train(sample)
            return index
        if config.quantization == "binary":
            self._centre = sample.mean(axis=0).astype(np.float32)
            index = faiss.IndexBinaryHNSW(self.padded, config.m)
        else:
            index = faiss.IndexHNSWSQ(self.padded, faiss.ScalarQuantizer.QT_8bit, config.m, metric)
            index.train(sample)
        index.hnsw.efConstruction = config.ef_construction
        index.hnsw.efSearch = config.ef_search
        return index

    def _build_from_buffer(self) -> None:
        buffer = self._buffer
        assert buffer is not None
        rows = buffer.live_rows()
        x = self._prepare(buffer.vectors(rows))
        with _all_threads(self._faiss):
            self._index = self._new_faiss_index(x, len(rows) + self._incoming)
        self._trained_on = len(rows)
        self._buffer = None
        self._add(rows, x)

    # -- search -------------------------------------------------------------------------------
    def exact_vectors(self, rows: Int64Array) -> FloatArray | None:
        """Float vectors of ``rows`` while they are still buffered; ``None`` once built."""
        return None if self._buffer is None else self._buffer.vectors(rows)

    def live_rows(self) -> Int64Array:
        """Every live row, ascending."""
        if self._buffer is not None:
            return self._buffer.live_rows()
        return np.sort(self._rows[: self._n][self._rows[: self._n] >= 0])

    def keep_live(self, rows: Int64Array) -> Int64Array:
        """Those of ``rows`` (ascending) that are live, in order."""
        if self._buffer is not None:
            return self._buffer.keep_live(rows)
        rows = rows[rows < len(self._pos_of_row)]
        return rows[self._pos_of_row[rows] >= 0]

    def _selector_bitmap(self, allowed_rows: Int64Array | None) -> np.ndarray | None:
        """A packed bitmap of the positions a search may return; ``None`` when all may."""
        if allowed_rows is None:
            if self._n == self._count:
                return None
            if self._masked is None:
                self._masked = np.packbits(self._rows[: self._n] >= 0, bitorder="little")
            return self._masked
        allowed = allowed_rows[allowed_rows < len(self._pos_of_row)]
        pos = self._pos_of_row[allowed]
        bits = np.zeros(self._n, dtype=bool)
        bits[pos[pos >= 0]] = True
        return np.packbits(bits, bitorder="little")

    def search(
        self,
        queries: FloatArray,
        k: int,
        allowed_rows: Int64Array | None = None,
        *,
        ef: int | None = None,
        nprobe: int | None = None,
    ) -> tuple[FloatArray, Int64Array]:
        """``k`` candidates per query with scores from the codes (approximate, best first).

        ``allowed_rows`` becomes a selector inside the graph walk or list scan.
        Raises ``RuntimeError`` when the walk finds fewer candidates than exist.
        """
        if self._buffer is not None:
            return self._buffer.search(queries, k, allowed_rows)
        faiss = self._faiss
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        rows = np.full((nq, k), -1, dtype=np.int64)
        bitmap = self._selector_bitmap(allowed_rows)
        population = self._count
        if allowed_rows is not None:
            allowed = allowed_rows[allowed_rows < len(self._pos_of_row)]
            population = int((self._pos_of_row[allowed] >= 0).sum())
        k_eff = min(k, population)
        if k_eff == 0:
            return scores, rows
        share = population / max(self._count, 1)
        selector = (
            None if bitmap is None else faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bitmap))
        )
        x = self._prepare(np.ascontiguousarray(queries, dtype=np.float32))
        if isinstance(self.config, IVFPQ):
            # Lists hold a share of allowed items; widen the probe by the excluded share.
            probe = int(min(max((nprobe or self.config.nprobe) / max(share, 1e-3), 1), 65_536))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=probe)
        else:
            # The walk passes through excluded nodes; widen it by the excluded share.
            width = max(ef or self.config.ef_search, k_eff)
            width = int(min(max(width / max(share, 1e-3), k_eff), 4096))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=width)
        if self.kind == "hnsw-binary":
            distances, positions = self._index.search(self._binary_codes(x), k_eff, params=params)
            found_scores = -distances.astype(np.float32)  # fewer differing bits, higher score
        else:
            distances, positions = self._index.search(x, k_eff, params=params)
            if self.metric is Metric.L2:
                found_scores = -np.sqrt(np.maximum(distances, 0.0))
            else:
                found_scores = distances
        if (positions < 0).any():
            raise RuntimeError("the search found fewer candidates than the collection holds")
        rows[:, :k_eff] = self._rows[positions]
        scores[:, :k_eff] = found_scores
        if (rows[:, :k_eff] < 0).any():
            raise RuntimeError("the search returned a masked position")
        return scores, rows

    # -- persistence --------------------------------------------------------------------------
    def _settings(self) -> list[Any]:
        config = self.config
        if isinstance(config, IVFPQ):
            return [self.kind, config.nlist, config.m, config.nbits]
        return [self.kind, config.m, config.ef_construction]

    def save(self, directory: Path, seq: int, store_id: str) -> None:
        """Write the codes, positions and applied sequence number (a complete set or nothing).

        An index still in its exact buffer saves nothing: the buffer is small and
        the next opener refills it from the store.
        """
        if self._index is None:
            return

        def write(staging: Path) -> None:
            if self.kind == "hnsw-binary":
                self._faiss.write_index_binary(self._index, str(staging / INDEX_FILE))
            else:
                self._faiss.write_index(self._index, str(staging / INDEX_FILE))
            np.save(staging / ROWS_FILE, self._rows[: self._n])
            np.save(staging / CENTRE_FILE, self._centre)
            meta = {
                "seq": seq,
                "live": self._count,
                "trained_on": self._trained_on,
                "metric": self.metric.value,
                "dim": self.dim,
                "settings": self._settings(),
            }
            (staging / META_FILE).write_text(json.dumps(meta))

        replace_folder(directory, store_id, write)

    @classmethod
    def load(
        cls, directory: Path, metric: Metric, dim: int, config: HNSW | IVFPQ, store_id: str
    ) -> tuple[QuantizedIndex, int]:
        """A saved index and the sequence number it has applied; raises ``FileNotFoundError``
        or ``ValueError`` when there is none, it does not fit, or it was not saved from the
        store ``store_id`` as it is (see :mod:`simsearch.index.persist`)."""
        check_folder(directory, store_id)
        index = cls(metric, dim, config)
        meta = json.loads((directory / META_FILE).read_text())
        if (meta["metric"], meta["dim"], meta["settings"]) != (
            metric.value,
            dim,
            index._settings(),
        ):
            raise OtherSettingsError("the saved index was built with other settings")
        faiss = index._faiss
        path = str(directory / INDEX_FILE)
        loaded = (
            faiss.read_index_binary(path) if index.kind == "hnsw-binary" else faiss.read_index(path)
        )
        rows = np.load(directory / ROWS_FILE)
        if loaded.ntotal != len(rows) or int((rows >= 0).sum()) != meta["live"]:
            raise ValueError("the saved index and its positions disagree")
        index._index = loaded
        index._buffer = None
        index._centre = np.load(directory / CENTRE_FILE)
        index._trained_on = int(meta["trained_on"])
        index._rows = rows.astype(np.int64)
        index._n = len(rows)
        live = np.flatnonzero(rows >= 0)
        if len(live):
            index._ensure_rows(int(rows[live].max()))
        index._pos_of_row[rows[live]] = live
        index._count = len(live)
        return index, int(meta["seq"])
