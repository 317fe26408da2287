"""Fitting a collection's scoring from its own data: the hubness banks, the hubness report,
and the calibration (each saved beside the data, see :mod:`simsearch.scoring.relevance` and
:mod:`simsearch.scoring.hubness`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.config import CollectionConfig
from simsearch.errors import DimensionMismatchError, InvalidArgumentError
from simsearch.index.flat import normalize
from simsearch.index.keeper import IndexKeeper
from simsearch.multivector.refuse import refuse_multivector
from simsearch.scoring.calibration import MAX_DEPTH, Calibrator
from simsearch.scoring.calibration_fit import fit_calibrator, judged_of
from simsearch.scoring.hubness import HUBNESS_KEY, METHODS, banks_to_text, k_occurrence_skewness
from simsearch.scoring.relevance import CALIBRATION_KEY, background_of, relevant_ids
from simsearch.search.request import DEFAULT_KNOBS, SearchRequest
from simsearch.search.runner import InCollectionSpace, Searcher
from simsearch.search.stages import SearchContext
from simsearch.store import SQLiteStore
from simsearch.types import FloatArray, Metric
from simsearch.upgrade.migration import sample_rows
from simsearch.validation import check_k

__all__ = ["calibrate", "hubness_report", "refuse_l2", "set_hubness_bank"]


def refuse_l2(config: CollectionConfig, message: str) -> None:
    """Raise ``message`` for an l2 collection (the scoring models assume similarities)."""
    if config.metric is Metric.L2:
        raise InvalidArgumentError(message)


def set_hubness_bank(
    store: SQLiteStore,
    keeper: IndexKeeper,
    queries: FloatArray | None,
    gallery_sample: int,
    seed: int,
) -> None:
    """Save ``queries`` (in the index's space; ``None``: the gallery sample) as the query
    bank and a random sample of ``gallery_sample`` items as the gallery bank."""
    if isinstance(gallery_sample, bool) or not isinstance(gallery_sample, int):
        raise InvalidArgumentError(f"gallery_sample must be an integer, got {gallery_sample!r}")
    if gallery_sample < 1:
        raise InvalidArgumentError(f"gallery_sample must be positive, got {gallery_sample}")
    with store.snapshot() as snap:
        with keeper.reading(snap) as pinned:
            config = pinned.config
            refuse_multivector(config, "hubness reduction")
            if config.metric is Metric.L2:
                raise InvalidArgumentError("hubness reduction works on cosine and dot collections")
            if config.dim is None or pinned.index is None or len(pinned.index) == 0:
                raise InvalidArgumentError("the collection is empty: add items first")
            rows = pinned.index.live_rows()
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(rows, min(gallery_sample, len(rows)), replace=False))
        gallery = snap.vectors_of_rows(picked, config.dim)
    if config.metric is Metric.COSINE:
        gallery = normalize(gallery)
        queries = None if queries is None else normalize(queries)
    text = banks_to_text(gallery if queries is None else queries, gallery)
    with store.write() as txn:
        txn.save_meta(HUBNESS_KEY, text)


def hubness_report(
    store: SQLiteStore,
    keeper: IndexKeeper,
    searcher: Searcher,
    *,
    k: Any,
    queries: FloatArray | None,
    top: int,
    sample: Any,
) -> dict[str, Any]:
    """The k-occurrence skewness and top hubs per method (see ``Collection.hubness_report``);
    ``queries`` are in the index's space already, or ``None`` for a sample of the items."""
    k = check_k(k)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidArgumentError(f"sample must be a positive integer, got {sample!r}")
    themselves: list[str | None] | None = None
    with store.snapshot() as snap:
        with keeper.reading(snap) as pinned:
            config = pinned.config
            refuse_multivector(config, "a hubness report")
            if config.dim is None or pinned.index is None or len(pinned.index) == 0:
                raise InvalidArgumentError("the collection is empty")
            live = pinned.index.live_rows()
        has_bank = snap.read_meta(HUBNESS_KEY) is not None
        if queries is None:
            rows = sample_rows(live, sample, 0)
            queries = snap.vectors_of_rows(rows, int(config.dim))
            described = snap.describe_rows(rows.tolist())
            themselves = [described[r][0] for r in rows.tolist()]
    report: dict[str, Any] = {"k": k, "queries": len(queries), "methods": {}}
    for method in METHODS if has_bank else ("none",):
        # An item asked as a query is left out of its own list.
        request = SearchRequest.build(k=k + (themselves is not None), hubness=method)
        res = searcher.search(InCollectionSpace(queries), request, None)
        own = themselves or [None] * len(queries)
        ids = [
            h.id
            for row, me in zip(res, own, strict=True)
            for h in [h for h in row if h.id != me][:k]
        ]
        counts: dict[str, int] = {}
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
        # Each search reads its own snapshot: writes in between may add or remove items.
        with store.snapshot() as snap:
            population = max(snap.count(), len(counts))
        skewness = k_occurrence_skewness(list(counts.values()), population)
        hubs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        report["methods"][method] = {"skewness": skewness, "top_hubs": hubs}
    return report


def calibrate(
    store: SQLiteStore,
    keeper: IndexKeeper,
    queries: FloatArray | None,
    judgements: Sequence[Any] | None,
) -> dict[str, Any]:
    """Fit and save the calibration (see ``Collection.calibrate``); ``queries`` are in the
    index's space already."""
    relevant: list[set[str]] = []
    if queries is not None and judgements is not None:
        if isinstance(judgements, str | bytes) or not isinstance(judgements, Sequence):
            raise InvalidArgumentError("judgements must be a list with one entry per query")
        if len(judgements) != len(queries):
            raise InvalidArgumentError(
                f"got {len(queries)} queries but {len(judgements)} judgements"
            )
        relevant = [relevant_ids(j) for j in judgements]
    with store.snapshot() as snap, keeper.reading(snap) as pinned:
        config = pinned.config
        refuse_multivector(config, "calibration")
        if config.dim is None or pinned.index is None or len(pinned.index) < 2:
            raise InvalidArgumentError("calibration needs a collection of at least 2 items")
        background = background_of(snap, pinned.index, config)
        if queries is None:
            calibrator = Calibrator(kind="background", background=background)
            summary: dict[str, Any] = {"kind": "background"}
        else:
            if queries.shape[1] != config.dim:
                raise DimensionMismatchError(
                    f"query vectors have dimension {queries.shape[1]}, the collection "
                    f"holds {config.dim}-d vectors"
                )
            ctx = SearchContext(snap, pinned.index, config, None, DEFAULT_KNOBS, False)
            # As deep as the judged relevant items may reach: the fit keeps what it needs.
            ranked = ctx.candidates(queries, min(MAX_DEPTH, len(pinned.index)))
            rows = ranked.rows
            described = snap.describe_rows(np.unique(rows[rows >= 0]).tolist())
            labels = np.array(
                [
                    [r >= 0 and described[r][0] in rel for r in row]
                    for row, rel in zip(rows.tolist(), relevant, strict=True)
                ],
                dtype=bool,
            )
            judged = judged_of(
                ctx.space(queries), ranked.scores, labels, [len(r) for r in relevant]
            )
            calibrator = fit_calibrator(background, judged)
            summary = calibrator.summary()
    with store.write() as txn:
        txn.save_meta(CALIBRATION_KEY, calibrator.to_json())
    return summary
