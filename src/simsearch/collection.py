"""Collection: the object users hold. It checks arguments and hands the work to its parts:
the store (:mod:`simsearch.store`), the index keeper (:mod:`simsearch.index.keeper`), the
embedder (:mod:`simsearch.embedding`), the write path (:mod:`simsearch.writes`), the search
pipeline (:mod:`simsearch.search`), model upgrades (:mod:`simsearch.upgrade`) and scoring
(:mod:`simsearch.scoring`). No part reaches back into the collection.

The facade is grouped by concern: data and search here, scoring methods in
:mod:`simsearch.collection_scoring`, model upgrades in :mod:`simsearch.collection_upgrades`,
and the parts themselves (built when a collection opens, released when it closes) in
:mod:`simsearch.collection_parts`. The facets are methods of one class over those parts, so
each stays a check and a delegation; none holds state of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from simsearch.browse import count_items, get_items
from simsearch.collection_scoring import ScoringMethods
from simsearch.collection_upgrades import UpgradeMethods
from simsearch.config import FieldIndexSpec, IndexConfig, index_name
from simsearch.embedding import Progress
from simsearch.encoders import Encoder
from simsearch.field_admin import declare_field_index, drop_field_index, explain_filter
from simsearch.filters import SqlFilter
from simsearch.index.base import Int64Array
from simsearch.multivector import MultiVector, multivector_summary
from simsearch.opening import open_store
from simsearch.search.request import SearchRequest
from simsearch.store.catalogue import field_summaries
from simsearch.store.reads import ReadTxn
from simsearch.transfer import check_target, export_store, import_dump, read_dump
from simsearch.types import Item, JSONObject, Metric, Results
from simsearch.updates import update_items
from simsearch.writes import delete_items, write_items

__all__ = ["Collection"]


class Collection(ScoringMethods, UpgradeMethods):
    """A durable set of items (id, vector, optional text and metadata) that answers
    "what is most similar to this?".

    Open one with :meth:`Collection.open`. Every write is one transaction, durable once
    the call returns; several processes and threads may use one collection at once.
    Scores are higher-is-better: cosine, inner product, or *negative* distance for ``l2``.

    >>> import tempfile, simsearch
    >>> with simsearch.Collection.open(tempfile.mkdtemp(), metric="dot") as col:
    ...     col.add(["a", "b"], vectors=[[1, 0], [0, 1]], metadata=[{"n": 1}, {"n": 2}])
    ...     hits = col.search([1.0, 0.2], k=2)[0]
    ...     [(h.id, round(h.score, 2)) for h in hits]
    [('a', 1.0), ('b', 0.2)]
    """

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
        multivector: bool | MultiVector = False,
    ) -> Collection:
        """Open the collection at ``path`` (a folder), creating it if it does not exist.

        Args:
            path: a folder; made when missing; one that holds other files is refused.
            metric: ``"cosine"`` (the default), ``"dot"`` or ``"l2"``; on reopen ``None``
                keeps the saved one and another raises :class:`~simsearch.ConfigMismatchError`.
            dim: the vector dimension; ``None`` lets the first vectors (or the encoder) fix it.
            encoder: a registered name or an encoder object; ``None`` means the saved one,
                or ``minilm-l6-v2-int8`` the first time texts are given.
            index: :class:`~simsearch.Flat` (exact, the default), :class:`~simsearch.HNSW`
                (a graph, optionally over int8 or binary codes) or :class:`~simsearch.IVFPQ`;
                derived from the store, so another kind on reopen rebuilds it.
            create: when false, a missing collection raises
                :class:`~simsearch.NotACollectionError`.
            multivector: ``True`` or a :class:`~simsearch.MultiVector` makes items sets of
                ``dim``-d vectors scored by MaxSim (so does a token encoder); fixed at creation.
        """
        directory, store, enc = open_store(
            path, metric=metric, dim=dim, encoder=encoder, index=index, create=create,
            multivector=multivector,
        )  # fmt: skip
        try:
            return cls(directory, store, enc)
        except BaseException:
            store.close()
            raise

    def __enter__(self) -> Collection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: Any, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r}, metric={self.config.metric.value!r})"

    # -- properties --------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of items stored."""
        self._check_open()
        with self._store.snapshot() as snap:
            return snap.count()

    def info(self) -> dict[str, Any]:
        """A summary: path, item count, metric, dimension, encoder, index kind, last sequence
        number, size, the model upgrade in progress (where to, the map, how many items
        still lack a new vector), and the metadata fields items hold (``fields``: each
        one's path as filters write it, how many items hold it, of which JSON types)."""
        self._check_open()
        with self._store.snapshot() as snap:
            state = snap.state()
            config, count = snap.config(state), snap.count()
            migration = self._upgrades.summary(snap, state)
            fields = snap.fields()
        encoder = config.encoder
        return {
            "path": str(self.path),
            "count": count,
            "metric": config.metric.value,
            "dim": config.token_dim,
            "encoder": {"name": encoder.name, "version": encoder.version} if encoder else None,
            "index": index_name(config.index),
            "seq": state.seq,
            "size_bytes": self._store.size_bytes(),
            "migration": migration,
            "fields": field_summaries(fields, config.fields),
            "field_indexes": self._keeper.describe_fields(config.fields),
            "multivector": multivector_summary(config.multivector),
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
        multivectors: Any = None,
    ) -> None:
        """Add new items; an id that exists raises :class:`~simsearch.DuplicateIdError`.

        Give ``vectors``, or ``texts`` to embed (or both: the vectors are stored, the texts
        kept); a multi-vector collection takes ``multivectors`` (one ``(n_i, dim)`` array
        per id) or texts. The whole batch is one transaction, or nothing is written.
        ``progress``: a bar while embedding (``None``: large batches only), or a callback."""
        self._check_open()
        write_items(
            self._store, self._embedder, self._upgrades, ids, vectors, texts, metadata, progress,
            replace_existing=False, multivectors=multivectors,
        )  # fmt: skip

    def upsert(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Progress | None = None,
        multivectors: Any = None,
    ) -> None:
        """Add new items and replace existing ones whole (vector or set, text, metadata)."""
        self._check_open()
        write_items(
            self._store, self._embedder, self._upgrades, ids, vectors, texts, metadata, progress,
            replace_existing=True, multivectors=multivectors,
        )  # fmt: skip

    def update(
        self,
        ids: Sequence[str] | str,
        *,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        merge: bool = True,
        texts: Sequence[str] | str | None = None,
        vectors: Any = None,
        progress: Progress | None = None,
    ) -> int:
        """Change only what is given of existing items, in one transaction (a missing id
        raises :class:`~simsearch.ItemNotFoundError`, nothing written): ``metadata`` merged
        into the stored one key by key (``merge=False``: replaces it), ``texts`` (embedded
        again when the collection has an encoder and no ``vectors`` come with them),
        ``vectors``. Returns how many items were updated."""
        self._check_open()
        return update_items(
            self._store, self._embedder, self._upgrades, ids, metadata=metadata, merge=merge,
            texts=texts, vectors=vectors, progress=progress,
        )  # fmt: skip

    def delete(
        self, ids: Sequence[str] | str | None = None, *, where: Any = None, all: bool = False
    ) -> int:
        """Delete items by id, by filter, or both (those of ``ids`` matching ``where``), or
        with ``all=True`` alone every item; returns how many. Missing ids are skipped; a
        filter matching everything (``{}``) needs ``all=True``, so nothing empties by
        accident."""
        self._check_open()
        return delete_items(self._store, ids, where, all)

    # -- reads -------------------------------------------------------------------------------
    def get(
        self,
        ids: Sequence[str] | str | None = None,
        *,
        where: Any = None,
        limit: int | None = None,
        offset: int = 0,
        include: Sequence[str] = ("metadata", "text", "vector"),
        missing: str = "error",
        where_text: Any = None,
    ) -> list[Item]:
        """Items by id (in the order asked), by filter (in insertion order), or both (those
        of ``ids`` matching ``where``); with neither, every item. ``offset`` and ``limit``
        page through them. ``include`` names the parts read besides the id (``metadata``,
        ``text``, ``vector``; one left out is ``None``, or ``{}`` for metadata).
        ``missing="error"`` (the default) raises :class:`~simsearch.ItemNotFoundError`
        naming absent ids, ``"skip"`` leaves them out. ``where_text`` as in :meth:`search`."""
        self._check_open()
        return get_items(
            self._store, ids, where=where, limit=limit, offset=offset, include=include,
            missing=missing, rows_of=self._filtered_rows,
            text_rows=self._keeper.text_rows_of(where_text),
        )  # fmt: skip

    def count(self, where: Any = None, *, where_text: Any = None) -> int:
        """How many items match ``where`` (every item when ``None``) and ``where_text``."""
        self._check_open()
        rows_of, text_rows = self._filtered_rows, self._keeper.text_rows_of(where_text)
        return count_items(self._store, where, rows_of, text_rows)

    def _filtered_rows(self, snap: ReadTxn, flt: SqlFilter) -> Int64Array:
        return self._keeper.allowed_rows(snap, flt)[0]

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        """Every item in insertion order (for export); reads one consistent snapshot."""
        self._check_open()
        with self._store.snapshot() as snap:
            yield from snap.iter_items(batch)

    # -- moving whole collections (see simsearch.transfer) ----------------------------------
    def export(
        self, target: str | Path | IO[str], *, format: str | None = None, vectors: bool = True
    ) -> int:
        """Write the whole collection, config and calibration included, as of one snapshot
        (:mod:`simsearch.transfer`): ``"jsonl"`` (a path or text stream) or ``"parquet"``
        (a path), by default from the suffix. Returns how many items were written."""
        self._check_open()
        return export_store(self._store, target, format=format, vectors=vectors)

    @classmethod
    def import_(
        cls, source: str | Path, path: str | Path, *, format: str | None = None
    ) -> Collection:
        """Create the collection at ``path`` (new, or an empty folder) from an :meth:`export`
        file, embedding nothing, and open it; a bad file raises and writes nothing."""
        check_target(Path(path))
        import_dump(read_dump(source, format=format), Path(path))
        return cls.open(path, create=False)

    def backup(self, path: str | Path) -> None:
        """Copy the collection as of one moment into the new folder ``path`` while writers
        go on (SQLite's online backup); the copy opens as a collection of its own."""
        self._check_open()
        self._store.backup(Path(path))

    def search(
        self,
        query: Any,
        *,
        k: int = 10,
        where: Any = None,
        offset: int = 0,
        ef: int | None = None,
        nprobe: int | None = None,
        rescore: int | None = None,
        exact: bool = False,
        min_relevance: float | None = None,
        cutoff: str | None = None,
        hubness: str = "none",
        mode: str = "dense",
        fusion: str = "convex",
        alpha: float | None = None,
        where_text: Any = None,
        progress: Progress | None = None,
        candidates: int | None = None,
    ) -> Results:
        """The ``k`` items most similar to each query, best first (the pipeline is
        :mod:`simsearch.search`).

        Args:
            query: a string or list of strings (embedded), a vector, or a 2-D batch (in a
                multi-vector collection: one 2-D set of vectors, or a list of them).
            k: hits per query (fewer only if fewer items exist or match).
            offset: skip this many best hits first, for paging (``offset=10, k=10`` is the
                second page of ten).
            where: a metadata filter (:mod:`simsearch.filters`), applied before ranking:
                when at least ``k`` items match, ``k`` come back.
            ef, nprobe, rescore: an HNSW beam, IVFPQ lists to visit, and candidates per
                hit a quantized index rescores (default: the index's own).
            exact: search every vector exactly even with an approximate index.
            min_relevance: keep only hits at least this relevant (needs :meth:`calibrate`,
                else :class:`~simsearch.NotCalibratedError`); calibrated hits carry it.
            cutoff: ``"f1"`` keeps per query the hits with the best expected F1 (needs a
                calibration fitted from judgements).
            hubness: ``"csls"``, ``"qbnorm"`` or ``"dbnorm"`` reorders the nearest
                candidates by a hubness-corrected score (:mod:`simsearch.scoring.hubness`;
                needs :meth:`set_hubness_bank`); hits keep their raw ``score``.
            mode, fusion, alpha: ``"dense"``, ``"lexical"`` (BM25 of texts) or ``"hybrid"``
                fused by ``"convex"`` (dense weight ``alpha``; default :meth:`tune_hybrid`'s)
                or ``"rrf"`` (:mod:`simsearch.search.hybrid`); hits carry both side scores.
            candidates: a multi-vector collection's MaxSim rerank depth (of FDE candidates,
                :mod:`simsearch.search.late`); ``exact=True`` scores every item by MaxSim.
            where_text: ``{"$contains": w}``, ``{"$not_contains": w}`` (:mod:`.index.text_filter`).

        Returns:
            :class:`~simsearch.Results`, a row of hits per query, higher scores better.
        """
        self._check_open()
        request = SearchRequest.build(
            k=k, where=where, offset=offset, ef=ef, nprobe=nprobe, rescore=rescore, exact=exact,
            min_relevance=min_relevance, cutoff=cutoff, hubness=hubness, mode=mode,
            fusion=fusion, alpha=alpha, candidates=candidates, where_text=where_text,
        )  # fmt: skip
        return self._searcher.search(query, request, progress)

    def optimize(self) -> None:
        """Rebuild an approximate index without its deleted entries, and save it (a graph
        with none deleted is kept; a quantized index is retrained). Indexes also rebuild
        themselves in the background once a quarter is deleted or a quantized one has
        outgrown its training sample; this waits for such a rebuild."""
        self._check_open()
        with self._store.snapshot() as snap:
            self._keeper.optimize(snap)

    # -- payload indexes (see simsearch.index.field_set) ------------------------------------
    def index_field(self, field: str, kind: str, *, window: bool = False) -> bool:
        """Index the metadata ``field`` (a filter path) so filters on it are answered without
        scanning: ``kind`` is ``keyword``, ``integer``, ``float``, ``bool`` or ``datetime``.
        Built now, then kept current by every write; ``False`` if it was indexed already.

        >>> import tempfile, simsearch
        >>> with simsearch.Collection.open(tempfile.mkdtemp(), metric="dot") as col:
        ...     col.add(["a", "b"], vectors=[[1, 0], [0, 1]], metadata=[{"n": 1}, {"n": 2}])
        ...     col.index_field("n", "integer")
        ...     col.explain(where={"n": {"$gte": 2}})["filter"]["from"]
        True
        'payload index'
        """
        self._check_open()
        return declare_field_index(self._store, self._keeper, FieldIndexSpec(field, kind, window))

    def drop_field_index(self, field: str) -> bool:
        """Drop the payload index of ``field``; ``False`` if it had none. Filters on it are
        then answered by scanning, with the same results."""
        self._check_open()
        return drop_field_index(self._store, field)

    def explain(self, *, where: Any = None, exact: bool = False) -> dict[str, Any]:
        """How a search with ``where`` runs now and why: the index, the live items, the
        rows the filter allows and where they came from (``payload index``, ``scan``,
        ``cache``), and the plan (``exact`` or ``graph``) with its reason."""
        self._check_open()
        return explain_filter(self._store, self._keeper, where, exact)
