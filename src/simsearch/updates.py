"""Partial updates: change only the metadata, text or vector of items that exist.

An update is one store transaction through the same write path as ``upsert``: the
items' sequence number moves, so the vector index, the filter cache and the described
hits catch up with it like with any write. What is not given stays as stored.

A new text without a vector is embedded again when the collection has an encoder (its
vector follows its text, as with ``upsert``); in a collection that has only ever been
given vectors there is nothing to embed with, and the text changes alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.embedding import Embedder, Progress
from simsearch.errors import (
    ConfigMismatchError,
    DimensionMismatchError,
    InvalidArgumentError,
)
from simsearch.store import SQLiteStore
from simsearch.store.reads import require_all
from simsearch.types import FloatArray, parse_stored_metadata
from simsearch.upgrade.migration import MIGRATION_KEY, Upgrades
from simsearch.validation import (
    as_vector_batch,
    check_ids,
    check_metadata,
    check_texts,
    metadata_json,
)

__all__ = ["checked_update", "update_items"]

_UPGRADING = (
    "a model upgrade is in progress: change texts or vectors with upsert (which embeds them "
    "for both models) or after the backfill; metadata can be updated meanwhile"
)


def checked_update(
    ids: Any, metadata: Any, merge: Any, texts: Any, vectors: Any, dim: int | None
) -> tuple[list[str], list[Any] | None, list[str] | None, FloatArray | None]:
    """The arguments of an ``update`` checked (vectors against ``dim`` when known): the
    ids, metadata patches, texts and vectors, each ``None`` when not given."""
    id_list = check_ids(ids)
    n = len(id_list)
    if metadata is None and texts is None and vectors is None:
        raise InvalidArgumentError("give metadata, texts or vectors to change")
    if not isinstance(merge, bool):
        raise InvalidArgumentError(f"merge must be true or false, got {merge!r}")
    patches = check_metadata(metadata, n) if metadata is not None else None
    text_list = check_texts(texts, n) if texts is not None else None
    given: FloatArray | None = None
    if vectors is not None:
        given = as_vector_batch(vectors, dim)
        if len(given) != n:
            raise InvalidArgumentError(f"got {n} ids but {len(given)} vectors")
    return id_list, patches, text_list, given


def update_items(
    store: SQLiteStore,
    embedder: Embedder,
    upgrades: Upgrades,
    ids: Any,
    *,
    metadata: Any,
    merge: Any,
    texts: Any,
    vectors: Any,
    progress: Progress | None,
) -> int:
    """Change what is given of the existing items ``ids``, all in one transaction; a
    missing id raises :class:`~simsearch.ItemNotFoundError` and nothing is written.
    Returns how many items were updated."""
    id_list, patches, text_list, given = checked_update(ids, metadata, merge, texts, vectors, None)
    n = len(id_list)
    with store.snapshot() as snap:
        state = snap.state()
        config = snap.config(state)
        upgrading = upgrades.current(snap, state) is not None
    if config.multivector is not None and (given is not None or text_list is not None):
        raise InvalidArgumentError(
            "update() changes the metadata of a multi-vector collection's items; to change "
            "their sets or texts, upsert them whole (multivectors=... or texts=...)"
        )
    if upgrading and (given is not None or text_list is not None):
        raise InvalidArgumentError(_UPGRADING)
    embedded: FloatArray | None = None
    if text_list is not None and given is None and config.encoder is not None:
        embedded = embedder.embed(config, None, text_list, "passage", progress)[0]
    with store.write() as txn:
        now = txn.config()
        if (given is not None or text_list is not None) and txn.read_meta(MIGRATION_KEY):
            raise ConfigMismatchError(_UPGRADING)
        if embedded is not None and now.encoder != config.encoder:
            raise ConfigMismatchError(
                "the collection's encoder changed while this update was prepared; update again"
            )
        if given is not None and now.dim is not None and given.shape[1] != now.dim:
            raise DimensionMismatchError(
                f"vectors have dimension {given.shape[1]}, the collection holds {now.dim}-d vectors"
            )
        found = txn.get(id_list, now.dim) if now.dim is not None else {}
        require_all(id_list, found)
        stored = [found[i] for i in id_list]
        if given is not None:
            new_vectors = given
        elif embedded is not None:
            new_vectors = embedded
        else:
            new_vectors = np.stack([s.vector for s in stored])
        new_texts = list(text_list) if text_list is not None else [s.text for s in stored]
        if patches is None:
            metas = [s.metadata_json for s in stored]
        else:
            merged = [
                {**parse_stored_metadata(s.metadata_json, s.id), **patch} if merge else patch
                for s, patch in zip(stored, patches, strict=True)
            ]
            metas = metadata_json(merged, n)  # the merged objects obey the limits too
        if upgrading:  # metadata only: each item's vector from the new model stays valid
            txn.carry_pending([s.row for s in stored])
        txn.upsert(id_list, new_vectors, new_texts, metas)
    return n
