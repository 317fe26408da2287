"""What a collection is made of, and its life: the parts a :class:`~simsearch.Collection`
hands work to (store, index keeper, embedder, upgrades, calibration, hubness bank, search
pipeline), built once when it opens and released when it closes. The facade's methods are
grouped by concern over these parts: :mod:`simsearch.collection` (data and search),
:mod:`simsearch.collection_scoring` and :mod:`simsearch.collection_upgrades`.
"""

from __future__ import annotations

from pathlib import Path

from simsearch.config import CollectionConfig
from simsearch.embedding import Embedder
from simsearch.encoders import Encoder
from simsearch.errors import CollectionClosedError, SimsearchError
from simsearch.index.keeper import IndexKeeper
from simsearch.scoring.hubness import HubnessBank
from simsearch.scoring.relevance import CalibrationState
from simsearch.search.runner import Searcher
from simsearch.store import SQLiteStore
from simsearch.upgrade.migration import Upgrades

__all__ = ["CollectionParts"]


class CollectionParts:
    """The parts of one open collection and their life (open, close, the saved config)."""

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

    def close(self) -> None:
        """Bring a graph or quantized index up to date and save it (the next open loads
        it), then release the database; later calls raise ``CollectionClosedError``."""
        if self._closed:
            return
        try:
            config = self.config
        except SimsearchError:  # a damaged config: close all the same
            config = self._last_config
        self._closed = True
        try:
            self._keeper.close(config)
        finally:
            self._store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionClosedError(f"the collection at {self.path} is closed")

    @property
    def config(self) -> CollectionConfig:
        """The saved configuration (metric, dimension, encoder, index)."""
        if self._closed:
            return self._last_config
        with self._store.snapshot() as snap:
            self._last_config = snap.config()
        return self._last_config
