"""Collection: the object users hold. Validates, encodes, stores, searches.

Write path: validate -> encode (outside any lock) -> one store transaction.
Search path: encode -> in one store snapshot: catch the index up, resolve the
filter to allowed rows, rank, fetch what the hits hold.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simsearch.calibration import (
    EXPECTED_DEPTH,
    WINDOW,
    Background,
    Calibrator,
    expected_f1_prefix,
    fit_calibrator,
)
from simsearch.compat import DEFAULT_BLEND, Migration, fit_map, migration_encoder
from simsearch.config import (
    HNSW,
    IVFPQ,
    CollectionConfig,
    EncoderSpec,
    Flat,
    IndexConfig,
    check_index_fits,
    index_name,
)
from simsearch.duplicates import DEFAULT_K, DuplicatePair, mine_pairs
from simsearch.encoders import DEFAULT_ENCODER, Encoder, ProgressCallback, get_encoder
from simsearch.errors import (
    CollectionClosedError,
    ConfigMismatchError,
    CorruptCollectionError,
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    ItemNotFoundError,
    MissingDependencyError,
    NotACollectionError,
    NotCalibratedError,
)
from simsearch.filter_cache import FilterCache
from simsearch.filters import compile_filter
from simsearch.hubness import (
    METHODS,
    HubnessTerms,
    banks_from_text,
    banks_to_text,
    k_occurrence_skewness,
)
from simsearch.index import FlatIndex, VectorIndex
from simsearch.index.flat import normalize
from simsearch.index.hnsw import HNSWIndex
from simsearch.index.quantized import QuantizedIndex
from simsearch.index.rescore import merge_top_k
from simsearch.index.rescore import rescore as rescore_candidates
from simsearch.planner import plan_search
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.store.sqlite import Int64Array, ReadTxn
from simsearch.types import (
    FloatArray,
    Item,
    JSONObject,
    Metric,
    Results,
    parse_stored_metadata,
)
from simsearch.validation import (
    as_vector_batch,
    check_ids,
    check_k,
    check_metadata,
    check_query_texts,
    check_texts,
    metadata_to_json,
)

__all__ = ["Collection"]

Progress = bool | ProgressCallback
#: Search knobs left to the index's defaults.
NO_KNOBS: dict[str, int | None] = {"ef": None, "nprobe": None, "rescore": None}
#: Where a model upgrade in progress (target encoder and map) is saved.
MIGRATION_KEY = "migration"
#: Where the hubness banks are saved beside the data.
HUBNESS_KEY = "hubness"
#: A hubness-corrected search reorders this many candidates per hit.
HUBNESS_DEPTH = 4
#: Where the calibration is saved beside the data.
CALIBRATION_KEY = "calibration"
#: The collection's score background is recomputed once its size drifts by this share.
BACKGROUND_DRIFT = 0.10
#: Rows read from the store at a time by an exact search of a quantized index.
EXACT_BLOCK = 65_536
#: Show a bar on its own (progress=None) when embedding at least this many texts.
AUTO_PROGRESS_MIN = 256


def _resolve_encoder(encoder: str | Encoder | None) -> Encoder | None:
    if encoder is None:
        return None
    if isinstance(encoder, str):
        return get_encoder(encoder)
    if not isinstance(encoder, Encoder):
        raise InvalidArgumentError(
            "encoder must be a registered name or an object with name, version, dim and encode()"
        )
    return encoder


def _blend(old: FloatArray, mapped: FloatArray, weight: float) -> FloatArray:
    """Row-wise ``(1 - weight) * old + weight * mapped`` of unit vectors, at the old norm."""
    old_norm = np.linalg.norm(old, axis=1, keepdims=True)
    mix = (1.0 - weight) * normalize(old) + weight * normalize(mapped)
    mix_norm = np.maximum(np.linalg.norm(mix, axis=1, keepdims=True), 1e-12)
    return np.asarray(mix * (old_norm / mix_norm), dtype=np.float32)


def _spec(encoder: Encoder) -> EncoderSpec:
    return EncoderSpec(name=encoder.name, version=encoder.version, dim=int(encoder.dim))


def _compact_rows(
    rows: Int64Array, scores: FloatArray, relevance: npt.NDArray[np.float64]
) -> tuple[Int64Array, FloatArray, npt.NDArray[np.float64]]:
    """Move each row's kept hits (rows >= 0) to the front, keeping their order."""
    order = np.argsort(rows < 0, axis=1, kind="stable")
    return (
        np.take_along_axis(rows, order, axis=1),
        np.take_along_axis(scores, order, axis=1),
        np.take_along_axis(relevance, order, axis=1),
    )


@dataclass(frozen=True)
class _InCollectionSpace:
    """Query vectors already in the space the index holds (the collection's own vectors,
    or ones already mapped), which a model upgrade must not map again."""

    vectors: FloatArray


def _query_texts(query: Any) -> list[str] | None:
    """The texts of a text query (one string or a list of strings), else ``None``."""
    if isinstance(query, str):
        return check_query_texts([query])
    if (
        isinstance(query, Sequence)
        and not isinstance(query, bytes)
        and query
        and all(isinstance(q, str) for q in query)
    ):
        return check_query_texts(query)
    if isinstance(query, Sequence) and any(isinstance(q, str) for q in query):
        raise InvalidArgumentError("a query batch must be all strings or all vectors")
    return None


def _relevant_ids(judgement: Any) -> set[str]:
    """The relevant ids of one query's judgements: a dict of id to grade, or ids."""
    if isinstance(judgement, dict):
        return {str(i) for i, grade in judgement.items() if grade > 0}
    if isinstance(judgement, str) or not isinstance(judgement, set | list | tuple | frozenset):
        raise InvalidArgumentError(
            "each judgement must be a set or list of relevant ids, or a dict of id to grade"
        )
    return {str(i) for i in judgement}


def _quantized(kind: IndexConfig) -> bool:
    return isinstance(kind, IVFPQ) or (isinstance(kind, HNSW) and kind.quantization != "none")


def _check_compatible(config: CollectionConfig, spec: EncoderSpec) -> None:
    """Raise unless vectors from ``spec`` may live in a collection with ``config``."""
    if config.encoder is not None and config.encoder != spec:
        raise ConfigMismatchError(
            f"the collection was embedded with {config.encoder.name} "
            f"(version {config.encoder.version}, {config.encoder.dim}-d); it cannot take "
            f"{spec.name} (version {spec.version}, {spec.dim}-d)"
        )
    if config.dim is not None and config.dim != spec.dim:
        raise DimensionMismatchError(
            f"the collection holds {config.dim}-d vectors but encoder {spec.name} makes "
            f"{spec.dim}-d ones; pass vectors, or use a {config.dim}-d encoder"
        )


#: Saved vectors compared with the store's when a graph is loaded.
SPOT_CHECK = 32


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


def _reconcile_config(
    store: SQLiteStore,
    fresh: CollectionConfig,
    metric: Metric | None,
    dim: int | None,
    encoder: Encoder | None,
    index: IndexConfig | None,
) -> None:
    """Check what the caller asked of an existing collection against its saved config (read
    in a snapshot, so opening never waits for another process's writer), and take the
    write lock only to save a change (another index kind) or a missing config."""
    with store.snapshot() as snap:
        saved = snap.read_config()
        if saved is None and snap.count():
            raise CorruptCollectionError(
                f"the collection at {store.collection} holds {snap.count()} items but no "
                "saved config (metric, dimension): it was damaged; restore it from a backup"
            )
        if snap.current_seq() < snap.max_written_seq():
            raise CorruptCollectionError(
                f"the sequence counter of the collection at {store.collection} is behind its "
                f"rows ({snap.current_seq()} < {snap.max_written_seq()}): it was damaged; run "
                f"`simsearch check {store.collection} --repair`"
            )
    if saved is None:  # a collection whose creation stopped before its config was saved
        if encoder is not None:
            _check_compatible(replace(fresh, encoder=None), _spec(encoder))
        check_index_fits(fresh.index, fresh.dim)
        with store.write() as txn:
            if txn.read_config() is None:
                txn.save_config(fresh)
        return
    if metric is not None and metric is not saved.metric:
        raise ConfigMismatchError(
            f"the collection uses metric {saved.metric.value!r}, not {metric.value!r}"
        )
    if dim is not None and saved.dim is not None and dim != saved.dim:
        raise ConfigMismatchError(f"the collection holds {saved.dim}-d vectors, not {dim}-d")
    if encoder is not None:
        _check_compatible(saved, _spec(encoder))
    if index is not None and index != saved.index:
        check_index_fits(index, saved.dim)
        with store.write() as txn:
            current = txn.read_config() or saved
            txn.save_config(replace(current, index=index))


