"""The search pipeline, strung together: embed -> plan and candidates -> rerank -> relevance
and cuts -> describe hits -> :class:`~simsearch.Results`.

Queries are embedded before anything is read (a model can take a while). Then one
store snapshot (this thread's own connection) holds for the rest: the index is
caught up to it and pinned, so searches in other threads rank at the same time,
and the hits are described from the same snapshot the index was caught up to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.embedding import Embedder, Progress, encode_sets
from simsearch.errors import DimensionMismatchError, InvalidArgumentError, NotCalibratedError
from simsearch.index.keeper import IndexKeeper
from simsearch.multivector.tokens import as_query_sets, prepare
from simsearch.scoring.calibration import Calibrator
from simsearch.scoring.fusion import DEFAULT_ALPHA, HYBRID_KEY, parse_hybrid
from simsearch.scoring.hubness import HubnessBank, HubnessTerms
from simsearch.scoring.hybrid_calibration import HYBRID_CALIBRATION_KEY, HybridCalibration
from simsearch.scoring.relevance import CALIBRATION_KEY, CalibrationState
from simsearch.search.candidates import Ranked
from simsearch.search.hybrid import (
    Sided,
    Sides,
    check_texts,
    lexical_sided,
    matches_of,
    skipped,
    text_stage,
)  # fmt: skip
from simsearch.search.late import check_late_request, late_rank
from simsearch.search.request import SearchRequest
from simsearch.search.stages import SearchContext, cut, hubness_rerank, with_relevance
from simsearch.store import SQLiteStore
from simsearch.store.reads import ReadTxn
from simsearch.store.saved import Saved
from simsearch.types import FloatArray, Results
from simsearch.upgrade.migration import MIGRATION_KEY, Upgrades
from simsearch.validation import as_vector_batch, check_query_texts

__all__ = ["InCollectionSpace", "Searcher", "page", "query_texts", "rank_stages"]


@dataclass(frozen=True)
class InCollectionSpace:
    """Query vectors already in the space the index holds (the collection's own vectors,
    or ones already mapped), which a model upgrade must not map again."""

    vectors: FloatArray


def query_texts(query: Any) -> list[str] | None:
    """The texts of a text query (one string or a list of strings), else ``None``."""
    if type(query) is np.ndarray:  # the one-query path's vector: no ABC checks
        return None
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


def rank_stages(
    request: SearchRequest,
    ctx: SearchContext,
    queries: FloatArray,
    k: int,
    calibrator: Calibrator | None,
    hubness: Any,
) -> Ranked:
    """Candidates, then the hubness rerank, relevance and cuts the request asks for.
    ``hubness(correction, rows)`` gives the per-item hubness terms."""
    ranked = None
    if request.hubness.method != "none":
        ranked = hubness_rerank(ctx, request.hubness, hubness, queries, k)
    if calibrator is None:
        if request.wants_relevance:
            raise NotCalibratedError(
                "the collection is not calibrated, so it has no relevance values; call "
                "calibrate() first"
            )
        return ranked if ranked is not None else ctx.candidates(queries, k)
    if request.cutoff == "f1" and calibrator.kind != "fitted":
        raise NotCalibratedError(
            "cutoff='f1' needs probabilities of relevance: calibrate the collection with judgements"
        )
    ranked, expected = with_relevance(
        ctx, calibrator, queries, k, ranked, deep=request.cutoff == "f1"
    )
    if request.wants_relevance:
        f1 = calibrator if request.cutoff == "f1" else None
        ranked = cut(ranked, expected, min_relevance=request.min_relevance, f1=f1)
    return ranked


def page(ranked: Ranked, request: SearchRequest) -> Ranked:
    """The hits of ``ranked`` after the ``offset`` best, which a page skips."""
    skip = request.offset
    if not skip:
        return ranked
    relevance = None if ranked.relevance is None else ranked.relevance[:, skip:]
    return Ranked(ranked.scores[:, skip:], ranked.rows[:, skip:], relevance)


class Searcher:
    """Runs searches over the parts of one collection."""

    def __init__(
        self,
        store: SQLiteStore,
        keeper: IndexKeeper,
        embedder: Embedder,
        upgrades: Upgrades,
        calibration: CalibrationState,
        hubness: HubnessBank,
    ) -> None:
        self._store = store
        self._keeper = keeper
        self._embedder = embedder
        self._upgrades = upgrades
        self._calibration = calibration
        self._hubness = hubness
        self._alpha = Saved(HYBRID_KEY, parse_hybrid)
        self._sets: bool | None = None  # whether items are sets (fixed when a store is made)
        self._hybrid_calibration = Saved(HYBRID_CALIBRATION_KEY, HybridCalibration.from_json)

    def holds_sets(self) -> bool:
        """Whether the collection is a multi-vector one (read once: it never changes)."""
        if self._sets is None:
            config = self._store.read_config()
            if config is None:
                return False
            self._sets = config.multivector is not None
        return self._sets

    @property
    def store(self) -> SQLiteStore:
        return self._store

    def saved_alpha(self) -> float:
        """The dense weight of convex fusion in force (the tuned one, else the default)."""
        with self._store.snapshot() as snap:
            saved = self._alpha.get(snap, snap.state())
        return DEFAULT_ALPHA if saved is None else saved

    def query_vectors(self, query: Any, progress: Progress | None) -> FloatArray:
        """A query's vectors in the space the index holds now (texts embedded, a model
        upgrade's map applied to the user's vectors)."""
        if self.holds_sets():
            raise InvalidArgumentError(
                "this works on collections of one vector per item; this one holds sets of "
                "vectors (multivector=True)"
            )
        texts = query_texts(query)
        with self._store.snapshot() as snap:
            state = snap.state()
            config = snap.config(state)
            migration = self._upgrades.current(snap, state)
        if texts is not None:
            show = progress if len(texts) > 1 else False
            return self._embedder.embed(config, migration, texts, "query", show)[0]
        if migration is not None and migration.to is None:
            return migration.map_new(
                as_vector_batch(query, None, what="query vectors"), "query vectors"
            )
        return as_vector_batch(query, config.dim, what="query vectors")

    def late_search(self, query: Any, request: SearchRequest, progress: Progress | None) -> Results:
        """A multi-vector search (see :mod:`simsearch.search.late`): query sets (given, or
        the texts' token sets), FDE candidates, MaxSim."""
        check_late_request(request)
        texts = query_texts(query)
        with self._store.snapshot() as snap:
            config = snap.config()
        multi = config.multivector
        assert multi is not None
        if texts is not None:
            encoder = self._embedder.token_encoder(config)
            show = progress if len(texts) > 1 else False
            sets = encode_sets(encoder, texts, "query", show)
        else:
            sets = as_query_sets(query, multi.dim)
        sets = prepare(sets, multi.cosine)
        with self._store.snapshot() as snap, self._keeper.reading(snap, request.filter) as pinned:
            multi = pinned.config.multivector
            assert multi is not None
            if pinned.index is None or multi.dim is None:
                return Results(k=request.k, rows=[[] for _ in range(len(sets))])
            if sets[0].shape[1] != multi.dim:
                raise DimensionMismatchError(
                    f"query vectors have dimension {sets[0].shape[1]}, the collection holds "
                    f"{multi.dim}-d vectors"
                )
            k = max(1, min(request.depth, len(pinned.index)))
            ctx = SearchContext(
                snap, pinned.index, pinned.config, pinned.allowed, request.knobs, False,
                pinned.exact_flat, pinned.window,
            )  # fmt: skip
            ranked = late_rank(ctx, snap, multi, sets, k, request.candidates, request.exact)
            return self._described(snap, request, page(ranked, request), None)

    def search(self, query: Any, request: SearchRequest, progress: Progress | None) -> Results:
        if not isinstance(query, InCollectionSpace) and self.holds_sets():
            return self.late_search(query, request, progress)
        if request.candidates is not None:
            raise InvalidArgumentError(
                "candidates sets how many encodings a multi-vector collection reranks by "
                "MaxSim; this collection holds one vector per item"
            )
        in_space = isinstance(query, InCollectionSpace)
        texts = None if in_space else query_texts(query)
        embedded_for: tuple[str | None, Any] | None = None
        lexical_only = request.mode == "lexical"
        if request.mode != "dense" and texts is None:
            raise InvalidArgumentError(
                f"mode={request.mode!r} searches texts: give the query as a string or a list "
                "of strings"
            )
        if in_space:
            queries = query.vectors
        elif lexical_only:
            assert texts is not None
            queries = np.zeros((len(texts), 0), dtype=np.float32)
            quick = self._quick_lexical(texts, request)
            if quick is not None:
                return quick
        elif texts is not None:
            with self._store.snapshot() as snap:
                state = snap.state()
                config = snap.config(state)
                migration = self._upgrades.current(snap, state)
            queries = self._embedder.embed(config, migration, texts, "query", progress)[0]
            embedded_for = (migration.text if migration else None, config.encoder)
        else:  # checked against the space of the snapshot below
            queries = as_vector_batch(query, None, what="query vectors")
            quick = self._quick(queries, request)
            if quick is not None:
                return quick
        lexical = request.mode != "dense"
        with (
            self._store.snapshot() as snap,
            self._keeper.reading(
                snap, request.filter, lexical=lexical, text=request.text, progress=progress
            ) as pinned,
        ):
            state, config = pinned.state, pinned.config
            self._store.remember(snap, state)
            migration = self._upgrades.current(snap, state)
            now = (migration.text if migration else None, config.encoder)
            if texts is not None and not lexical_only and now != embedded_for:
                # A model upgrade started or finished while the queries were embedded:
                # embed them again into the space this snapshot holds.
                queries = self._embedder.embed(config, migration, texts, "query", False)[0]
            elif texts is None and not in_space and migration is not None and migration.to is None:
                # An upgrade from the user's vectors: theirs are in the new model's space.
                queries = migration.map_new(queries, "query vectors")
            if config.dim is None or pinned.index is None:
                return Results(k=request.k, rows=[[] for _ in range(len(queries))])
            if queries.shape[1] != config.dim and not lexical_only:
                raise DimensionMismatchError(
                    f"query vectors have dimension {queries.shape[1]}, the collection holds "
                    f"{config.dim}-d vectors"
                )
            index = pinned.index
            # No query can have more hits than there are items: results are sized by the
            # smaller of the two, so a huge k costs nothing.
            k = max(1, min(request.depth, len(index)))
            ctx = SearchContext(
                snap, index, config, pinned.allowed, request.knobs, request.exact,
                pinned.exact_flat, pinned.window,
            )  # fmt: skip
            calibrator = self._calibration.calibrator(snap, state, index, config)
            if calibrator is None and request.wants_relevance and request.mode == "dense":
                raise NotCalibratedError(
                    f"the collection at {self._store.collection} is not calibrated, so it has "
                    "no relevance values; call calibrate() first"
                )

            def terms(correction: HubnessTerms, rows: np.ndarray) -> np.ndarray:
                def vectors_of(part: np.ndarray) -> FloatArray:
                    return ctx.space(snap.vectors_of_rows(part, int(config.dim or 0)))

                return self._hubness.item_terms(snap, state, correction, rows, vectors_of)

            if request.mode != "dense":
                assert texts is not None
                alpha = request.alpha
                if alpha is None:
                    saved = self._alpha.get(snap, state)
                    alpha = DEFAULT_ALPHA if saved is None else saved
                assert pinned.lexical is not None
                bm25 = pinned.lexical.bm25
                sided = text_stage(ctx, snap, bm25, request, texts, queries, k, alpha)
                if request.wants_relevance:
                    sided = self._hybrid_relevance(snap, state, request, sided, alpha)
                return self._described(snap, request, sided.ranked, (sided.dense, sided.lexical))
            ranked = page(rank_stages(request, ctx, queries, k, calibrator, terms), request)
            return self._described(snap, request, ranked, None)

    def _hybrid_relevance(
        self, snap: ReadTxn, state: Any, request: SearchRequest, sided: Sided, alpha: float
    ) -> Sided:
        """The hits at least ``min_relevance`` relevant (and with ``cutoff="f1"``, at least
        the fitted F1-best probability) by the hybrid calibration, which they carry."""
        fitted = self._hybrid_calibration.get(snap, state)
        if fitted is None:
            raise NotCalibratedError(
                "the collection has no hybrid calibration, so hybrid hits have no relevance "
                "values; call calibrate(queries, judgements, mode='hybrid') first"
            )
        fitted.check(request.fusion, alpha)
        r = sided.ranked
        relevance = np.where(r.rows >= 0, fitted.relevance(r.scores), 0.0)
        least = max(request.min_relevance or 0.0, fitted.threshold if request.cutoff else 0.0)
        keep = (r.rows >= 0) & (relevance >= least)
        order = np.argsort(~keep, axis=1, kind="stable")

        def pick(a: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, order, axis=1)

        ranked = Ranked(pick(r.scores), pick(np.where(keep, r.rows, -1)), pick(relevance))
        return Sided(ranked, pick(sided.dense), pick(sided.lexical))

    def _described(
        self, snap: ReadTxn, request: SearchRequest, ranked: Ranked, sides: Sides | None
    ) -> Results:
        rows = ranked.rows
        described = snap.describe_rows(np.unique(rows[rows >= 0]).tolist())
        self._keeper.described.keep(described)  # while the index holds still
        return Results._from_search(
            request.k, ranked.scores, rows, described, ranked.relevance, sides
        )

    def _quick_lexical(self, texts: list[str], request: SearchRequest) -> Results | None:
        """A lexical search without a filter with no store read but the hits' descriptions
        missing from memory, when nothing was committed since this thread's last search and
        the indexes are at that state; else ``None`` and the snapshot path runs."""
        if request.filter is not None or request.text is not None or request.wants_relevance:
            return None
        with self._store.quick_reads() as possible:
            if not possible:
                return None
            state = self._store.quick_state()
            if state is None:
                return None
            with self._keeper.quick_lexical(state) as held:
                if held is None:
                    return None
                bm25, live = held
                matches = matches_of(bm25, texts)
                check_texts(bm25, matches, "lexical")
                k = max(1, min(request.depth, live))
                sided = skipped(lexical_sided(bm25, matches, k, None), request.offset)
                described = self._quick_described(sided.ranked.rows, state)
                if described is None:
                    return None
        sides = (sided.dense, sided.lexical)
        r = sided.ranked
        return Results._from_search(request.k, r.scores, r.rows, described, None, sides)

    def _quick_described(self, rows: np.ndarray, state: Any) -> dict[int, Any] | None:
        """The descriptions of ``rows`` from memory, the missing ones read outside a
        transaction; ``None`` when the store changed meanwhile."""
        if len(rows) == 1:  # one query's hits are distinct rows
            wanted = [r for r in rows[0].tolist() if r >= 0]
        else:
            wanted = list(dict.fromkeys(r for r in rows.ravel().tolist() if r >= 0))
        described, missing = self._keeper.described.get(wanted)
        if missing:
            # Read outside a transaction; it saw ``state`` if nothing was committed by
            # the time it returned (else the snapshot path answers instead).
            fetched = self._store.describe_now(missing)
            if self._store.quick_state() is not state or len(fetched) != len(missing):
                return None
            self._keeper.described.keep(fetched)
            described.update(fetched)
        return described

    def _quick(self, queries: FloatArray, request: SearchRequest) -> Results | None:
        if request.hubness.method != "none" or request.wants_relevance or request.text:
            return None
        store = self._store
        if not store.begin_quick():
            return None
        try:
            return self._quick_reads(queries, request)
        finally:
            store.end_quick()

    def _quick_reads(self, queries: FloatArray, request: SearchRequest) -> Results | None:
        """A plain search of the user's vectors with no store read at all, when nothing was
        committed since this thread's last search, the index is at that state, and every
        hit is described in memory; else ``None`` and the snapshot path runs. (What a
        server repeats most: the one-query-per-call path.)"""
        state = self._store.quick_state()
        if state is None or MIGRATION_KEY in state.keys or CALIBRATION_KEY in state.keys:
            return None  # an upgrade maps queries, a calibration adds relevance
        config = self._store.config_of(state)
        if config is None or config.dim != queries.shape[1]:
            return None
        pinned = self._keeper.quick_pin(state, config, request.filter)
        if pinned is None:
            return None
        try:
            index = pinned.index
            assert index is not None  # a pin is only given for an index
            k = max(1, min(request.depth, len(index)))
            ctx = SearchContext(
                None, index, config, pinned.allowed, request.knobs, request.exact,
                pinned.exact_flat, pinned.window,
            )  # fmt: skip
            ranked = page(ctx.candidates(queries, k), request)
            rows = ranked.rows
            described = self._quick_described(rows, state)  # while the index holds still
        finally:
            self._keeper.unpin()
        if described is None:
            return None
        return Results._from_search(request.k, ranked.scores, rows, described)
