"""Collection: the object users hold. It checks arguments and hands the work to its parts:
the store (:mod:`simsearch.store`), the index keeper (:mod:`simsearch.index.keeper`), the
embedder (:mod:`simsearch.embedding`), the write path (:mod:`simsearch.writes`), the search
pipeline (:mod:`simsearch.search`), model upgrades (:mod:`simsearch.upgrade`) and scoring
(:mod:`simsearch.scoring`). No part reaches back into the collection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from simsearch.config import CollectionConfig, IndexConfig, index_name
from simsearch.embedding import Embedder, Progress
from simsearch.encoders import Encoder
from simsearch.errors import CollectionClosedError, InvalidArgumentError, ItemNotFoundError
from simsearch.index.keeper import IndexKeeper
from simsearch.opening import open_store
from simsearch.scoring import fitting
from simsearch.scoring.duplicates import DEFAULT_K, DuplicatePair, mine_pairs
from simsearch.scoring.hubness import HubnessBank
from simsearch.scoring.relevance import CALIBRATION_KEY, CalibrationState
from simsearch.search.request import SearchRequest
from simsearch.search.runner import Searcher
from simsearch.store import SQLiteStore
from simsearch.types import Item, JSONObject, Metric, Results, parse_stored_metadata
from simsearch.upgrade.compat import DEFAULT_BLEND
from simsearch.upgrade.migration import Upgrades
from simsearch.validation import check_ids
from simsearch.writes import delete_items, write_items

__all__ = ["Collection"]


class Collection:
    """A durable set of items (id, vector, optional text and metadata) that answers
    "what is most similar to this?".

    Open one with :meth:`Collection.open`. Every write is one transaction and
    is durable once the call returns; several processes and threads may use one
    collection at once. Scores are always higher-is-better: cosine similarity,
    inner product, or the *negative* Euclidean distance for ``l2``.

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
        self._embedder = Embedder(encoder)
        self._keeper = IndexKeeper(store, path)
        self._upgrades = Upgrades(store, self._keeper, self._embedder)
        self._calibration = CalibrationState()
        self._hubness = HubnessBank()
        self._searcher = Searcher(
            store, self._keeper, self._embedder, self._upgrades, self._calibration, self._hubness
        )
        self._closed = False
        with store.snapshot() as snap:
            _, self._last_config = self._keeper.catch_up(snap)

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
        directory, store, enc = open_store(
            path, metric=metric, dim=dim, encoder=encoder, index=index, create=create
        )
        try:
            return cls(directory, store, enc)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Release the database; later calls raise :class:`~simsearch.CollectionClosedError`.

        A graph or quantized index is first brought up to date with every write and
        saved, so the next open loads it instead of building it again.
        """
        if self._closed:
            return
        config = self.config
        self._closed = True
        try:
            self._keeper.close(config)
        finally:
            self._store.close()

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
        return f"Collection({str(self.path)!r}, metric={self.config.metric.value!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionClosedError(f"the collection at {self.path} is closed")

    # -- properties --------------------------------------------------------------------------
    @property
    def config(self) -> CollectionConfig:
        """The saved configuration (metric, dimension, encoder, index)."""
        if self._closed:
            return self._last_config
        with self._store.snapshot() as snap:
            self._last_config = snap.config()
        return self._last_config

    def __len__(self) -> int:
        self._check_open()
        with self._store.snapshot() as snap:
            return snap.count()

    def info(self) -> dict[str, Any]:
        """A summary: path, item count, metric, dimension, encoder, last sequence number, size,
        and the model upgrade in progress (``migration``: where to, the map, how many items
        still lack a new vector)."""
        self._check_open()
        with self._store.snapshot() as snap:
            state = snap.state()
            config = snap.config(state)
            count = snap.count()
            current = self._upgrades.current(snap, state)
            migration = None
            if current is not None:
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
            "seq": state.seq,
            "size_bytes": self._store.size_bytes(),
            "migration": migration,
        }

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
        self._check_open()
        write_items(
            self._store, self._embedder, self._upgrades, ids, vectors, texts, metadata, progress,
            replace_existing=False,
        )  # fmt: skip

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
        self._check_open()
        write_items(
            self._store, self._embedder, self._upgrades, ids, vectors, texts, metadata, progress,
            replace_existing=True,
        )  # fmt: skip

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
        return delete_items(self._store, ids, where, all)

    # -- reads -------------------------------------------------------------------------------
    def get(self, ids: Sequence[str] | str) -> list[Item]:
        """The items with these ids, in the same order; a missing id raises
        :class:`~simsearch.ItemNotFoundError`."""
        self._check_open()
        id_list = check_ids(ids)
        with self._store.snapshot() as snap:
            dim = snap.config().dim
            found = snap.get(id_list, dim) if dim is not None else {}
        missing = [i for i in id_list if i not in found]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ItemNotFoundError(f"no item with id {shown}{more}")
        return [
            Item(
                i, found[i].vector, found[i].text, parse_stored_metadata(found[i].metadata_json, i)
            )
            for i in id_list
        ]

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        """Every item in insertion order (for export); reads one consistent snapshot."""
        self._check_open()
        with self._store.snapshot() as snap:
            dim = snap.config().dim
            if dim is None:
                return
            for row in snap.iter_rows(dim, batch):
                yield Item(
                    row.id, row.vector, row.text, parse_stored_metadata(row.metadata_json, row.id)
                )

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
                :mod:`simsearch.scoring.hubness`; needs :meth:`set_hubness_bank`).
                Hits keep their raw ``score``; only the order changes.

        Returns:
            :class:`~simsearch.Results` with one row of hits per query. Scores are
            higher-is-better: cosine similarity, inner product, or negative L2
            distance.
        """
        self._check_open()
        request = SearchRequest.build(
            k=k, where=where, ef=ef, nprobe=nprobe, rescore=rescore, exact=exact,
            min_relevance=min_relevance, cutoff=cutoff, hubness=hubness,
        )  # fmt: skip
        return self._searcher.search(query, request, progress)

    def optimize(self) -> None:
        """Rebuild an approximate index without its deleted entries, and save it.

        An index is also rebuilt on its own, in a background thread, once deleted
        entries pass a quarter of it or a quantized one has outgrown its training
        sample (this waits for one that runs). A quantized index is retrained on the
        current data; a graph with nothing deleted is kept; a flat index needs nothing.
        """
        self._check_open()
        with self._store.snapshot() as snap:
            self._keeper.optimize(snap)

    # -- model upgrades (see simsearch.upgrade) --------------------------------------------
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

        Search goes on at once in the old space. A text query is the old encoder's
        vector blended with the new encoder's mapped vector, ``blend`` of the latter
        (1: the mapped vector alone; 0: the old encoder alone); a new text gets its
        old-space vector from the old encoder and its new vector is kept.
        :meth:`backfill` re-embeds every stored text and then makes the new encoder
        the collection's own. Migrating again to the same encoder reuses every vector
        already embedded. Returns the method chosen and its held-out recall.
        """
        self._check_open()
        return self._upgrades.migrate(
            new_encoder, sample=sample, method=method, blend=blend, seed=seed, progress=progress
        )

    def backfill(self, *, batch: int = 256, progress: Progress | None = None) -> int:
        """Re-embed every stored text with the new encoder, in transactions of ``batch``
        items, then swap the new vectors in and retire the map. Searches keep working
        meanwhile; a backfill that is killed resumes where it stopped. Returns how
        many items were embedded."""
        self._check_open()
        return self._upgrades.backfill(batch=batch, progress=progress)

    def migrate_vectors(
        self, ids: Sequence[str], vectors: Any, *, method: str = "auto", seed: int = 0
    ) -> dict[str, Any]:
        """Start a model upgrade from vectors you bring: ``vectors`` are the new model's
        vectors of the stored items ``ids`` (at least 10; a few thousand is plenty).

        A map from the new space into the collection's is fitted on these pairs and
        saved; from then on every vector you give (queries and writes) is taken to be
        in the new model's space and mapped. Give the new vectors of the other items
        with :meth:`backfill_vectors`; once every item has one, the collection moves
        wholly into the new space (it then has no encoder of its own).
        """
        self._check_open()
        return self._upgrades.migrate_vectors(ids, vectors, method=method, seed=seed)

    def backfill_vectors(self, ids: Sequence[str], vectors: Any) -> int:
        """Give the new model's vectors of stored items during an upgrade started by
        :meth:`migrate_vectors`. Once every item has one, the new vectors are swapped in
        and the map retired, in one transaction. Returns how many items still lack one
        (0: the upgrade is finished)."""
        self._check_open()
        return self._upgrades.backfill_vectors(ids, vectors)

    # -- scoring (see simsearch.scoring) -----------------------------------------------------
    def set_hubness_bank(
        self, queries: Any = None, *, gallery_sample: int = 1000, seed: int = 0
    ) -> None:
        """Save a bank of typical queries (texts or vectors, not your test queries) for
        ``search(hubness=...)``, with a random sample of ``gallery_sample`` of the
        collection's items as the gallery bank of DBNorm. With no ``queries``, that
        sample of items stands in for the queries too (each item is left out of its own
        term). Replaces any earlier bank."""
        self._check_open()
        if self.config.metric is Metric.L2:
            raise InvalidArgumentError("hubness reduction works on cosine and dot collections")
        given = None if queries is None else self._searcher.query_vectors(queries, None)
        fitting.set_hubness_bank(self._store, self._keeper, given, gallery_sample, seed)

    def hubness_report(
        self, *, k: int = 10, queries: Any = None, top: int = 10, sample: int = 1000
    ) -> dict[str, Any]:
        """The skewness of k-occurrence (how lopsided the counts of items in the top-k
        lists of ``queries`` are; 0 is none) and the ``top`` hubs, for each method that
        can run (``none`` always; the others once a bank is set).

        Without ``queries``, a random ``sample`` of the collection's own items ask
        (all when there are fewer), each left out of its own list: the data set's own
        hubness as Radovanovic et al. define it. A few hundred queries give a noisy
        figure: even random top-k lists have a skewness well above 0 then.
        """
        self._check_open()
        given = None if queries is None else self._searcher.query_vectors(queries, None)
        return fitting.hubness_report(
            self._store, self._keeper, self._searcher, k=k, queries=given, top=top, sample=sample
        )

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
        probability that a hit is relevant (see :mod:`simsearch.scoring.calibration`).
        With neither, the unlabelled fallback is saved: relevance relative to each
        query's own score distribution over the collection, comparable across
        queries but not a probability. Every later search gives hits a
        ``relevance`` and accepts ``min_relevance``. Returns a summary, with the
        cutoff that maximised F1 on the judgements as ``threshold``.
        """
        self._check_open()
        if (queries is None) != (judgements is None):
            raise InvalidArgumentError("give queries and judgements together, or neither")
        if self.config.metric is Metric.L2:
            raise InvalidArgumentError("calibration works on cosine and dot collections, not l2")
        given = None if queries is None else self._searcher.query_vectors(queries, progress)
        return fitting.calibrate(self._store, self._keeper, given, judgements)

    def calibration(self) -> dict[str, Any] | None:
        """The calibration in force: its kind (``fitted`` or ``background``) and, when
        fitted, the cutoff that maximised F1 on its judgements; ``None`` when uncalibrated."""
        self._check_open()
        with self._store.snapshot() as snap:
            calibrator = self._calibration.saved.get(snap, snap.state())
        if calibrator is None:
            return None
        if calibrator.kind == "background":
            return {"kind": "background"}
        return {"kind": "fitted", "threshold": calibrator.threshold}

    def uncalibrate(self) -> None:
        """Remove the saved calibration; hits carry no relevance afterwards."""
        self._check_open()
        with self._store.write() as txn:
            txn.save_meta(CALIBRATION_KEY, None)

    def find_duplicates(
        self,
        *,
        k: int = DEFAULT_K,
        margin: str = "ratio",
        min_margin: float | None = None,
        candidates: int = DEFAULT_K,
    ) -> list[DuplicatePair]:
        """Near-duplicate pairs of items, mined with margin scoring, best margin first.

        Each pair's similarity is compared with how similar each side is to its own
        ``k`` nearest neighbours (see :mod:`simsearch.scoring.duplicates`); pairs below
        ``min_margin`` are dropped. Compares every item with every other exactly, so it
        suits collections up to a few hundred thousand items.
        """
        self._check_open()
        metric = self.config.metric
        if metric is Metric.L2:
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
            metric=metric,
        )
        return [p for p in pairs if min_margin is None or p.margin >= min_margin]