class Collection:
    """A durable set of items (id, vector, optional text and metadata) that answers
    "what is most similar to this?".

    Open one with :meth:`Collection.open`. Every write is one transaction and
    is durable once the call returns; several processes may use one collection
    at once. Scores are always higher-is-better: cosine similarity, inner
    product, or the *negative* Euclidean distance for ``l2``.

    >>> import tempfile, simsearch
    >>> with simsearch.Collection.open(tempfile.mkdtemp(), metric="dot") as col:
    ...     col.add(["a", "b"], vectors=[[1, 0], [0, 1]], metadata=[{"n": 1}, {"n": 2}])
    ...     hits = col.search([1.0, 0.2], k=2)[0]
    ...     [(h.id, round(h.score, 2)) for h in hits]
    [('a', 1.0), ('b', 0.2)]
    """

    def __init__(self, path: Path, store: SQLiteStore, encoder: Encoder | None) -> None:
        self.path = path
        self._store = store
        self._encoder = encoder
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._index_config: IndexConfig | None = None
        self._filters = FilterCache()
        self._calibration: tuple[str, Calibrator] | None = None
        self._migration: Migration | None = None
        self._hubness: tuple[str, FloatArray, FloatArray, dict[tuple[str, int], float]] | None = (
            None
        )
        self._applied_seq = 0
        self._saved_seq = -1  # the sequence number of the index files on disk
        self._rebuild: threading.Thread | None = None  # an index being rebuilt meanwhile
        self._failed_rebuild: VectorIndex | None = None
        self._closed = False
        config = store.read_config()
        if config is None:  # open() always saves one first
            raise NotACollectionError(f"{path} has no saved config")
        self._config = config

    # -- opening and closing ---------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        metric: Metric | str | None = None,
        dim: int | None = None,
        encoder: str | Encoder | None = None,
        index: IndexConfig | None = None,
        create: bool = True,
    ) -> Collection:
        """Open the collection at ``path``, creating it if it does not exist.

        Args:
            path: a folder; it is created when missing. An existing folder that
                holds other files is refused.
            metric: ``"cosine"`` (the default for a new collection), ``"dot"`` or
                ``"l2"``. On reopen, ``None`` keeps the saved metric; another value
                than the saved one raises :class:`~simsearch.ConfigMismatchError`.
            dim: the vector dimension; ``None`` lets the first vectors (or the
                encoder) fix it.
            encoder: a registered encoder name or an encoder object; ``None``
                means the saved encoder, or the default text encoder
                (``minilm-l6-v2-int8``) the first time texts are given.
            index: :class:`~simsearch.Flat` (exact, the default),
                :class:`~simsearch.HNSW` (an approximate graph, optionally over
                int8 or binary codes) or :class:`~simsearch.IVFPQ` (compressed
                codes for collections larger than memory).
                The index is derived from the stored data, so reopening with
                another kind rebuilds it; ``None`` keeps the saved one.
            create: when false, a missing collection raises
                :class:`~simsearch.NotACollectionError` instead of being created.
        """
        directory = Path(path)
        if not create and not (directory / DB_FILENAME).is_file():
            raise NotACollectionError(f"{directory} is not a simsearch collection")
        if directory.exists() and not directory.is_dir():
            raise NotACollectionError(f"{directory} is a file, not a collection folder")
        if (
            directory.is_dir()
            and not (directory / DB_FILENAME).exists()
            and any(directory.iterdir())
        ):
            raise NotACollectionError(
                f"{directory} holds other files and is not a simsearch collection"
            )
        if index is not None and not isinstance(index, Flat | HNSW | IVFPQ):
            raise InvalidArgumentError(
                "index must be simsearch.Flat(), simsearch.HNSW(...) or simsearch.IVFPQ(...), "
                f"not {index!r}"
            )
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise InvalidArgumentError(f"dim must be a positive integer, got {dim!r}")
        wanted_metric = Metric.parse(metric) if metric is not None else None
        enc = _resolve_encoder(encoder)
        fresh = CollectionConfig(
            metric=wanted_metric or Metric.COSINE,
            dim=dim if dim is not None else (enc.dim if enc else None),
            encoder=_spec(enc) if enc else None,
            index=index or Flat(),
        )
        if (directory / DB_FILENAME).exists():
            store = SQLiteStore.open(directory)
        else:
            # Everything about a new collection is checked before anything is written.
            if enc is not None:
                _check_compatible(replace(fresh, encoder=None), _spec(enc))
            check_index_fits(fresh.index, fresh.dim)
            # Made whole in a private folder and renamed into place; if another process
            # made one there first, that one is opened and checked below like any other.
            store = SQLiteStore.create(directory, fresh)
        try:
            _reconcile_config(store, fresh, wanted_metric, dim, enc, index)
            collection = cls(directory, store, enc)
            collection._catch_up_now()
        except BaseException:
            store.close()  # never removes anything: the folder may hold another's data
            raise
        return collection

    def close(self) -> None:
        """Release the database; later calls raise :class:`~simsearch.CollectionClosedError`.

        A graph or quantized index is first brought up to date with every write and
        saved, so the next open loads it instead of building it again.
        """
        with self._lock:
            if not self._closed:
                try:
                    if not isinstance(self._config.index, Flat):
                        with self._store.snapshot() as snap:
                            self._catch_up(snap, rebuild_later=False)
                    self._save_index()
                except Exception as exc:  # the data is safe in the store; only time is lost
                    warnings.warn(
                        f"the index of {self.path} could not be saved ({exc!r}); the next "
                        "open builds it from the store",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                finally:
                    self._closed = True
                    self._store.close()
                    self._index = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r}, metric={self._config.metric.value!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionClosedError(f"the collection at {self.path} is closed")

    # -- properties --------------------------------------------------------------------------
    @property
    def config(self) -> CollectionConfig:
        """The saved configuration (metric, dimension, encoder)."""
        return self._config

    def __len__(self) -> int:
        with self._lock:
            self._check_open()
            with self._store.snapshot() as snap:
                return snap.count()

    def info(self) -> dict[str, Any]:
        """A summary: path, item count, metric, dimension, encoder, last sequence number, size,
        and the model upgrade in progress (``migration``: where to, the map, how many items
        still lack a new vector)."""
        with self._lock:
            self._check_open()
            with self._store.snapshot() as snap:
                config = snap.read_config() or self._config
                count, seq = snap.count(), snap.current_seq()
                upgrade = snap.read_meta(MIGRATION_KEY)
                migration = None
                if upgrade is not None:
                    current = self._migration_of(upgrade)
                    migration = {
                        "to": current.to.name if current.to else None,
                        "dim": current.dim,
                        "method": current.mapping.method,
                        "held_out_recall": current.mapping.held_out_recall,
                        "blend": current.blend if current.to is not None else None,
                        "remaining": snap.count_without_pending(),
                    }
            return {
                "path": str(self.path),
                "count": count,
                "metric": config.metric.value,
                "dim": config.dim,
                "encoder": (
                    {"name": config.encoder.name, "version": config.encoder.version}
                    if config.encoder
                    else None
                ),
                "index": index_name(config.index),
                "seq": seq,
                "size_bytes": self._store.size_bytes(),
                "migration": migration,
            }

    # -- encoding ----------------------------------------------------------------------------
    def _text_encoder(self) -> Encoder:
        """The encoder for texts: the one given, the saved one, or the default."""
        saved_spec = self._config.encoder
        if (
            self._encoder is not None
            and saved_spec is not None
            and _spec(self._encoder) != saved_spec
        ):
            self._encoder = None  # a model upgrade has finished since: follow the saved encoder
        if self._encoder is None:
            saved = self._config.encoder
            name = saved.name if saved else DEFAULT_ENCODER
            encoder = get_encoder(name)
            _check_compatible(self._config, _spec(encoder))
            self._encoder = encoder
        return self._encoder

    def _embed(
        self,
        migration: Migration | None,
        texts: list[str],
        kind: Literal["query", "passage"],
        progress: Progress | None,
    ) -> tuple[FloatArray, FloatArray | None]:
        """``texts`` embedded into the space the index holds, and during an upgrade to a
        new encoder (``migration``, read by the caller) by the new encoder too, for the
        backfill to keep.

        During such an upgrade a passage gets its exact old-space vector from the old
        encoder, and a query is the old encoder's vector blended with the new one's
        mapped vector (``migration.blend``). Where the old encoder cannot be loaded
        here, the mapped vectors stand in for both.
        """
        if migration is None or migration.to is None:
            # No upgrade, or one from the user's vectors: the collection's encoder still
            # embeds into the space the index holds.
            encoder = self._text_encoder()
            _check_compatible(self._config, _spec(encoder))
            return self._encode(encoder, texts, kind, progress), None
        new_encoder = migration_encoder(migration)
        old_encoder = self._old_encoder()
        if old_encoder is not None and kind == "query" and migration.blend <= 0.0:
            return self._encode(old_encoder, texts, kind, progress), None
        fresh = self._encode(new_encoder, texts, kind, progress)
        if old_encoder is None or (kind == "query" and migration.blend >= 1.0):
            return migration.mapping(fresh), fresh
        old = self._encode(old_encoder, texts, kind, progress)
        if kind == "passage":
            return old, fresh
        return _blend(old, migration.mapping(fresh), migration.blend), fresh

    def _old_encoder(self) -> Encoder | None:
        """The collection's own encoder during a model upgrade, or None where it cannot
        be loaded here (an encoder from a missing extra, or one no longer registered)."""
        try:
            return self._text_encoder()
        except (InvalidArgumentError, MissingDependencyError, ConfigMismatchError):
            return None

    def _encode(
        self,
        encoder: Encoder,
        texts: list[str],
        kind: Literal["query", "passage"],
        progress: Progress | None,
    ) -> FloatArray:
        show = progress if progress is not None else len(texts) >= AUTO_PROGRESS_MIN
        if callable(show):
            return encoder.encode(texts, kind=kind, progress=show)
        if show:
            from simsearch.progress import progress_bar  # rich loads only when a bar is drawn

            with progress_bar(len(texts), f"Embedding with {encoder.name}") as advance:
                return encoder.encode(texts, kind=kind, progress=advance)
        return encoder.encode(texts, kind=kind)

    # -- writes ------------------------------------------------------------------------------
    def add(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Add new items; any id that already exists raises :class:`~simsearch.DuplicateIdError`.

        Give ``vectors``, or ``texts`` for the encoder to embed (or both: the
        vectors are stored and the texts kept beside them). The whole batch is
        written in one transaction, or nothing is. ``progress`` shows a bar
        while embedding (``None``: only for large batches), or takes a callback.
        """
        self._write(ids, vectors, texts, metadata, progress, replace_existing=False)

    def upsert(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Add new items and replace existing ones whole (vector, text and metadata)."""
        self._write(ids, vectors, texts, metadata, progress, replace_existing=True)

    def _write(
        self,
        ids: Any,
        vectors: Any,
        texts: Any,
        metadata: Any,
        progress: Progress | None,
        *,
        replace_existing: bool,
    ) -> None:
        self._check_open()
        id_list = check_ids(ids)
        n = len(id_list)
        text_list = check_texts(texts, n) if texts is not None else None
        metas = [metadata_to_json(m) for m in check_metadata(metadata, n)]
        spec: EncoderSpec | None = None
        migration: Migration | None = None
        fresh: FloatArray | None = None  # the new model's vectors, during a model upgrade
        if vectors is not None:
            # Checked against the space the write transaction finds (an upgrade from the
            # user's vectors takes theirs as the new model's and maps them there).
            vecs = as_vector_batch(vectors, None)
            if len(vecs) != n:
                raise InvalidArgumentError(f"got {n} ids but {len(vecs)} vectors")
        elif text_list is not None:
            # Texts are embedded before the transaction, so the upgrade state is read
            # first and checked again inside it.
            migration = self._current_migration()
            if migration is not None and migration.to is None:
                raise InvalidArgumentError(
                    "a model upgrade from your own vectors is in progress: give the new "
                    "model's vectors with the texts"
                )
            vecs, fresh = self._embed(migration, text_list, "passage", progress)
            if migration is None:
                spec = _spec(self._text_encoder())
        else:
            raise InvalidArgumentError("give vectors, texts, or both")
        stored_texts: list[str | None] = list(text_list) if text_list else [None] * n
        with self._lock, self._store.write() as txn:
            self._check_open()
            upgrade = txn.read_meta(MIGRATION_KEY)
            if vectors is None and upgrade != (migration.text if migration else None):
                raise ConfigMismatchError(
                    "a model upgrade started or finished while this write was prepared; write again"
                )
            if vectors is not None and upgrade is not None:
                current = self._migration_of(upgrade)
                if current.to is None:  # an upgrade from the user's vectors: map theirs
                    fresh, vecs = vecs, current.map_new(vecs)
                elif text_list is None:
                    raise InvalidArgumentError(
                        "a model upgrade is in progress: give texts too, so the items can be "
                        "re-embedded (vectors alone would stay in the old space)"
                    )
            config = txn.read_config() or self._config
            new_config = config
            if new_config.dim is None:
                check_index_fits(new_config.index, vecs.shape[1])
                new_config = replace(new_config, dim=vecs.shape[1])
            elif vecs.shape[1] != new_config.dim:
                raise DimensionMismatchError(
                    f"vectors have dimension {vecs.shape[1]}, the collection holds "
                    f"{new_config.dim}-d vectors"
                )
            if spec is not None:
                _check_compatible(new_config, spec)
                if new_config.encoder is None:
                    new_config = replace(new_config, encoder=spec)
            if replace_existing:
                txn.upsert(id_list, vecs, stored_texts, metas)
            else:
                existing = txn.insert(id_list, vecs, stored_texts, metas)
                if existing:
                    shown = ", ".join(repr(i) for i in existing[:5])
                    more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
                    raise DuplicateIdError(f"ids already exist: {shown}{more}; use upsert")
            if fresh is not None:
                txn.save_pending_for_ids(id_list, fresh)
            if new_config != config:
                txn.save_config(new_config)
        self._config = new_config

    def delete(
        self, ids: Sequence[str] | str | None = None, *, where: Any = None, all: bool = False
    ) -> int:
        """Delete items by id, by filter, or both (the items in ``ids`` that match ``where``);
        ``all=True`` (alone) deletes every item.

        Ids that do not exist are skipped. A filter that matches everything (``{}``)
        is refused without ``all=True``, so a delete never empties a collection by
        accident. Returns how many items were deleted.
        """
        self._check_open()
        if not isinstance(all, bool):
            raise InvalidArgumentError(f"all must be true or false, got {all!r}")
        if all and (ids is not None or where is not None):
            raise InvalidArgumentError("all=True deletes every item: give it without ids or where")
        if ids is None and where is None and not all:
            raise InvalidArgumentError(
                "give ids, where, or both; all=True deletes every item (delete never "
                "empties silently)"
            )
        id_list = check_ids(ids) if ids is not None else None
        flt = compile_filter(where) if where is not None else None
        if flt is not None and flt.matches_all:
            if id_list is None:
                raise InvalidArgumentError(
                    "the filter matches every item: pass all=True to delete them all"
                )
            flt = None  # the ids alone decide
        with self._lock, self._store.write() as txn:
            self._check_open()
            rows: set[int] | None = None
            if all:
                rows = set(txn.rows_written_since(0).tolist())
            if id_list is not None:
                rows = set(txn.rows_of_ids(id_list))
            if flt is not None:
                matched = {int(r) for r in txn.filter_rows(flt)}
                rows = matched if rows is None else rows & matched
            return txn.delete_rows(sorted(rows or ()))

    # -- reads -------------------------------------------------------------------------------
    def get(self, ids: Sequence[str] | str) -> list[Item]:
        """The items with these ids, in the same order; a missing id raises
        :class:`~simsearch.ItemNotFoundError`."""
        self._check_open()
        id_list = check_ids(ids)
        with self._lock, self._store.snapshot() as snap:
            self._check_open()
            dim = (snap.read_config() or self._config).dim
            found = snap.get(id_list, dim) if dim is not None else {}
        missing = [i for i in id_list if i not in found]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ItemNotFoundError(f"no item with id {shown}{more}")
        return [
            Item(
                id=i,
                vector=found[i].vector,
                text=found[i].text,
                metadata=parse_stored_metadata(found[i].metadata_json, i),
            )
            for i in id_list
        ]

    def _parse_queries(self, query: Any, progress: Progress | None) -> FloatArray:
        texts = _query_texts(query)
        return self._query_vectors(query, texts, self._current_migration(), progress)

    def _query_vectors(
        self,
        query: Any,
        texts: list[str] | None,
        migration: Migration | None,
        progress: Progress | None,
    ) -> FloatArray:
        """Vectors of a query: its texts embedded (``migration``: the upgrade in progress,
        read by the caller), or its vectors checked."""
        if texts is not None:
            show = progress if len(texts) > 1 else False
            return self._embed(migration, texts, "query", show)[0]
        if migration is not None and migration.to is None:
            # An upgrade from the user's vectors: theirs are in the new model's space.
            return migration.map_new(
                as_vector_batch(query, None, what="query vectors"), "query vectors"
            )
        return as_vector_batch(query, self._config.dim, what="query vectors")

    @property
    def _index_dir(self) -> Path:
        return self.path / "index"

    def _new_index(self, config: CollectionConfig, dim: int, snap: ReadTxn) -> VectorIndex:
        """An empty index of the configured kind, or the saved one when it is this store's,
        intact, and agrees with the store (see :mod:`simsearch.index.persist`)."""
        self._applied_seq = 0
        self._saved_seq = -1
        kind = config.index
        if isinstance(kind, Flat):
            return FlatIndex(config.metric, dim)
        loader = QuantizedIndex if _quantized(kind) else HNSWIndex
        try:
            index, seq = loader.load(
                self._index_dir,
                config.metric,
                dim,
                kind,  # type: ignore[arg-type]
                self._store.store_id,
            )
            if seq > snap.current_seq():
                raise ValueError("the saved index is ahead of the store")
            _spot_check(index, snap, config, seq)
        except FileNotFoundError:
            return self._empty_index(config, dim)  # never saved: built from the store
        except (OSError, ValueError, KeyError, RuntimeError, MemoryError) as exc:
            warnings.warn(
                f"the saved index of {self.path} was not used ({exc}); it is rebuilt from "
                "the store",
                RuntimeWarning,
                stacklevel=4,
            )
            return self._empty_index(config, dim)
        self._applied_seq = self._saved_seq = seq
        return index

    @staticmethod
    def _empty_index(config: CollectionConfig, dim: int) -> VectorIndex:
        kind = config.index
        if isinstance(kind, Flat):
            return FlatIndex(config.metric, dim)
        if isinstance(kind, IVFPQ) or kind.quantization != "none":
            return QuantizedIndex(config.metric, dim, kind)
        return HNSWIndex(config.metric, dim, kind)

    def _catch_up(self, snap: ReadTxn, *, rebuild_later: bool = True) -> CollectionConfig:
        """Bring the index up to the snapshot's sequence number (other processes' writes
        too), and start a background rebuild when the index wants one (``rebuild_later``;
        off for a caller that rebuilds at once)."""
        config = snap.read_config() or self._config
        self._config = config
        if config.dim is None:
            return config
        seq = snap.current_seq()
        if (
            self._index is None
            or self._index_config != config.index
            or self._index.dim != config.dim  # a finished model upgrade changed the space
        ):
            self._index = self._new_index(config, config.dim, snap)
            self._index_config = config.index
        if seq != self._applied_seq:
            self._index.reserve(snap.count_since(self._applied_seq))
            for changes in snap.changes_since(self._applied_seq, config.dim):
                self._index.apply(changes)
            self._applied_seq = seq
        if rebuild_later:
            self._rebuild_if_wanted(config)
        return config

    def _rebuild_if_wanted(self, config: CollectionConfig) -> None:
        """Start a background rebuild of an index that wants one (called under the lock,
        at every catch-up: the checks come before any copying)."""
        index = self._index
        if (self._rebuild is not None and self._rebuild.is_alive()) or (
            index is not None and index is self._failed_rebuild
        ):
            return  # one runs already; or it failed for this index, and optimize() retries
        if isinstance(index, QuantizedIndex) and index.wants_rebuild:
            self._start_rebuild(index, self._quantized_from_store, config)
        elif isinstance(index, HNSWIndex) and index.wants_rebuild:
            rows, vectors = index.live_copy()  # copied now, under the lock
            seq = self._applied_seq

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
        it (called under the lock): graphs without their deleted entries, quantized codes
        retrained. ``build`` returns the fresh index and the store sequence number it
        holds; the fresh index then catches up under the lock and takes the old one's
        place, unless the collection closed or replaced the index meanwhile. hnswlib and
        FAISS build without the GIL."""

        def run() -> None:
            try:
                fresh, seq = build(config)
            except Exception as exc:  # kept from retrying on every search
                self._failed_rebuild = index
                if self._closed:
                    return  # closed (and maybe removed) meanwhile: the work was moot anyway
                warnings.warn(
                    f"rebuilding the index of {self.path} failed ({exc!r}); searches go on "
                    "with the current one, and optimize() tries again",
                    RuntimeWarning,
                    stacklevel=1,
                )
                return
            with self._lock:
                if self._closed or self._index is not index:
                    return
                with self._store.snapshot() as snap:
                    for changes in snap.changes_since(seq, fresh.dim):
                        fresh.apply(changes)
                    self._applied_seq = snap.current_seq()
                self._index = fresh
                self._saved_seq = -1

        self._rebuild = threading.Thread(
            target=run, name=f"simsearch-rebuild-{self.path.name}", daemon=True
        )
        self._rebuild.start()

    def _wait_for_rebuild(self) -> None:
        thread = self._rebuild
        if thread is not None:
            thread.join()

    def _quantized_from_store(self, config: CollectionConfig) -> tuple[VectorIndex, int]:
        # A connection of its own: the collection's is shared by the threads that hold the
        # lock, and this read runs without it (WAL lets it read beside the writers).
        store = SQLiteStore.open(self.path)
        try:
            with store.snapshot() as snap:
                return self._index_from_store(snap, config), snap.current_seq()
        finally:
            store.close()

    def _index_from_store(self, snap: ReadTxn, config: CollectionConfig) -> VectorIndex:
        """A fresh index trained and filled from the store's float vectors, at ``snap``."""
        assert config.dim is not None
        index = self._empty_index(config, config.dim)
        index.reserve(snap.count())
        for changes in snap.changes_since(0, config.dim):
            index.apply(changes)
        return index

    def _save_index(self) -> None:
        """Persist a graph index that has changed since it was last saved."""
        index = self._index
        if isinstance(index, HNSWIndex | QuantizedIndex) and self._saved_seq != self._applied_seq:
            index.save(self._index_dir, self._applied_seq, self._store.store_id)
            self._saved_seq = self._applied_seq

    def optimize(self) -> None:
        """Rebuild an approximate index without its deleted entries, and save it.

        An index is also rebuilt on its own, in a background thread, once deleted
        entries pass a quarter of it or a quantized one has outgrown its training
        sample (this waits for one that runs). A quantized index is retrained on the
        current data; a flat index needs nothing.
        """
        self._check_open()
        self._wait_for_rebuild()
        with self._lock, self._store.snapshot() as snap:
            config = self._catch_up(snap, rebuild_later=False)
            if isinstance(self._index, HNSWIndex):
                self._index.rebuild()
                self._saved_seq = -1
            elif isinstance(self._index, QuantizedIndex):
                self._index = self._index_from_store(snap, config)
                self._applied_seq = snap.current_seq()
                self._saved_seq = -1
            self._failed_rebuild = None
            self._save_index()

    def _catch_up_now(self) -> None:
        with self._lock, self._store.snapshot() as snap:
            self._catch_up(snap)

    def search(
        self,
        query: Any,
        *,
        k: int = 10,
        where: Any = None,
        ef: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
        exact: bool = False,
        min_relevance: float | None = None,
        cutoff: str | None = None,
        hubness: str = "none",
        progress: Progress | None = None,
    ) -> Results:
        """The ``k`` items most similar to each query, best first.

        Args:
            query: a string, a list of strings (embedded by the collection's
                encoder), a 1-D vector, or a 2-D batch of vectors.
            k: how many hits per query (fewer only if fewer items exist or match).
            where: a metadata filter (see :mod:`simsearch.filters`), applied
                before ranking: when at least ``k`` items match, ``k`` come back.
            ef: candidate list size of an HNSW index (default: its ``ef_search``).
            nprobe: lists an IVFPQ index visits (default: its ``nprobe``).
            rescore: for quantized indexes, how many candidates per hit are
                rescored with the float vectors (default: the index's ``rescore``).
            exact: search every vector exactly even with an approximate index.
            min_relevance: keep only hits whose calibrated relevance is at least
                this (``k`` becomes an upper bound); needs :meth:`calibrate`,
                otherwise :class:`~simsearch.NotCalibratedError`. On a
                calibrated collection every hit carries ``relevance``.
            cutoff: ``"f1"`` keeps, per query, the hits that maximise the expected
                F1 of the set under the fitted probabilities of relevance (needs
                a calibration fitted from judgements).
            hubness: ``"csls"``, ``"qbnorm"`` or ``"dbnorm"`` reorders each query's
                nearest candidates by a hubness-corrected score (see
                :mod:`simsearch.hubness`; needs :meth:`set_hubness_bank`). Hits
                keep their raw ``score``; only the order changes.

        Returns:
            :class:`~simsearch.Results` with one row of hits per query. Scores are
            higher-is-better: cosine similarity, inner product, or negative L2
            distance.
        """
        self._check_open()
        k = check_k(k)
        knobs = {"ef": ef, "nprobe": nprobe, "rescore": rescore}
        for name, value in knobs.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000
            ):
                raise InvalidArgumentError(
                    f"{name} must be an integer in [1, 100000], got {value!r}"
                )
        if not isinstance(exact, bool):
            raise InvalidArgumentError(f"exact must be true or false, got {exact!r}")
        if min_relevance is not None and (
            isinstance(min_relevance, bool)
            or not isinstance(min_relevance, int | float)
            or not 0.0 <= min_relevance <= 1.0
        ):
            raise InvalidArgumentError(
                f"min_relevance must be a number in [0, 1], got {min_relevance!r}"
            )
        correction = HubnessTerms(hubness)
        if cutoff not in (None, "f1"):
            raise InvalidArgumentError(f"cutoff must be 'f1' or None, got {cutoff!r}")
        if cutoff is not None and correction.method != "none":
            raise InvalidArgumentError("cutoff='f1' cannot be combined with hubness reduction")
        flt = compile_filter(where) if where is not None else None
        in_space = isinstance(query, _InCollectionSpace)
        texts = None if in_space else _query_texts(query)
        migration = self._current_migration() if texts is not None else None
        space = (migration and migration.text, self._config.encoder)
        if in_space:
            queries = query.vectors
        elif texts is not None:
            queries = self._query_vectors(query, texts, migration, progress)
        else:  # checked against the space of the snapshot below
            queries = as_vector_batch(query, None, what="query vectors")
        with self._lock, ExitStack() as stack:
            self._check_open()
            snap = stack.enter_context(self._store.snapshot())
            config = self._catch_up(snap)
            now = snap.read_meta(MIGRATION_KEY)
            if texts is not None and (now, config.encoder) != space:
                # A model upgrade started or finished while the queries were embedded: embed
                # them again into the space this snapshot holds.
                current = Migration.from_text(now) if now is not None else None
                queries = self._embed(current, texts, "query", False)[0]
            elif texts is None and not in_space and now is not None:
                current = self._migration_of(now)
                if current.to is None:  # an upgrade from the user's vectors: map theirs
                    queries = current.map_new(queries, "query vectors")
            if config.dim is None or self._index is None:
                return Results(k=k, rows=[[] for _ in range(len(queries))])
            asked = k
            # No query can have more hits than there are items: results are sized by the
            # smaller of the two, so a huge k costs nothing.
            k = max(1, min(k, len(self._index)))
            if queries.shape[1] != config.dim:
                raise DimensionMismatchError(
                    f"query vectors have dimension {queries.shape[1]}, the collection holds "
                    f"{config.dim}-d vectors"
                )
            allowed = None
            if flt is not None and not flt.matches_all:
                allowed = self._filters.rows(snap, flt, self._applied_seq, len(self._index))
            calibrator = self._calibrator(snap)
            if calibrator is None and (min_relevance is not None or cutoff is not None):
                raise NotCalibratedError(
                    f"the collection at {self.path} is not calibrated, so it has no relevance "
                    "values; call calibrate() first"
                )
            ranked = None
            if correction.method != "none":
                ranked = self._rank_hubness(snap, correction, queries, k, allowed, knobs, exact)
            relevance = None
            if calibrator is None:
                if ranked is None:
                    ranked = self._rank(snap, queries, k, allowed, knobs, exact)
                scores, rows = ranked
            else:
                scores, rows, relevance, expected = self._rank_calibrated(
                    snap, calibrator, queries, k, allowed, knobs, exact, ranked, cutoff == "f1"
                )
                if min_relevance is not None:
                    rows = np.where(relevance >= min_relevance, rows, -1)
                if cutoff == "f1":
                    if calibrator.kind != "fitted":
                        raise NotCalibratedError(
                            "cutoff='f1' needs probabilities of relevance: calibrate the "
                            "collection with judgements"
                        )
                    rows = np.where(expected_f1_prefix(relevance, expected), rows, -1)
                # Relevance is monotone in the score, so in score order the cuts keep a prefix;
                # a hubness order is not a score order, so close the gaps they leave there.
                if ranked is not None:
                    rows, scores, relevance = _compact_rows(rows, scores, relevance)
            described = snap.describe_rows(np.unique(rows[rows >= 0]).tolist())
        return Results._from_search(asked, scores, rows, described, relevance)

    # -- model upgrades ------------------------------------------------------------------------
    def _current_migration(self) -> Migration | None:
        """The model upgrade in progress, if any; also refreshes the saved config, so a text
        is embedded by the encoder the collection holds now (an upgrade may have finished)."""
        with self._lock, self._store.snapshot() as snap:
            text = snap.read_meta(MIGRATION_KEY)
            self._config = snap.read_config() or self._config
        return None if text is None else self._migration_of(text)

    def _migration_of(self, text: str) -> Migration:
        """The upgrade saved as ``text``, parsed once."""
        if self._migration is None or self._migration.text != text:
            self._migration = Migration.from_text(text)
        return self._migration

    def migrate(
        self,
        new_encoder: str | Encoder,
        *,
        sample: int = 2000,
        method: str = "auto",
        blend: float = DEFAULT_BLEND,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Start a model upgrade: embed a sample of the stored texts with ``new_encoder``,
        fit a map from its space into the collection's, and save it.

        From then on search goes on at once in the old space, and the new encoder
        embeds every text too. A text query is the old encoder's vector blended with
        the new encoder's mapped vector, ``blend`` of the latter (1: the mapped vector
        alone; 0: the old encoder alone); a new text gets its old-space vector from
        the old encoder (or the map, where the old encoder cannot be loaded) and its
        new vector is kept. :meth:`backfill` re-embeds every stored text and then makes
        the new encoder the collection's own. The sample's new vectors are kept for
        the backfill, and running ``migrate`` again to the same encoder (say with
        another ``method`` or ``blend``) reuses every vector already embedded.
        Returns the method chosen and its held-out recall.
        """
        self._check_open()
        encoder = _resolve_encoder(new_encoder)
        assert encoder is not None
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 10:
            raise InvalidArgumentError(f"sample must be an integer of at least 10, got {sample!r}")
        if (
            isinstance(blend, bool)
            or not isinstance(blend, int | float)
            or not 0.0 <= float(blend) <= 1.0
        ):
            raise InvalidArgumentError(f"blend must be a number in [0, 1], got {blend!r}")
        spec = _spec(encoder)
        with self._lock, self._store.snapshot() as snap:
            config = self._catch_up(snap)
            if config.encoder is None or config.dim is None or self._index is None:
                raise InvalidArgumentError(
                    "only a collection embedded from texts can be migrated to a new encoder; "
                    "a collection of your own vectors migrates with migrate_vectors()"
                )
            if spec == config.encoder:
                raise InvalidArgumentError(f"the collection already uses {encoder.name}")
            if snap.count_without_text():
                raise InvalidArgumentError(
                    f"{snap.count_without_text()} items have no stored text and cannot be "
                    "re-embedded; migrate them with migrate_vectors()"
                )
            earlier = snap.read_meta(MIGRATION_KEY)
            # Vectors embedded for an earlier upgrade to the same encoder are still good.
            reuse = earlier is not None and Migration.from_text(earlier).to == spec
            picked = self._sample_rows(sample, seed)
            described = snap.describe_rows(picked.tolist())
            state = snap.pending_of_rows(picked.tolist(), spec.dim)
            old = snap.vectors_of_rows(picked, config.dim)
        texts = [str(described[r][1]) for r in picked.tolist()]
        seqs = [state[r][0] for r in picked.tolist()]
        known = [state[r][1] if reuse else None for r in picked.tolist()]
        todo = [i for i, v in enumerate(known) if v is None]
        new = np.empty((len(picked), spec.dim), dtype=np.float32)
        for i, vector in enumerate(known):
            if vector is not None:
                new[i] = vector
        if todo:
            new[todo] = self._encode(encoder, [texts[i] for i in todo], "passage", progress)
        mapping = fit_map(new, old, method=method, seed=seed)
        migration = Migration.new(spec, mapping, float(blend))
        with self._lock, self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != earlier:
                raise ConfigMismatchError("another model upgrade started meanwhile; run again")
            if earlier is not None and not reuse:
                txn.clear_pending()  # an earlier upgrade to another encoder is abandoned
            txn.save_meta(MIGRATION_KEY, migration.text)
            # Kept only for items not rewritten since the snapshot; backfill embeds the rest.
            txn.save_pending(picked.tolist(), seqs, new)
        self._migration = None
        return {
            "to": encoder.name,
            "method": mapping.method,
            "held_out_recall": mapping.held_out_recall,
            "blend": float(blend),
            "sample": len(picked),
            "embedded": len(todo),
        }

    def migrate_vectors(
        self, ids: Sequence[str], vectors: Any, *, method: str = "auto", seed: int = 0
    ) -> dict[str, Any]:
        """Start a model upgrade from vectors you bring: ``vectors`` are the new model's
        vectors of the stored items ``ids`` (at least 10; a few thousand is plenty).

        A map from the new space into the collection's is fitted on these pairs and
        saved. From then on every vector you give (queries and writes) is taken to be
        in the new model's space and mapped, so search goes on at once; give the new
        vectors of the other items with :meth:`backfill_vectors`, in as many calls as
        you like, and once every item has one the collection moves wholly into the new
        space. The collection then has no encoder of its own: its texts are kept, but
        queries are vectors. Returns the method chosen and its held-out recall.
        """
        self._check_open()
        id_list = check_ids(ids)
        new = as_vector_batch(vectors, None)
        if len(new) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(new)} vectors")
        with self._lock, self._store.snapshot() as snap:
            config = self._catch_up(snap)
            if config.dim is None or self._index is None or len(self._index) == 0:
                raise InvalidArgumentError("the collection is empty: there is nothing to migrate")
            earlier = snap.read_meta(MIGRATION_KEY)
            rows = self._rows_of(snap, id_list)
            order = np.argsort(rows, kind="stable")
            old = np.empty((len(rows), config.dim), dtype=np.float32)
            old[order] = snap.vectors_of_rows(rows[order], config.dim)
        mapping = fit_map(new, old, method=method, seed=seed)
        migration = Migration.new(None, mapping)
        with self._lock, self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != earlier:
                raise ConfigMismatchError("another model upgrade started meanwhile; run again")
            txn.clear_pending()  # vectors from an earlier upgrade may come from another model
            txn.save_meta(MIGRATION_KEY, migration.text)
            txn.save_pending_for_ids(id_list, new)
        self._migration = None
        return {
            "to": None,
            "dim": migration.dim,
            "method": mapping.method,
            "held_out_recall": mapping.held_out_recall,
            "sample": len(id_list),
        }

    def backfill_vectors(self, ids: Sequence[str], vectors: Any) -> int:
        """Give the new model's vectors of stored items during an upgrade started by
        :meth:`migrate_vectors`. Once every item has one, the new vectors are swapped in
        and the map retired, in one transaction. Returns how many items still lack one
        (0: the upgrade is finished)."""
        self._check_open()
        id_list = check_ids(ids)
        migration = self._current_migration()
        if migration is None or migration.to is not None:
            raise InvalidArgumentError(
                "no upgrade from your own vectors is in progress; call migrate_vectors() first"
            )
        new = as_vector_batch(vectors, migration.dim)
        if len(new) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(new)} vectors")
        with self._lock, self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != migration.text:
                raise ConfigMismatchError("the model upgrade changed meanwhile")
            self._rows_of(txn, id_list)  # every id must exist
            txn.save_pending_for_ids(id_list, new)
            left = txn.count_without_pending()
        if left == 0:
            try:
                self._finish_migration(migration)
            except RuntimeError:  # items were written meanwhile without a new vector
                with self._store.snapshot() as snap:
                    return snap.count_without_pending()
        return left

    def _sample_rows(self, sample: int, seed: int) -> Int64Array:
        assert self._index is not None
        rows = self._index.live_rows()
        # A prefix of one permutation: a larger sample with the same seed holds a smaller
        # one, so migrating again reuses the vectors already embedded.
        return np.sort(np.random.default_rng(seed).permutation(rows)[:sample])

    @staticmethod
    def _rows_of(snap: ReadTxn, ids: list[str]) -> Int64Array:
        """The rows of ``ids``, in their order; a missing id raises ItemNotFoundError."""
        found = snap.row_by_id(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ItemNotFoundError(f"no item with id {shown}{more}")
        return np.array([found[i] for i in ids], dtype=np.int64)

    def backfill(self, *, batch: int = 256, progress: Progress | None = None) -> int:
        """Re-embed every stored text with the new encoder, in transactions of ``batch``
        items, then swap the new vectors in and retire the map. Searches keep working
        meanwhile; a backfill that is killed resumes where it stopped. Returns how
        many items were embedded."""
        self._check_open()
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
        migration = self._current_migration()
        if migration is None:
            raise InvalidArgumentError("no model upgrade is in progress; call migrate() first")
        encoder = migration_encoder(migration)  # an upgrade from the user's vectors refuses
        done = 0
        with self._store.snapshot() as snap:
            total = snap.count_to_backfill()
        with ExitStack() as stack:
            advance: ProgressCallback | None = progress if callable(progress) else None
            if advance is None and (progress or (progress is None and total >= AUTO_PROGRESS_MIN)):
                from simsearch.progress import progress_bar

                advance = stack.enter_context(
                    progress_bar(total, f"Re-embedding with {encoder.name}")
                )
            while True:
                with self._store.snapshot() as snap:
                    todo = snap.rows_to_backfill(batch)
                if todo:
                    vectors = encoder.encode([t for _, _, t in todo], kind="passage")
                    with self._lock, self._store.write() as txn:
                        if txn.read_meta(MIGRATION_KEY) != migration.text:
                            raise ConfigMismatchError("the model upgrade changed during backfill")
                        txn.save_pending([r for r, _, _ in todo], [q for _, q, _ in todo], vectors)
                    done += len(todo)
                    if advance is not None:
                        advance(len(todo))
                    continue
                try:
                    self._finish_migration(migration)
                except RuntimeError:
                    continue  # items were written meanwhile: embed those too
                return done

    def _finish_migration(self, migration: Migration) -> None:
        """Swap in the new vectors, make the new encoder the collection's, drop the map."""
        with self._lock, self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != migration.text:
                raise ConfigMismatchError("the model upgrade changed during backfill")
            config = txn.read_config() or self._config
            txn.swap_in_pending()
            config = replace(config, encoder=migration.to, dim=migration.dim)
            check_index_fits(config.index, migration.dim)
            txn.save_config(config)
            for key in (MIGRATION_KEY, CALIBRATION_KEY, HUBNESS_KEY):  # all in the old space
                txn.save_meta(key, None)
        self._config = config
        self._encoder = None
        self._migration = None
        self._calibration = None
        self._hubness = None

    # -- hubness ------------------------------------------------------------------------------
    def set_hubness_bank(
        self, queries: Any = None, *, gallery_sample: int = 1000, seed: int = 0
    ) -> None:
        """Save a bank of typical queries (texts or vectors, not your test queries) for
        ``search(hubness=...)``, with a random sample of ``gallery_sample`` of the
        collection's items as the gallery bank of DBNorm. With no ``queries``, that
        sample of items stands in for the queries too (each item is left out of its own
        term). Replaces any earlier bank."""
        self._check_open()
        if self._config.metric is Metric.L2:
            raise InvalidArgumentError("hubness reduction works on cosine and dot collections")
        if isinstance(gallery_sample, bool) or not isinstance(gallery_sample, int):
            raise InvalidArgumentError(f"gallery_sample must be an integer, got {gallery_sample!r}")
        if gallery_sample < 1:
            raise InvalidArgumentError(f"gallery_sample must be positive, got {gallery_sample}")
        given = None if queries is None else self._search_space(self._parse_queries(queries, None))
        with self._lock:
            with self._store.snapshot() as snap:
                config = self._catch_up(snap)
                if config.dim is None or self._index is None or len(self._index) == 0:
                    raise InvalidArgumentError("the collection is empty: add items first")
                rows = self._index.live_rows()
                rng = np.random.default_rng(seed)
                picked = np.sort(rng.choice(rows, min(gallery_sample, len(rows)), replace=False))
                gallery = self._search_space(snap.vectors_of_rows(picked, config.dim))
            text = banks_to_text(gallery if given is None else given, gallery)
            with self._store.write() as txn:
                txn.save_meta(HUBNESS_KEY, text)
            self._hubness = None

    def _hubness_banks(self, snap: ReadTxn) -> tuple[FloatArray, FloatArray]:
        text = snap.read_meta(HUBNESS_KEY)
        if text is None:
            raise NotCalibratedError(
                "hubness reduction needs a query bank: call set_hubness_bank() first"
            )
        if self._hubness is None or self._hubness[0] != text:
            self._hubness = (text, *banks_from_text(text), {})
        return self._hubness[1], self._hubness[2]

    def _item_terms(self, snap: ReadTxn, correction: HubnessTerms, rows: Int64Array) -> Any:
        """Per-item hubness terms of ``rows``, computed once per row and bank."""
        bank, gallery = self._hubness_banks(snap)
        assert self._hubness is not None
        cache: dict[tuple[str, int], float] = self._hubness[3]
        missing = np.array(
            [r for r in rows.tolist() if (correction.method, r) not in cache], dtype=np.int64
        )
        if len(missing):
            dim = int(self._config.dim or 0)
            vectors = self._search_space(snap.vectors_of_rows(missing, dim))
            for r, t in zip(
                missing.tolist(),
                correction.item_terms(vectors, bank, gallery).tolist(),
                strict=True,
            ):
                cache[(correction.method, r)] = t
        return np.array([cache[(correction.method, r)] for r in rows.tolist()])

    def _rank_hubness(
        self,
        snap: ReadTxn,
        correction: HubnessTerms,
        queries: FloatArray,
        k: int,
        allowed: Int64Array | None,
        knobs: dict[str, int | None],
        exact: bool,
    ) -> tuple[FloatArray, Int64Array]:
        """The nearest ``HUBNESS_DEPTH x k`` candidates, reordered by the corrected score."""
        scores, rows = self._rank(snap, queries, HUBNESS_DEPTH * k, allowed, knobs, exact)
        valid = rows >= 0
        unique = np.unique(rows[valid])
        terms = self._item_terms(snap, correction, unique) if len(unique) else np.zeros(0)
        per_hit = np.zeros(rows.shape)
        if len(unique):
            per_hit[valid] = terms[np.searchsorted(unique, rows[valid])]
        corrected = np.where(
            valid, correction.corrected(scores.astype(np.float64), per_hit), -np.inf
        )
        order = np.lexsort((np.where(valid, rows, np.iinfo(np.int64).max), -corrected), axis=-1)
        order = order[:, :k]
        out_rows = np.where(
            np.take_along_axis(valid, order, axis=1), np.take_along_axis(rows, order, axis=1), -1
        )
        return np.take_along_axis(scores, order, axis=1), out_rows

    def hubness_report(
        self, *, k: int = 10, queries: Any = None, top: int = 10, sample: int = 1000
    ) -> dict[str, Any]:
        """The skewness of k-occurrence (how lopsided the counts of items in the top-k
        lists of ``queries`` are; 0 is none) and the ``top`` hubs, for each method that
        can run (``none`` always; the others once a bank is set).

        Without ``queries``, the collection's own items ask: a random ``sample`` of them
        (all when there are fewer), each left out of its own list, the data set's own
        hubness as Radovanovic et al. define it. A few hundred queries give a noisy
        figure: even random top-k lists have a skewness well above 0 then.
        """
        self._check_open()
        k = check_k(k)
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise InvalidArgumentError(f"sample must be a positive integer, got {sample!r}")
        with self._lock, self._store.snapshot() as snap:
            config = self._catch_up(snap)
            if config.dim is None or self._index is None or len(self._index) == 0:
                raise InvalidArgumentError("the collection is empty")
            has_bank = snap.read_meta(HUBNESS_KEY) is not None
        themselves: list[str | None] | None = None
        given = None if queries is None else self._parse_queries(queries, None)
        if queries is None:
            rows = self._sample_rows(sample, 0)
            with self._store.snapshot() as snap:
                queries = snap.vectors_of_rows(rows, int(config.dim))
                described = snap.describe_rows(rows.tolist())
            themselves = [described[r][0] for r in rows.tolist()]
        # The sample is already in the index's space; the caller's queries are not.
        q = np.asarray(queries, dtype=np.float32) if given is None else given
        report: dict[str, Any] = {"k": k, "queries": len(q), "methods": {}}
        for method in METHODS if has_bank else ("none",):
            # An item asked as a query is left out of its own list.
            res = self.search(_InCollectionSpace(q), k=k + (themselves is not None), hubness=method)
            own = themselves or [None] * len(q)
            ids = [
                h.id
                for row, me in zip(res, own, strict=True)
                for h in [h for h in row if h.id != me][:k]
            ]
            counts: dict[str, int] = {}
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
            skewness = k_occurrence_skewness(list(counts.values()), len(self))
            hubs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            report["methods"][method] = {"skewness": skewness, "top_hubs": hubs}
        return report

    # -- calibration -------------------------------------------------------------------------
    def _calibrator(self, snap: ReadTxn) -> Calibrator | None:
        """The saved calibrator, its background refreshed once the collection has drifted."""
        text = snap.read_meta(CALIBRATION_KEY)
        if text is None:
            self._calibration = None
            return None
        if self._calibration is None or self._calibration[0] != text:
            self._calibration = (text, Calibrator.from_json(text))
        calibrator = self._calibration[1]
        live = len(self._index) if self._index is not None else 0
        drift = abs(live - calibrator.background.count)
        if live >= 2 and drift > BACKGROUND_DRIFT * calibrator.background.count:
            calibrator = replace(calibrator, background=self._background(snap))
            self._calibration = (text, calibrator)
        return calibrator

    def _background(self, snap: ReadTxn) -> Background:
        """Mean and covariance of the live vectors as searched, read block by block."""
        index = self._index
        assert index is not None
        dim = int(self._config.dim or 0)
        rows = index.live_rows()
        total = np.zeros(dim)
        outer = np.zeros((dim, dim))
        for start in range(0, len(rows), EXACT_BLOCK):
            part = rows[start : start + EXACT_BLOCK]
            x = snap.vectors_of_rows(part, dim).astype(np.float64)
            if self._config.metric is Metric.COSINE:
                x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            total += x.sum(axis=0)
            outer += x.T @ x
        n = len(rows)
        if n < 2:
            raise InvalidArgumentError("calibration needs a collection of at least 2 items")
        mean = total / n
        cov = (outer - n * np.outer(mean, mean)) / (n - 1)
        return Background(mean=mean, cov=cov, count=n)

    def _search_space(self, queries: FloatArray) -> FloatArray:
        return normalize(queries) if self._config.metric is Metric.COSINE else queries

    def _rank_calibrated(
        self,
        snap: ReadTxn,
        calibrator: Calibrator,
        queries: FloatArray,
        k: int,
        allowed: Int64Array | None,
        knobs: dict[str, int | None],
        exact: bool,
        ranked: tuple[FloatArray, Int64Array] | None = None,
        deep: bool = False,
    ) -> tuple[FloatArray, Int64Array, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Rank (or take the hits already ``ranked``), and give each hit its relevance
        against the query's unfiltered window; also the expected number of relevant
        items each query has among those searched (``deep``: among its top
        ``EXPECTED_DEPTH``, for queries with more relevant items than one window)."""
        if calibrator.kind == "fitted":
            depth = max(k, WINDOW, EXPECTED_DEPTH if deep and allowed is None else 0)
            w_scores, w_rows = self._rank(snap, queries, depth, None, knobs, exact)
            if ranked is not None:
                scores, rows = ranked
            elif allowed is None:
                scores, rows = w_scores[:, :k], w_rows[:, :k]
            else:
                scores, rows = self._rank(snap, queries, k, allowed, knobs, exact)
            window = w_scores[:, :WINDOW]
        else:
            if ranked is None:
                ranked = self._rank(snap, queries, k, allowed, knobs, exact)
            scores, rows = ranked
            window = scores
        space = self._search_space(queries)
        relevance = np.where(rows >= 0, calibrator.relevance(space, scores, window), 0.0)
        if allowed is None and calibrator.kind == "fitted":
            reach = max(WINDOW, EXPECTED_DEPTH if deep else 0)
            found = w_rows[:, :reach] >= 0
            deep_scores = np.where(found, w_scores[:, :reach], window[:, -1:])
            probs = calibrator.relevance(space, deep_scores, window)
            expected = np.where(found, probs, 0.0).sum(axis=1)
        else:  # a filtered search: the relevant items it can return are among its hits
            expected = relevance.sum(axis=1)
        return scores, rows, relevance, np.maximum(expected, relevance.sum(axis=1))

    def calibrate(
        self,
        queries: Any = None,
        judgements: Sequence[Any] | None = None,
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Fit how raw scores map to relevance, and save it in the collection.

        With ``queries`` (texts or vectors) and ``judgements`` (for each query, the
        ids of the items relevant to it: a set, a list, or a dict of id to grade,
        where a grade above 0 is relevant), a per-query Platt model learns the
        probability that a hit is relevant (see :mod:`simsearch.calibration`).
        With neither, the unlabelled fallback is saved: relevance relative to
        each query's own score distribution over the collection, comparable
        across queries but not a probability. Every later search gives hits a
        ``relevance`` and accepts ``min_relevance``. Returns a summary, with the
        cutoff that maximised F1 on the judgements as ``threshold``.
        """
        self._check_open()
        if (queries is None) != (judgements is None):
            raise InvalidArgumentError("give queries and judgements together, or neither")
        if self._config.metric is Metric.L2:
            raise InvalidArgumentError("calibration works on cosine and dot collections, not l2")
        query_vectors = None
        relevant: list[set[str]] = []
        if queries is not None and judgements is not None:
            query_vectors = self._parse_queries(queries, progress)
            if isinstance(judgements, str | bytes) or not isinstance(judgements, Sequence):
                raise InvalidArgumentError("judgements must be a list with one entry per query")
            if len(judgements) != len(query_vectors):
                raise InvalidArgumentError(
                    f"got {len(query_vectors)} queries but {len(judgements)} judgements"
                )
            relevant = [_relevant_ids(j) for j in judgements]
        with self._lock:
            with self._store.snapshot() as snap:
                config = self._catch_up(snap)
                if config.dim is None or self._index is None or len(self._index) < 2:
                    raise InvalidArgumentError("calibration needs a collection of at least 2 items")
                background = self._background(snap)
                if query_vectors is None:
                    calibrator = Calibrator(kind="background", background=background)
                    summary: dict[str, Any] = {"kind": "background"}
                else:
                    if query_vectors.shape[1] != config.dim:
                        raise DimensionMismatchError(
                            f"query vectors have dimension {query_vectors.shape[1]}, the "
                            f"collection holds {config.dim}-d vectors"
                        )
                    scores, rows = self._rank(snap, query_vectors, WINDOW, None, NO_KNOBS, False)
                    described = snap.describe_rows(np.unique(rows[rows >= 0]).tolist())
                    labels = np.array(
                        [
                            [r >= 0 and described[r][0] in rel for r in row]
                            for row, rel in zip(rows.tolist(), relevant, strict=True)
                        ],
                        dtype=bool,
                    )
                    calibrator = fit_calibrator(
                        background, self._search_space(query_vectors), scores, labels
                    )
                    summary = {
                        "kind": "fitted",
                        "queries": len(query_vectors),
                        "relevant_in_window": int(labels.sum()),
                        "threshold": calibrator.threshold,
                    }
            with self._store.write() as txn:
                txn.save_meta(CALIBRATION_KEY, calibrator.to_json())
            self._calibration = None
        return summary

    def calibration(self) -> dict[str, Any] | None:
        """The calibration in force: its kind (``fitted`` or ``background``) and, when
        fitted, the cutoff that maximised F1 on its judgements; ``None`` when uncalibrated."""
        self._check_open()
        with self._lock, self._store.snapshot() as snap:
            self._catch_up(snap)
            calibrator = self._calibrator(snap)
        if calibrator is None:
            return None
        if calibrator.kind == "background":
            return {"kind": "background"}
        return {"kind": "fitted", "threshold": calibrator.threshold}

    def uncalibrate(self) -> None:
        """Remove the saved calibration; hits carry no relevance afterwards."""
        self._check_open()
        with self._lock, self._store.write() as txn:
            txn.save_meta(CALIBRATION_KEY, None)
            self._calibration = None

    def _rank(
        self,
        snap: ReadTxn,
        queries: FloatArray,
        k: int,
        allowed: Int64Array | None,
        knobs: dict[str, int | None],
        exact: bool,
    ) -> tuple[FloatArray, Int64Array]:
        index = self._index
        assert index is not None  # caught up by the caller
        config = self._config
        if isinstance(index, FlatIndex):
            return index.search(queries, k, allowed)
        plan = plan_search(
            config.index,
            live=len(index),
            allowed=None if allowed is None else len(allowed),
            force_exact=exact,
        )
        dim = queries.shape[1]
        if not plan.exact:
            try:
                if isinstance(index, QuantizedIndex):
                    factor = knobs["rescore"] or index.config.rescore
                    _, candidates = index.search(
                        queries, k * factor, allowed, ef=knobs["ef"], nprobe=knobs["nprobe"]
                    )
                    return rescore_candidates(
                        config.metric,
                        queries,
                        candidates,
                        k,
                        lambda rows: snap.vectors_of_rows(rows, dim),
                    )
                return index.search(queries, k, allowed, ef=knobs["ef"])
            except RuntimeError:
                pass  # the walk found fewer than k items (a graph cut by deletions): go exact
        live = index.live_rows()
        rows = live if allowed is None else np.intersect1d(allowed, live)
        vectors = index.exact_vectors(rows)
        if vectors is not None:
            return FlatIndex.from_arrays(config.metric, rows, vectors).search(queries, k)
        # A quantized index holds codes only: read the floats from the store a block at a
        # time (the collection may not fit in memory) and keep the best k of every block.
        best_s: list[FloatArray] = [np.full((len(queries), k), -np.inf, dtype=np.float32)]
        best_r: list[Int64Array] = [np.full((len(queries), k), -1, dtype=np.int64)]
        for start in range(0, len(rows), EXACT_BLOCK):
            part = rows[start : start + EXACT_BLOCK]
            block = FlatIndex.from_arrays(config.metric, part, snap.vectors_of_rows(part, dim))
            scores, found = block.search(queries, k)
            best_s.append(scores)
            best_r.append(found)
        return merge_top_k(np.hstack(best_s), np.hstack(best_r), k)

    def find_duplicates(
        self,
        *,
        k: int = DEFAULT_K,
        margin: str = "ratio",
        min_margin: float | None = None,
        candidates: int = DEFAULT_K,
    ) -> list[DuplicatePair]:
        """Near-duplicate pairs of items, mined with margin scoring, best margin first.

        Each pair's similarity is compared with how similar each side is to its
        own ``k`` nearest neighbours (see :mod:`simsearch.duplicates`); pairs
        below ``min_margin`` are dropped. Compares every item with every other
        exactly, so it suits collections up to a few hundred thousand items.
        """
        self._check_open()
        if self._config.metric is Metric.L2:
            raise InvalidArgumentError("duplicate mining works on cosine and dot collections")
        if min_margin is not None and (
            isinstance(min_margin, bool) or not isinstance(min_margin, int | float)
        ):
            raise InvalidArgumentError(f"min_margin must be a number, got {min_margin!r}")
        items = list(self.iter_items())
        if not items:
            return []
        pairs = mine_pairs(
            [i.id for i in items],
            np.stack([i.vector for i in items]),
            k=k,
            candidates=candidates,
            margin=margin,
            metric=self._config.metric,
        )
        if min_margin is not None:
            pairs = [p for p in pairs if p.margin >= min_margin]
        return pairs

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        """Every item in insertion order (for export); reads one consistent snapshot."""
        self._check_open()
        with self._lock, self._store.snapshot() as snap:
            dim = (snap.read_config() or self._config).dim
            if dim is None:
                return
            for stored in snap.iter_rows(dim, batch):
                yield Item(
                    id=stored.id,
                    vector=stored.vector,
                    text=stored.text,
                    metadata=parse_stored_metadata(stored.metadata_json, stored.id),
                )
