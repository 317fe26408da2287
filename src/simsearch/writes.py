"""The write path: check, embed (outside any transaction), then one store transaction.

Writes never touch the index: it catches up with them by sequence number at the
next search (see :mod:`simsearch.index.keeper`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from simsearch.config import EncoderSpec, check_index_fits
from simsearch.embedding import Embedder, Progress, spec
from simsearch.errors import (
    ConfigMismatchError,
    DimensionMismatchError,
    InvalidArgumentError,
)
from simsearch.filters import compile_filter
from simsearch.multivector.writes import write_sets
from simsearch.rows import commit_rows
from simsearch.store import SQLiteStore
from simsearch.types import FloatArray
from simsearch.upgrade.compat import Migration
from simsearch.upgrade.migration import MIGRATION_KEY, Upgrades
from simsearch.validation import (
    as_vector_batch,
    check_ids,
    check_texts,
    metadata_json,
)

__all__ = ["delete_items", "write_items"]


def write_items(
    store: SQLiteStore,
    embedder: Embedder,
    upgrades: Upgrades,
    ids: Any,
    vectors: Any,
    texts: Any,
    metadata: Any,
    progress: Progress | None,
    *,
    replace_existing: bool,
    multivectors: Any = None,
) -> None:
    """``add`` (``replace_existing=False``) or ``upsert`` one batch: all of it or nothing
    (multi-vector items through :func:`~simsearch.multivector.writes.write_sets`)."""
    id_list = check_ids(ids)
    n = len(id_list)
    text_list = check_texts(texts, n) if texts is not None else None
    metas = metadata_json(metadata, n)
    if multivectors is not None and vectors is not None:
        raise InvalidArgumentError("give vectors or multivectors, not both")
    if multivectors is not None:
        write_sets(
            store, embedder, id_list, multivectors, text_list, metas, progress,
            replace_existing=replace_existing,
        )  # fmt: skip
        return
    encoder_spec: EncoderSpec | None = None
    migration: Migration | None = None
    fresh: FloatArray | None = None  # the new model's vectors, during a model upgrade
    if vectors is not None:
        # Checked against the space the write transaction finds (an upgrade from the
        # user's vectors takes theirs as the new model's and maps them there).
        vecs = as_vector_batch(vectors, None)
        if len(vecs) != n:
            raise InvalidArgumentError(f"got {n} ids but {len(vecs)} vectors")
    elif text_list is not None:
        # Texts are embedded before the transaction, so the upgrade state is read first
        # and checked again inside it.
        with store.snapshot() as snap:
            state = snap.state()
            config = snap.config(state)
            migration = upgrades.current(snap, state)
        if config.multivector is not None:
            write_sets(
                store, embedder, id_list, None, text_list, metas, progress,
                replace_existing=replace_existing,
            )  # fmt: skip
            return
        if migration is not None and migration.to is None:
            raise InvalidArgumentError(
                "a model upgrade from your own vectors is in progress: give the new "
                "model's vectors with the texts"
            )
        vecs, fresh = embedder.embed(config, migration, text_list, "passage", progress)
        if migration is None:
            encoder_spec = spec(embedder.text_encoder(config))
    else:
        raise InvalidArgumentError(
            "give vectors, texts, or both (to change only the metadata of stored items, use "
            "update(ids, metadata=...))"
        )
    stored_texts: list[str | None] = list(text_list) if text_list else [None] * n
    with store.write() as txn:
        upgrade = txn.read_meta(MIGRATION_KEY)
        if vectors is None and upgrade != (migration.text if migration else None):
            raise ConfigMismatchError(
                "a model upgrade started or finished while this write was prepared; write again"
            )
        if vectors is not None and upgrade is not None:
            current = Migration.from_text(upgrade)
            if current.to is None:  # an upgrade from the user's vectors: map theirs
                fresh, vecs = vecs, current.map_new(vecs)
            elif text_list is None:
                raise InvalidArgumentError(
                    "a model upgrade is in progress: give texts too, so the items can be "
                    "re-embedded (vectors alone would stay in the old space)"
                )
        config = txn.config()
        if config.multivector is not None:
            raise InvalidArgumentError(
                "the collection holds sets of vectors: give multivectors=[...] (one 2-D "
                "array per id) or texts, not vectors"
            )
        new_config = config
        if new_config.dim is None:
            check_index_fits(new_config.index, vecs.shape[1])
            new_config = replace(new_config, dim=vecs.shape[1])
        elif vecs.shape[1] != new_config.dim:
            raise DimensionMismatchError(
                f"vectors have dimension {vecs.shape[1]}, the collection holds "
                f"{new_config.dim}-d vectors"
            )
        new_config = commit_rows(
            txn,
            new_config,
            encoder_spec,
            id_list,
            vecs,
            stored_texts,
            metas,
            replace_existing=replace_existing,
        )
        if fresh is not None:
            txn.save_pending_for_ids(id_list, fresh)
        if new_config != config:
            txn.save_config(new_config)


def delete_items(store: SQLiteStore, ids: Any, where: Any, everything: Any) -> int:
    """Delete by ids, by filter, or both; ``everything`` alone deletes every item."""
    if not isinstance(everything, bool):
        raise InvalidArgumentError(f"all must be true or false, got {everything!r}")
    if everything and (ids is not None or where is not None):
        raise InvalidArgumentError("all=True deletes every item: give it without ids or where")
    if ids is None and where is None and not everything:
        raise InvalidArgumentError(
            "give ids, where, or both; all=True deletes every item (delete never empties silently)"
        )
    id_list = check_ids(ids) if ids is not None else None
    flt = compile_filter(where) if where is not None else None
    if flt is not None and flt.matches_all:
        if id_list is None:
            raise InvalidArgumentError(
                "the filter matches every item: pass all=True to delete them all"
            )
        flt = None  # the ids alone decide
    with store.write() as txn:
        rows: set[int] | None = None
        if everything:
            rows = set(txn.rows_written_since(0).tolist())
        if id_list is not None:
            rows = set(txn.rows_of_ids(id_list))
        if flt is not None:
            matched = {int(r) for r in txn.filter_rows(flt)}
            rows = matched if rows is None else rows & matched
        return txn.delete_rows(sorted(rows or ()))
