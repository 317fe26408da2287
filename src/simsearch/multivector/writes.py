"""Writes of multi-vector items: check or embed the sets, encode them, one transaction.

Each item's row holds its fixed-dimensional encoding as its vector (what the index
holds) and, in the same transaction, its packed token vectors (what MaxSim reads).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from simsearch.embedding import Embedder, Progress, check_compatible, encode_sets, spec
from simsearch.errors import DimensionMismatchError, InvalidArgumentError
from simsearch.multivector.fde import fde_encoder
from simsearch.multivector.tokens import as_token_sets, pack, prepare
from simsearch.rows import commit_rows
from simsearch.store import SQLiteStore

__all__ = ["write_sets"]


def write_sets(
    store: SQLiteStore,
    embedder: Embedder,
    ids: list[str],
    multivectors: Any,
    texts: list[str] | None,
    metadata: list[str],
    progress: Progress | None,
    *,
    replace_existing: bool,
) -> None:
    """``add`` or ``upsert`` multi-vector items: the sets given, or the texts' token sets
    from the collection's token encoder. All of the batch or nothing."""
    with store.snapshot() as snap:
        config = snap.config()
    multi = config.multivector
    if multi is None:
        raise InvalidArgumentError(
            "the collection holds one vector per item: give vectors=..., or open a new "
            "collection with multivector=True for sets of vectors"
        )
    encoder_spec = None
    if multivectors is not None:
        sets = as_token_sets(multivectors, len(ids), multi.dim)
    elif texts is not None:
        encoder = embedder.token_encoder(config)
        encoder_spec = spec(encoder)
        check_compatible(config, encoder_spec)
        sets = encode_sets(encoder, texts, "passage", progress)
    else:
        raise InvalidArgumentError(
            "give multivectors (one 2-D array per id), texts, or both (to change only the "
            "metadata of stored items, use update(ids, metadata=...))"
        )
    sets = prepare(sets, multi.cosine)
    dim = sets[0].shape[1]
    encodings = fde_encoder(multi, dim).documents(sets)
    blobs = [pack(s, multi.storage) for s in sets]
    counts = [len(s) for s in sets]
    stored_texts: list[str | None] = list(texts) if texts is not None else [None] * len(ids)
    with store.write() as txn:
        config = txn.config()
        new_config = config
        saved = config.multivector
        assert saved is not None  # fixed when the collection was made
        if saved.dim is None:
            new_config = replace(config, multivector=replace(saved, dim=dim))
        elif saved.dim != dim:
            raise DimensionMismatchError(
                f"multivectors have dimension {dim}, the collection holds {saved.dim}-d vectors"
            )
        new_config = commit_rows(
            txn,
            new_config,
            encoder_spec,
            ids,
            encodings,
            stored_texts,
            metadata,
            replace_existing=replace_existing,
        )
        txn.save_tokens(ids, counts, blobs)
        if new_config != config:
            txn.save_config(new_config)
