"""The index a collection searches, kept in step with its store.

:class:`IndexKeeper` owns the vector index and everything about its upkeep: it
builds or loads it (a saved index is used only when it is this store's, intact,
and agrees with the store, see :mod:`simsearch.index.persist`), applies the
store's changes by sequence number (other processes' writes too), rebuilds it
in a background thread once deletions or growth call for it, saves it, and
decides which rows a filter allows (:class:`~simsearch.index.filter_cache.FilterCache`).

Searches read the index at the same time as each other: :meth:`IndexKeeper.reading`
brings the index up to the reader's snapshot and then holds it steady (a shared
hold) while the reader ranks; applying changes or swapping in a rebuilt index
waits for the readers of the moment and holds back new ones meanwhile.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from simsearch.config import HNSW, IVFPQ, CollectionConfig, FieldIndexSpec, Flat, IndexConfig
from simsearch.errors import CollectionClosedError
from simsearch.filters import SqlFilter
from simsearch.index.base import Int64Array, VectorIndex
from simsearch.index.bm25 import BM25Index
from simsearch.index.described import DescribedRows
from simsearch.index.field_set import FieldIndexes
from simsearch.index.filter_cache import FilterCache
from simsearch.index.flat import FlatIndex, normalize
from simsearch.index.hnsw import HNSWIndex
from simsearch.index.lexical import LexicalIndex, Progress
from simsearch.index.persist import load_saved
from simsearch.index.quantized import QuantizedIndex
from simsearch.index.subsets import SubsetCache
from simsearch.index.text_filter import TextFilter, TextRows
from simsearch.index.window_set import WindowSet, window_specs
from simsearch.store import SQLiteStore
from simsearch.store.reads import ReadTxn, StoreState
from simsearch.types import Metric

__all__ = ["INDEX_DIR", "IndexKeeper", "Pinned"]

INDEX_DIR = "index"
#: Rows a catch-up applies at a time: large enough that a graph builds them with every
#: thread busy, small enough that a bulk load holds one chunk of vectors at once.
CATCH_UP_CHUNK = 32_768
#: Saved vectors compared with the store's when a graph is loaded.
SPOT_CHECK = 32


def _quantized(kind: IndexConfig) -> bool:
    return isinstance(kind, IVFPQ) or (isinstance(kind, HNSW) and kind.quantization != "none")


def empty_index(config: CollectionConfig, dim: int) -> VectorIndex:
    """A new, empty index of the kind ``config`` names."""
    kind = config.index
    if isinstance(kind, Flat):
        return FlatIndex(config.metric, dim)
    if _quantized(kind):
        return QuantizedIndex(config.metric, dim, kind)
    assert isinstance(kind, HNSW)
    return HNSWIndex(config.metric, dim, kind)


def index_from_store(snap: ReadTxn, config: CollectionConfig) -> VectorIndex:
    """A fresh index trained and filled from the store's float vectors, at ``snap``."""
    assert config.dim is not None
    index = empty_index(config, config.dim)
    index.reserve(snap.count())
    for changes in snap.changes_since(0, config.dim):
        index.apply(changes)
    return index


def _spot_check(index: VectorIndex, snap: ReadTxn, config: CollectionConfig, seq: int) -> None:
    """Raise ``ValueError`` unless a sample of the loaded index's float vectors equals the
    store's: its scores must be the store's scores, not whatever the file says."""
    rows = index.live_rows()
    if not len(rows) or config.dim is None:
        return
    picked = rows[np.linspace(0, len(rows) - 1, min(SPOT_CHECK, len(rows))).astype(np.int64)]
    # Rows rewritten or deleted since the save are the catch-up's to change.
    picked = snap.rows_unchanged_since(np.unique(picked), seq)
    held = index.exact_vectors(picked) if len(picked) else None
    if held is None:
        return  # codes only: scores are rescored from the store's vectors anyway
    stored = snap.vectors_of_rows(picked, config.dim)
    if config.metric is Metric.COSINE:
        stored = normalize(stored)
    if not np.allclose(held, stored, rtol=1e-4, atol=1e-5):
        raise ValueError("its vectors differ from the store's")


