"""A collection's scoring methods (:mod:`simsearch.scoring`): calibrated relevance, the
hybrid weight, hubness banks and reports, and near-duplicate mining."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from simsearch import fitting
from simsearch.collection_parts import CollectionParts
from simsearch.embedding import Progress
from simsearch.errors import InvalidArgumentError
from simsearch.multivector.refuse import refuse_multivector
from simsearch.scoring.duplicates import DEFAULT_K, DuplicatePair, find_pairs
from simsearch.scoring.hybrid_calibration import HYBRID_CALIBRATION_KEY
from simsearch.scoring.relevance import CALIBRATION_KEY
from simsearch.tuning import calibrate_hybrid_of, check_tuning, tune_hybrid
from simsearch.types import Item

__all__ = ["ScoringMethods"]


class ScoringMethods(CollectionParts):
    """:class:`~simsearch.Collection`'s scoring methods."""

    def tune_hybrid(
        self, queries: Sequence[str], judgements: Sequence[Any], *, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Choose and save the dense weight ``alpha`` of convex hybrid search with the best
        nDCG@10 on judged text ``queries`` (``judgements`` as :meth:`calibrate` takes them;
        :mod:`simsearch.tuning`). Returns it and the nDCG@10 of hybrid, dense and lexical."""
        self._check_open()
        texts = check_tuning(queries, judgements)
        vectors = self._searcher.query_vectors(texts, progress)
        return tune_hybrid(self._store, self._keeper, texts, vectors, judgements)

    def set_hubness_bank(
        self, queries: Any = None, *, gallery_sample: int = 1000, seed: int = 0
    ) -> None:
        """Save a bank of typical queries (texts or vectors) for ``search(hubness=...)``
        and ``gallery_sample`` random items as DBNorm's gallery bank; with no ``queries``,
        those items stand in for them (each left out of its own term)."""
        self._check_open()
        fitting.refuse_l2(self.config, "hubness reduction works on cosine and dot collections")
        given = None if queries is None else self._searcher.query_vectors(queries, None)
        fitting.set_hubness_bank(self._store, self._keeper, given, gallery_sample, seed)

    def hubness_report(
        self, *, k: int = 10, queries: Any = None, top: int = 10, sample: int = 1000
    ) -> dict[str, Any]:
        """The k-occurrence skewness (0: no hubness) and ``top`` hubs of the top-k lists of
        ``queries`` (default: a ``sample`` of the items, each left out of its own list),
        per method that can run (``none``; the others once a bank is set)."""
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
        mode: str = "dense",
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Fit and save how raw scores map to relevance: from ``queries`` and their
        ``judgements`` (relevant ids per query: a set, list, or dict of id to grade > 0) a
        model of the probability of relevance chosen by cross-validation among nested ones
        (:mod:`simsearch.scoring.calibration_fit`); with neither, relevance against each
        query's own score distribution (:mod:`simsearch.scoring.calibration`). Returns what
        was fitted and its cross-validated F1 and calibration error beside the global
        baselines; ``threshold`` is the F1-best ``min_relevance``. ``mode="hybrid"`` fits
        hybrid search's fused score (:mod:`simsearch.scoring.hybrid_calibration`)."""
        self._check_open()
        if (queries is None) != (judgements is None):
            raise InvalidArgumentError("give queries and judgements together, or neither")
        if mode != "dense":
            return calibrate_hybrid_of(self._keeper, self._searcher, mode, queries, judgements)
        fitting.refuse_l2(self.config, "calibration works on cosine and dot collections, not l2")
        given = None if queries is None else self._searcher.query_vectors(queries, progress)
        return fitting.calibrate(self._store, self._keeper, given, judgements)

    def calibration(self) -> dict[str, Any] | None:
        """The calibration in force: what :meth:`calibrate` returned, or ``None``."""
        self._check_open()
        return self._calibration.summary(self._store)

    def uncalibrate(self) -> None:
        """Remove the saved calibration; hits carry no relevance afterwards."""
        self._check_open()
        with self._store.write() as txn:
            txn.save_meta(CALIBRATION_KEY, None)
            txn.save_meta(HYBRID_CALIBRATION_KEY, None)

    def find_duplicates(
        self,
        *,
        k: int = DEFAULT_K,
        margin: str = "ratio",
        min_margin: float | None = None,
        candidates: int = DEFAULT_K,
    ) -> list[DuplicatePair]:
        """Near-duplicate pairs, best margin first: each pair's similarity against how
        similar each side is to its own ``k`` nearest neighbours (see
        :mod:`simsearch.scoring.duplicates`); pairs below ``min_margin`` are dropped.
        Exact, so it suits collections up to a few hundred thousand items."""
        self._check_open()
        refuse_multivector(self.config, "find_duplicates")
        return find_pairs(
            self._every_item(), self.config.metric, k=k, margin=margin,
            min_margin=min_margin, candidates=candidates,
        )  # fmt: skip

    def _every_item(self) -> Iterator[Item]:
        """Every item, as of one snapshot (what duplicate mining scans)."""
        with self._store.snapshot() as snap:
            yield from snap.iter_items(1000)
