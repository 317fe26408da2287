"""A collection's calibration: fitted from judgements (or the unlabelled fallback), saved
beside the data, and its score background kept current as the collection drifts.

The model itself is :mod:`simsearch.scoring.calibration`; this module holds what a
collection keeps of it: the saved calibrator, parsed once per revision, with a
background (mean and covariance of the live vectors as searched) recomputed once
the collection's size has drifted by ``BACKGROUND_DRIFT``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from simsearch.config import CollectionConfig
from simsearch.errors import InvalidArgumentError
from simsearch.index.base import VectorIndex
from simsearch.scoring.calibration import Background, Calibrator
from simsearch.store import SQLiteStore
from simsearch.store.reads import ReadTxn, StoreState
from simsearch.store.saved import Saved
from simsearch.types import Metric

__all__ = [
    "BACKGROUND_DRIFT",
    "CALIBRATION_KEY",
    "CalibrationState",
    "background_of",
    "relevant_ids",
]

#: Where the calibration is saved beside the data.
CALIBRATION_KEY = "calibration"
#: The collection's score background is recomputed once its size drifts by this share.
BACKGROUND_DRIFT = 0.10
#: Rows read from the store at a time while the background is computed.
BLOCK = 65_536


def background_of(snap: ReadTxn, index: VectorIndex, config: CollectionConfig) -> Background:
    """Mean and covariance of the live vectors as searched, read block by block."""
    dim = int(config.dim or 0)
    rows = index.live_rows()
    total = np.zeros(dim)
    outer = np.zeros((dim, dim))
    for start in range(0, len(rows), BLOCK):
        part = rows[start : start + BLOCK]
        x = snap.vectors_of_rows(part, dim).astype(np.float64)
        if config.metric is Metric.COSINE:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        total += x.sum(axis=0)
        outer += x.T @ x
    n = len(rows)
    if n < 2:
        raise InvalidArgumentError("calibration needs a collection of at least 2 items")
    mean = total / n
    cov = (outer - n * np.outer(mean, mean)) / (n - 1)
    return Background(mean=mean, cov=cov, count=n)


def relevant_ids(judgement: Any) -> set[str]:
    """The relevant ids of one query's judgements: a dict of id to grade, or ids."""
    if isinstance(judgement, dict):
        return {str(i) for i, grade in judgement.items() if grade > 0}
    if isinstance(judgement, str) or not isinstance(judgement, set | list | tuple | frozenset):
        raise InvalidArgumentError(
            "each judgement must be a set or list of relevant ids, or a dict of id to grade"
        )
    return {str(i) for i in judgement}


class CalibrationState:
    """The calibrator in force for one collection, as searches need it."""

    def __init__(self) -> None:
        self.saved: Saved[Calibrator] = Saved(CALIBRATION_KEY, Calibrator.from_json)
        # The saved calibrator with its background refreshed, and what it was refreshed from.
        self._refreshed: tuple[Calibrator, Calibrator] | None = None

    def summary(self, store: SQLiteStore) -> dict[str, Any] | None:
        """The calibration in force: its kind and, when fitted, what was fitted and its
        cross-validated F1 and calibration error against the global baselines."""
        with store.snapshot() as snap:
            calibrator = self.saved.get(snap, snap.state())
        if calibrator is None:
            return None
        return calibrator.summary()

    def calibrator(
        self, snap: ReadTxn, state: StoreState, index: VectorIndex, config: CollectionConfig
    ) -> Calibrator | None:
        """The saved calibrator, its background recomputed once the collection drifted."""
        saved = self.saved.get(snap, state)
        if saved is None:
            self._refreshed = None
            return None
        current = saved
        if self._refreshed is not None and self._refreshed[0] is saved:
            current = self._refreshed[1]
        live = len(index)
        drift = abs(live - current.background.count)
        if live >= 2 and drift > BACKGROUND_DRIFT * current.background.count:
            current = replace(current, background=background_of(snap, index, config))
            self._refreshed = (saved, current)
        return current
