"""Model upgrades of a collection: start one (a map fitted on a sample), fill in the new
model's vectors (the backfill), and finish it by swapping them in.

:class:`Upgrades` carries out ``Collection.migrate``, ``migrate_vectors``,
``backfill`` and ``backfill_vectors`` on the parts it is handed (the store, the
index keeper, the embedder); the upgrade in progress is saved beside the data
under ``MIGRATION_KEY`` and read once per revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import numpy as np

from simsearch.config import check_index_fits
from simsearch.embedding import AUTO_PROGRESS_MIN, Embedder, Progress, encode, resolve_encoder, spec
from simsearch.encoders import Encoder, ProgressCallback
from simsearch.errors import ConfigMismatchError, InvalidArgumentError
from simsearch.index.base import Int64Array
from simsearch.index.keeper import IndexKeeper
from simsearch.multivector.refuse import refuse_multivector
from simsearch.scoring.hubness import HUBNESS_KEY
from simsearch.scoring.relevance import CALIBRATION_KEY
from simsearch.store import SQLiteStore
from simsearch.store.reads import ReadTxn, StoreState, require_all
from simsearch.store.saved import Saved
from simsearch.upgrade.compat import Migration, fit_map, migration_encoder
from simsearch.validation import as_vector_batch, check_ids

__all__ = ["MIGRATION_KEY", "Upgrades", "rows_of"]

#: Where a model upgrade in progress (target encoder and map) is saved.
MIGRATION_KEY = "migration"


def rows_of(snap: ReadTxn, ids: list[str]) -> Int64Array:
    """The rows of ``ids``, in their order; a missing id raises ItemNotFoundError."""
    found = snap.row_by_id(ids)
    require_all(ids, found)
    return np.array([found[i] for i in ids], dtype=np.int64)


def sample_rows(live: Int64Array, sample: int, seed: int) -> Int64Array:
    # A prefix of one permutation: a larger sample with the same seed holds a smaller one,
    # so migrating again reuses the vectors already embedded.
    return np.sort(np.random.default_rng(seed).permutation(live)[:sample])


class Upgrades:
    """The model upgrade of one collection."""

    def __init__(self, store: SQLiteStore, keeper: IndexKeeper, embedder: Embedder) -> None:
        self._store = store
        self._keeper = keeper
        self._embedder = embedder
        self.saved: Saved[Migration] = Saved(MIGRATION_KEY, Migration.from_text)

    def current(self, snap: ReadTxn, state: StoreState) -> Migration | None:
        return self.saved.get(snap, state)

    def summary(self, snap: ReadTxn, state: StoreState) -> dict[str, Any] | None:
        """The upgrade in progress as ``info()`` shows it: where to, the map, how many items
        still lack a new vector; ``None`` when none runs."""
        current = self.current(snap, state)
        if current is None:
            return None
        return {
            "to": current.to.name if current.to else None,
            "dim": current.dim,
            "method": current.mapping.method,
            "held_out_recall": current.mapping.held_out_recall,
            "blend": current.blend if current.to is not None else None,
            "remaining": snap.count_without_pending(),
        }

    def current_now(self) -> Migration | None:
        with self._store.snapshot() as snap:
            return self.current(snap, snap.state())

    # -- to a new encoder ------------------------------------------------------------------------
    def migrate(
        self,
        new_encoder: str | Encoder,
        *,
        sample: int,
        method: str,
        blend: float,
        seed: int,
        progress: Progress | None,
    ) -> dict[str, Any]:
        encoder = resolve_encoder(new_encoder)
        assert encoder is not None
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 10:
            raise InvalidArgumentError(f"sample must be an integer of at least 10, got {sample!r}")
        if (
            isinstance(blend, bool)
            or not isinstance(blend, int | float)
            or not 0.0 <= float(blend) <= 1.0
        ):
            raise InvalidArgumentError(f"blend must be a number in [0, 1], got {blend!r}")
        new_spec = spec(encoder)
        with self._store.snapshot() as snap:
            with self._keeper.reading(snap) as pinned:
                config = pinned.config
                refuse_multivector(config, "a model upgrade")
                if config.encoder is None or config.dim is None or pinned.index is None:
                    raise InvalidArgumentError(
                        "only a collection embedded from texts can be migrated to a new "
                        "encoder; a collection of your own vectors migrates with "
                        "migrate_vectors()"
                    )
                live = pinned.index.live_rows()
            if new_spec == config.encoder:
                raise InvalidArgumentError(f"the collection already uses {encoder.name}")
            if snap.count_without_text():
                raise InvalidArgumentError(
                    f"{snap.count_without_text()} items have no stored text and cannot be "
                    "re-embedded; migrate them with migrate_vectors()"
                )
            earlier = snap.read_meta(MIGRATION_KEY)
            # Vectors embedded for an earlier upgrade to the same encoder are still good.
            reuse = earlier is not None and Migration.from_text(earlier).to == new_spec
            picked = sample_rows(live, sample, seed)
            described = snap.describe_rows(picked.tolist())
            pending = snap.pending_of_rows(picked.tolist(), new_spec.dim)
            old = snap.vectors_of_rows(picked, config.dim)
        texts = [str(described[r][1]) for r in picked.tolist()]
        seqs = [pending[r][0] for r in picked.tolist()]
        known = [pending[r][1] if reuse else None for r in picked.tolist()]
        todo = [i for i, v in enumerate(known) if v is None]
        new = np.empty((len(picked), new_spec.dim), dtype=np.float32)
        for i, vector in enumerate(known):
            if vector is not None:
                new[i] = vector
        if todo:
            new[todo] = encode(encoder, [texts[i] for i in todo], "passage", progress)
        mapping = fit_map(new, old, method=method, seed=seed)
        migration = Migration.new(new_spec, mapping, float(blend))
        with self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != earlier:
                raise ConfigMismatchError("another model upgrade started meanwhile; run again")
            if earlier is not None and not reuse:
                txn.clear_pending()  # an earlier upgrade to another encoder is abandoned
            txn.save_meta(MIGRATION_KEY, migration.text)
            # Kept only for items not rewritten since the snapshot; backfill embeds the rest.
            txn.save_pending(picked.tolist(), seqs, new)
        return {
            "to": encoder.name,
            "method": mapping.method,
            "held_out_recall": mapping.held_out_recall,
            "blend": float(blend),
            "sample": len(picked),
            "embedded": len(todo),
        }

    def backfill(self, *, batch: int, progress: Progress | None) -> int:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
        migration = self.current_now()
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
                    with self._store.write() as txn:
                        if txn.read_meta(MIGRATION_KEY) != migration.text:
                            raise ConfigMismatchError("the model upgrade changed during backfill")
                        txn.save_pending([r for r, _, _ in todo], [q for _, q, _ in todo], vectors)
                    done += len(todo)
                    if advance is not None:
                        advance(len(todo))
                    continue
                try:
                    self._finish(migration)
                except RuntimeError:
                    continue  # items were written meanwhile: embed those too
                return done

    # -- from the user's own vectors ---------------------------------------------------------------
    def migrate_vectors(
        self, ids: Sequence[str], vectors: Any, *, method: str, seed: int
    ) -> dict[str, Any]:
        id_list = check_ids(ids)
        new = as_vector_batch(vectors, None)
        if len(new) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(new)} vectors")
        with self._store.snapshot() as snap:
            with self._keeper.reading(snap) as pinned:
                config = pinned.config
                refuse_multivector(config, "a model upgrade")
                if config.dim is None or pinned.index is None or len(pinned.index) == 0:
                    raise InvalidArgumentError(
                        "the collection is empty: there is nothing to migrate"
                    )
            earlier = snap.read_meta(MIGRATION_KEY)
            rows = rows_of(snap, id_list)
            order = np.argsort(rows, kind="stable")
            old = np.empty((len(rows), config.dim), dtype=np.float32)
            old[order] = snap.vectors_of_rows(rows[order], config.dim)
        mapping = fit_map(new, old, method=method, seed=seed)
        migration = Migration.new(None, mapping)
        with self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != earlier:
                raise ConfigMismatchError("another model upgrade started meanwhile; run again")
            txn.clear_pending()  # vectors from an earlier upgrade may come from another model
            txn.save_meta(MIGRATION_KEY, migration.text)
            txn.save_pending_for_ids(id_list, new)
        return {
            "to": None,
            "dim": migration.dim,
            "method": mapping.method,
            "held_out_recall": mapping.held_out_recall,
            "sample": len(id_list),
        }

    def backfill_vectors(self, ids: Sequence[str], vectors: Any) -> int:
        id_list = check_ids(ids)
        migration = self.current_now()
        if migration is None or migration.to is not None:
            raise InvalidArgumentError(
                "no upgrade from your own vectors is in progress; call migrate_vectors() first"
            )
        new = as_vector_batch(vectors, migration.dim)
        if len(new) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(new)} vectors")
        with self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != migration.text:
                raise ConfigMismatchError("the model upgrade changed meanwhile")
            rows_of(txn, id_list)  # every id must exist
            txn.save_pending_for_ids(id_list, new)
            left = txn.count_without_pending()
        if left == 0:
            try:
                self._finish(migration)
            except RuntimeError:  # items were written meanwhile without a new vector
                with self._store.snapshot() as snap:
                    return snap.count_without_pending()
        return left

    def _finish(self, migration: Migration) -> None:
        """Swap in the new vectors, make the new encoder the collection's, drop the map and
        everything fitted in the old space (calibration, hubness banks)."""
        with self._store.write() as txn:
            if txn.read_meta(MIGRATION_KEY) != migration.text:
                raise ConfigMismatchError("the model upgrade changed during backfill")
            config = txn.config()
            txn.swap_in_pending()
            config = replace(config, encoder=migration.to, dim=migration.dim)
            check_index_fits(config.index, migration.dim)
            txn.save_config(config)
            for key in (MIGRATION_KEY, CALIBRATION_KEY, HUBNESS_KEY):
                txn.save_meta(key, None)
        self._embedder.forget()
