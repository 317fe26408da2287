"""The step every ``add`` and ``upsert`` ends with, single- or multi-vector.

Inside the write's transaction: the encoder that made the vectors joins the config (or
is refused when the collection already holds another model's vectors), then the rows go
in. ``add`` takes new ids only (one existing id refuses the whole batch, so nothing is
written); ``upsert`` replaces existing rows in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from simsearch.config import CollectionConfig, EncoderSpec
from simsearch.embedding import check_compatible
from simsearch.store.writes import WriteTxn
from simsearch.types import FloatArray
from simsearch.validation import duplicate_ids

__all__ = ["commit_rows"]


def commit_rows(
    txn: WriteTxn,
    config: CollectionConfig,
    encoder_spec: EncoderSpec | None,
    ids: Sequence[str],
    vectors: FloatArray,
    texts: Sequence[str | None],
    metadata: Sequence[str],
    *,
    replace_existing: bool,
) -> CollectionConfig:
    """Write the rows; return ``config`` with the encoder recorded if it was new."""
    if encoder_spec is not None:
        check_compatible(config, encoder_spec)
        if config.encoder is None:
            config = replace(config, encoder=encoder_spec)
    if replace_existing:
        txn.upsert(ids, vectors, texts, metadata)
    else:
        existing = txn.insert(ids, vectors, texts, metadata)
        if existing:
            raise duplicate_ids(existing)
    return config