class _Gate:
    """Many readers at once, or one change; a waiting change holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._changing = False
        self._waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.reserve()
        with self.held():
            yield

    def reserve(self) -> None:
        """Take a reader's hold now (under the keeper's lock); :meth:`release` (or the
        end of :meth:`held`) gives it back."""
        with self._cond:
            if self._changing or self._waiting:
                self._cond.wait_for(lambda: not self._changing and not self._waiting)
            self._readers += 1

    def release(self) -> None:
        """Give back a hold :meth:`reserve` took; the last reader out wakes a waiting change
        (only a change waits for readers)."""
        with self._cond:
            self._readers -= 1
            if not self._readers and self._waiting:
                self._cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The block runs in the hold :meth:`reserve` took, given back at its end."""
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def changing(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(lambda: not self._changing and not self._readers)
            finally:
                self._waiting -= 1
                self._cond.notify_all()
            self._changing = True
        try:
            yield
        finally:
            with self._cond:
                self._changing = False
                self._cond.notify_all()


class Pinned(NamedTuple):
    """The index as one reader sees it: caught up to its snapshot, held steady, with the
    snapshot's state and config (read after any renewal of the snapshot). A named tuple:
    every search makes one, and a frozen dataclass took three times as long to make."""

    index: VectorIndex | None  # type: ignore[assignment]  # over tuple.index; None: no vectors yet
    allowed: Int64Array | None  # rows a filter allows (all live when None)
    state: StoreState
    config: CollectionConfig
    version: int  # changes whenever the index does
    subsets: SubsetCache
    filter_key: str | None
    filter_source: str | None = None  # where the allowed rows came from (see FilterCache)
    window: HNSWIndex | None = None  # a window bucket's graph holding every allowed row
    lexical: LexicalIndex | None = None  # caught up to the snapshot too, when asked for

    def exact_flat(self, rows: Callable[[], Int64Array], filtered: bool) -> FlatIndex | None:
        """A flat copy of ``rows`` (all live rows, or the filter's), reused while the index
        holds still; ``None`` where no copy fits (see :mod:`simsearch.index.subsets`)."""
        if self.index is None:
            return None
        key = self.filter_key if filtered else None
        return self.subsets.flat(self.index, self.version, key, rows)


class IndexKeeper:
    """Builds, loads, updates, rebuilds and saves one collection's vector index."""

    def __init__(self, store: SQLiteStore, directory: Path) -> None:
        self._store = store
        self.directory = directory / INDEX_DIR
        self.index: VectorIndex | None = None
        self._kind: IndexConfig | None = None
        self.applied_seq = 0
        self.saved_seq = -1  # the sequence number of the index files on disk
        self.rebuild: threading.Thread | None = None  # an index being rebuilt meanwhile
        self._failed_rebuild: VectorIndex | None = None
        self.filters = FilterCache()
        self.subsets = SubsetCache()
        self.described = DescribedRows()
        self.fields = FieldIndexes(directory, store.store_id)
        self.windows = WindowSet()
        self.lexical = LexicalIndex(directory, store.store_id)
        # The lexical index's catch-ups and readers; taken before ``_lock`` when both are.
        self._lexical_lock = threading.RLock()
        self.version = 0  # bumped at every change of the index, so copies of it expire
        self._lock = threading.RLock()  # decisions about the index, one thread at a time
        self._gate = _Gate()
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise CollectionClosedError(f"the collection at {self._store.collection} is closed")

    # -- keeping up --------------------------------------------------------------------------
    def catch_up(
        self, snap: ReadTxn, *, rebuild_later: bool = True
    ) -> tuple[StoreState, CollectionConfig]:
        """Bring the index up to the snapshot (other processes' writes too) and start a
        background rebuild when the index wants one (``rebuild_later``). A snapshot older
        than the index (begun before another thread caught it up) is renewed first, so
        the index never holds rows the reader cannot see. Returns the snapshot's state
        and config."""
        with self._lock:
            if self.closed:
                raise CollectionClosedError(f"the collection at {self._store.collection} is closed")
            state = snap.state()
            if state.seq < self.applied_seq:
                snap.renew()
                state = snap.state()
            config = snap.config(state)
            seq = state.seq
            if config.dim is None:
                return state, config
            index = self.index
            fresh = (
                index is None
                or self._kind != config.index
                or index.dim != config.dim  # a finished model upgrade changed the space
            )
            if fresh or seq != self.applied_seq:
                with self._gate.changing():
                    self.version += 1
                    if fresh:
                        self.index = self._loaded_or_new(snap, config, config.dim)
                        self._kind = config.index
                        self.described.clear()
                        self.windows.reset()
                    if seq != self.applied_seq:
                        assert self.index is not None
                        if self.windows.indexes:  # they read the written rows' values
                            self.fields.catch_up(snap, seq, config)
                        self.index.reserve(snap.count_since(self.applied_seq))
                        for changes in snap.changes_since(
                            self.applied_seq, config.dim, chunk=CATCH_UP_CHUNK
                        ):
                            self.index.apply(changes)
                            self.windows.apply(changes, self.fields)
                            self.described.forget(changes.rows.tolist())
                            self.described.forget(changes.deleted.tolist())
                        self.applied_seq = seq
            if rebuild_later:
                self._rebuild_if_wanted(config)
            return state, config

    @contextmanager
    def reading(
        self,
        snap: ReadTxn,
        flt: SqlFilter | None = None,
        *,
        lexical: bool = False,
        text: TextFilter | None = None,
        progress: Progress | None = None,
    ) -> Iterator[Pinned]:
        """The index caught up to ``snap`` and held steady while the block runs, with the
        rows ``flt`` and ``text`` allow; and the lexical index too when ``lexical`` (or a
        text filter needs it), caught up first under a lock of its own, held while the
        block runs, so that building it (a long first catch-up, with a bar when
        ``progress`` asks) holds back no dense search or write."""
        lexical = lexical or text is not None
        with ExitStack() as stack:
            if lexical:
                stack.enter_context(self._lexical_lock)
                self._check_open()
                if snap.state().seq < self.lexical.applied_seq:
                    snap.renew()  # older than the lexical index: it must not hold rows unseen
                self.lexical.catch_up(snap, snap.state().seq, progress)
            pinned = self._pinned(snap, flt, lexical, text)
            stack.enter_context(self._gate.held())
            yield pinned

    def _pinned(
        self, snap: ReadTxn, flt: SqlFilter | None, lexical: bool, text: TextFilter | None
    ) -> Pinned:
        """What :meth:`reading` yields, with the gate's hold already taken under the
        keeper's lock (so no change slips in before it); the caller gives it back."""
        with self._lock:
            state, config = self.catch_up(snap)
            if lexical and self.lexical.applied_seq != state.seq:
                self.lexical.catch_up(snap, state.seq)  # the snapshot was renewed since
            index = self.index if config.dim is not None else None
            allowed, source = None, None
            if index is not None and flt is not None and not flt.matches_all:
                compiled = flt

                def indexed() -> Int64Array | None:
                    return self.fields.rows(snap, state.seq, config, compiled)

                allowed, source = self.filters.rows(
                    snap, flt, self.applied_seq, len(index), indexed
                )
            key = None if flt is None or flt.matches_all else flt.key
            window = None
            if index is not None and key is not None and window_specs(config):
                self.fields.catch_up(snap, state.seq, config)
                self.windows.ensure(config, index, self.fields)
                bucket = self.windows.pick(flt)
                window = None if bucket is None else bucket.graph
            if index is not None and text is not None:
                by_text = text.rows(self.lexical.bm25, index.live_rows())
                allowed = by_text if allowed is None else np.intersect1d(allowed, by_text)
                key, source = f"{key} {text.key}", f"{source or 'all'} + lexical index"
            pinned = Pinned(
                index, allowed, state, config, self.version, self.subsets, key, source, window,
                self.lexical if lexical else None,
            )  # fmt: skip
            self._gate.reserve()  # a hold taken before the lock goes: no change slips in
            return pinned

    @contextmanager
    def quick_lexical(self, state: StoreState) -> Iterator[tuple[BM25Index, int] | None]:
        """The lexical index held steady and the live item count, without a snapshot, when
        it and the vector index are at ``state`` already; else ``None``."""
        with self._lexical_lock:
            index, seq = self.index, state.seq
            ready = not self.closed and self.lexical.started and self.lexical.applied_seq == seq
            ready = ready and index is not None and self.applied_seq == seq
            yield (self.lexical.bm25, len(index)) if ready and index is not None else None

    def text_rows_of(self, where_text: Any) -> TextRows | None:
        """``text_rows`` for the text filter ``where_text`` (``None``: none asked for)."""
        text = TextFilter.parse(where_text)
        return None if text is None else (lambda snap, flt: self.text_rows(snap, flt, text))

    def text_rows(self, snap: ReadTxn, flt: SqlFilter | None, text: TextFilter) -> Int64Array:
        """The rows ``flt`` (``None``: all) and ``text`` allow in ``snap``, ascending."""
        with self.reading(snap, flt, text=text) as pinned:
            if pinned.index is None:
                return np.zeros(0, dtype=np.int64)
            return pinned.allowed if pinned.allowed is not None else pinned.index.live_rows()

    def build_fields(self, snap: ReadTxn) -> None:
        """Build (or catch up) the declared payload indexes now, and save them."""
        with self._lock:
            state = snap.state()
            config = snap.config(state)
            self.fields.catch_up(snap, state.seq, config)
            self.fields.save()
            if self.index is not None and self.applied_seq == state.seq:
                self.windows.ensure(config, self.index, self.fields)

    def describe_fields(self, specs: tuple[FieldIndexSpec, ...]) -> list[dict[str, Any]]:
        """Each declared payload index (see ``FieldIndexes.describe``), with the memory of
        its window buckets (``window_bytes``: ``None`` until built in this process)."""
        with self._lock:
            described = self.fields.describe(specs)
            for spec, entry in zip(specs, described, strict=True):
                if spec.window:
                    entry["window_bytes"] = self.windows.nbytes(spec)
            return described

    def allowed_rows(self, snap: ReadTxn, flt: SqlFilter) -> tuple[Int64Array, str]:
        """The rows ``flt`` allows in ``snap`` (ascending) and where they came from: the
        payload indexes when they cover it, else a SQL scan (no vector index needed)."""
        with self._lock:
            if self.closed:
                raise CollectionClosedError(f"the collection at {self._store.collection} is closed")
            state = snap.state()
            found = self.fields.rows(snap, state.seq, snap.config(state), flt)
            if found is not None:
                return found, "payload index"
        return snap.filter_rows(flt), "scan"

    def quick_pin(
        self, state: StoreState, config: CollectionConfig, flt: SqlFilter | None
    ) -> Pinned | None:
        """The index held steady as :meth:`reading` does, without a snapshot: only when it
        is already at ``state`` (the store unchanged since), holds float vectors, and has
        the filter's rows at hand; else ``None`` (the caller takes the snapshot path). A
        pin holds back index changes until :meth:`unpin`, which must follow it."""
        with self._lock:
            index = self.index
            if (
                self.closed
                or index is None
                or isinstance(index, QuantizedIndex)
                or config.dim is None
                or state.seq != self.applied_seq
                or (self._kind is not config.index and self._kind != config.index)
                or index.dim != config.dim
            ):
                return None
            key = None if flt is None or flt.matches_all else flt.key
            allowed = None if key is None or flt is None else self.filters.cached(flt, state.seq)
            if key is not None and allowed is None:
                return None
            source = None if key is None else "cache"
            bucket = None if key is None else self.windows.pick(flt)
            pinned = Pinned(
                index, allowed, state, config, self.version, self.subsets, key, source,
                None if bucket is None else bucket.graph,
            )  # fmt: skip
            self._gate.reserve()  # under the lock: no change slips in before the hold
            return pinned

    def unpin(self) -> None:
        """End the hold a :meth:`quick_pin` took."""
        self._gate.release()

    def _loaded_or_new(self, snap: ReadTxn, config: CollectionConfig, dim: int) -> VectorIndex:
        """The saved index when it is this store's, intact, and agrees with the store; else
        an empty one that the catch-up fills."""
        self.applied_seq = 0
        self.saved_seq = -1
        kind = config.index
        if isinstance(kind, Flat):
            return FlatIndex(config.metric, dim)
        loader = QuantizedIndex if _quantized(kind) else HNSWIndex

        def read() -> tuple[VectorIndex, int]:
            args = (self.directory, config.metric, dim, kind, self._store.store_id)
            index, seq = loader.load(*args)  # type: ignore[arg-type]
            if seq <= snap.current_seq():  # else refused by load_saved
                _spot_check(index, snap, config, seq)
            return index, seq

        errors = (OSError, ValueError, KeyError, RuntimeError, MemoryError)
        unused = f"the saved index of {self._store.collection} was not used"
        rebuilt = "it is rebuilt from the store"
        loaded = load_saved(read, snap.current_seq(), unused, rebuilt, errors=errors, stacklevel=6)
        if loaded is None:
            return empty_index(config, dim)  # never saved, for other settings, or unusable
        index, self.applied_seq = loaded
        self.saved_seq = self.applied_seq
        return index

    # -- rebuilding in the background ----------------------------------------------------------
    def _rebuild_if_wanted(self, config: CollectionConfig) -> None:
        """Start a background rebuild of an index that wants one (the checks come before
        any copying: this runs at every catch-up)."""
        index = self.index
        if (self.rebuild is not None and self.rebuild.is_alive()) or (
            index is not None and index is self._failed_rebuild
        ):
            return  # one runs already; or it failed for this index, and optimize() retries
        if isinstance(index, QuantizedIndex) and index.wants_rebuild:
            self._start_rebuild(index, self._quantized_from_store, config)
        elif isinstance(index, HNSWIndex) and index.wants_rebuild:
            rows, vectors = index.live_copy()  # copied now, while the index holds still
            seq = self.applied_seq

            def compacted(_: CollectionConfig) -> tuple[VectorIndex, int]:
                graph = HNSWIndex.built_from(index.metric, index.dim, index.config, rows, vectors)
                return graph, seq

            self._start_rebuild(index, compacted, config)

    def _start_rebuild(
        self,
        index: VectorIndex,
        build: Callable[[CollectionConfig], tuple[VectorIndex, int]],
        config: CollectionConfig,
    ) -> None:
        """Rebuild ``index`` in a background thread while searches and writes go on with
        it: graphs without their deleted entries, quantized codes retrained. ``build``
        returns the fresh index and the store sequence number it holds; the fresh index
        then catches up and takes the old one's place, unless the keeper closed or replaced
        the index meanwhile. hnswlib and FAISS build without the GIL."""

        def run() -> None:
            try:
                fresh, seq = build(config)
            except Exception as exc:  # kept from retrying on every search
                self._failed_rebuild = index
                if self.closed:
                    return  # closed (and maybe removed) meanwhile: the work was moot anyway
                warnings.warn(
                    f"rebuilding the index of {self._store.collection} failed ({exc!r}); "
                    "searches go on with the current one, and optimize() tries again",
                    RuntimeWarning,
                    stacklevel=1,
                )
                return
            with self._lock:
                if self.closed or self.index is not index:
                    return
                with self._store.snapshot() as snap, self._gate.changing():
                    for changes in snap.changes_since(seq, fresh.dim):
                        fresh.apply(changes)
                        # The old index applied these too, but a row rewritten while the
                        # build ran may have been described since: drop it again.
                        self.described.forget(changes.rows.tolist())
                        self.described.forget(changes.deleted.tolist())
                    before, self.applied_seq = self.applied_seq, snap.current_seq()
                    if self.windows.indexes and self.applied_seq != before:
                        # The windows follow the writes the old index had not yet seen.
                        self.fields.catch_up(snap, self.applied_seq, snap.config(snap.state()))
                        for changes in snap.changes_since(before, fresh.dim):
                            self.windows.apply(changes, self.fields)
                    self.index = fresh
                    self.version += 1
                self.saved_seq = -1

        self.rebuild = threading.Thread(
            target=run, name=f"simsearch-rebuild-{self._store.collection.name}", daemon=True
        )
        self.rebuild.start()

    def wait_for_rebuild(self) -> None:
        thread = self.rebuild
        if thread is not None:
            thread.join()

    def _quantized_from_store(self, config: CollectionConfig) -> tuple[VectorIndex, int]:
        # A store of its own: the read lasts the whole training, and closing the collection
        # must not wait for it (WAL lets it read beside the writers).
        store = SQLiteStore.open(self._store.collection)
        try:
            with store.snapshot() as snap:
                return index_from_store(snap, config), snap.current_seq()
        finally:
            store.close()

    # -- optimize, save, close -----------------------------------------------------------------
    def optimize(self, snap: ReadTxn) -> None:
        """Rebuild an approximate index without its deleted entries (retrain a quantized
        one), at once, and save it. A graph that holds nothing deleted is kept as it is."""
        self.wait_for_rebuild()
        with self._lock:
            state, config = self.catch_up(snap, rebuild_later=False)
            seq = state.seq
            with self._gate.changing():
                self.version += 1
                if isinstance(self.index, HNSWIndex) and self.index.dead:
                    self.index.rebuild()
                    self.saved_seq = -1
                if self.windows.indexes and self.index is not None:
                    # Built again, without the deleted marks they gathered.
                    self.windows.reset()
                    self.fields.catch_up(snap, seq, config)
                    self.windows.ensure(config, self.index, self.fields)
                elif isinstance(self.index, QuantizedIndex):
                    self.index = index_from_store(snap, config)
                    self.applied_seq = seq
                    self.saved_seq = -1
            self._failed_rebuild = None
            self.save()

    def save(self) -> None:
        """Persist a graph or quantized index that has changed since it was last saved."""
        with self._lock:
            index = self.index
            if isinstance(index, HNSWIndex | QuantizedIndex) and self.saved_seq != self.applied_seq:
                with self._gate.reading():
                    index.save(self.directory, self.applied_seq, self._store.store_id)
                self.saved_seq = self.applied_seq

    def close(self, config: CollectionConfig) -> None:
        """Bring a graph or quantized index and the payload indexes up to date with every
        write and save them, so the next open loads them; then let them go."""
        # The lexical lock first, as readers take it (before the keeper's lock).
        with self._lexical_lock, self._lock:
            try:
                if not isinstance(config.index, Flat) or config.fields:
                    with self._store.snapshot() as snap:
                        if not isinstance(config.index, Flat):
                            self.catch_up(snap, rebuild_later=False)
                        state = snap.state()
                        self.fields.catch_up(snap, state.seq, snap.config(state))
                if self.lexical.started:  # used in this process: saved at the store's state
                    with self._store.snapshot() as snap:
                        self.lexical.catch_up(snap, snap.current_seq(), False)
                self.save()
                self.fields.save()
                self.lexical.save()
            except Exception as exc:  # the data is safe in the store; only time is lost
                warnings.warn(
                    f"the index of {self._store.collection} could not be saved ({exc!r}); "
                    "the next open builds it from the store",
                    RuntimeWarning,
                    stacklevel=3,
                )
            finally:
                self.closed = True
                with self._gate.changing():
                    self.index = None
