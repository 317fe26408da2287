"""A collection's model upgrades (:mod:`simsearch.upgrade`): start one from a new encoder
or from vectors the user brings, and backfill the new vectors; search goes on meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simsearch.collection_parts import CollectionParts
from simsearch.embedding import Progress
from simsearch.encoders import Encoder
from simsearch.upgrade.compat import DEFAULT_BLEND

__all__ = ["UpgradeMethods"]


class UpgradeMethods(CollectionParts):
    """:class:`~simsearch.Collection`'s model-upgrade methods."""

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
        """Start a model upgrade: fit a map from ``new_encoder``'s space into the
        collection's on a ``sample`` of stored texts; search goes on at once, a text query
        blending the old encoder's vector with ``blend`` of the mapped new one, until
        :meth:`backfill` makes the new encoder the collection's own (:mod:`simsearch.upgrade`).
        Returns the method chosen and its held-out recall."""
        self._check_open()
        return self._upgrades.migrate(
            new_encoder, sample=sample, method=method, blend=blend, seed=seed, progress=progress
        )

    def backfill(self, *, batch: int = 256, progress: Progress | None = None) -> int:
        """Re-embed every stored text with the new encoder (``batch`` a transaction; a
        killed backfill resumes), then swap them in. Returns how many were embedded."""
        self._check_open()
        return self._upgrades.backfill(batch=batch, progress=progress)

    def migrate_vectors(
        self, ids: Sequence[str], vectors: Any, *, method: str = "auto", seed: int = 0
    ) -> dict[str, Any]:
        """Start a model upgrade from vectors you bring, the new model's ``vectors`` of
        the stored items ``ids`` (at least 10; a few thousand is plenty): a map fitted on
        these pairs carries every later vector you give into the collection's space, until
        :meth:`backfill_vectors` has the new vector of every item."""
        self._check_open()
        return self._upgrades.migrate_vectors(ids, vectors, method=method, seed=seed)

    def backfill_vectors(self, ids: Sequence[str], vectors: Any) -> int:
        """Give the new model's vectors of stored items (after :meth:`migrate_vectors`);
        with every item's, they are swapped in. Returns how many still lack one."""
        self._check_open()
        return self._upgrades.backfill_vectors(ids, vectors)
