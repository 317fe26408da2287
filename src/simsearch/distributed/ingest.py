"""Ingest a file or folder into a sharded collection: texts embedded by a pool of Ray
actors, items written to the shard actors.

The records are read and checked by simsearch's own readers, exactly as the
single-machine :func:`simsearch.ingest.ingest` reads them (JSONL, CSV/TSV, text lines or
a folder; ``--chunk-tokens``; ``--on-error``), in one pass before anything is written, so
a bad record is named by ``file:line`` and nothing is stored. Their texts then go into a
Ray Data dataset whose ``map_batches`` runs an actor pool: each actor loads the encoder
once and embeds batch after batch. The embedded batches stream back in file order and
are written to the shards (:meth:`ShardedCollection.add` or ``upsert``: each shard commits
its part of a batch in one transaction) while later batches are still being embedded.
Metadata never passes through Ray Data, so its JSON types stay exactly as read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.config import IndexConfig
from simsearch.distributed.placement import MANIFEST, shard_dir
from simsearch.distributed.sharded import ShardedCollection, ray_module
from simsearch.encoders import DEFAULT_ENCODER, get_encoder
from simsearch.errors import (
    ConfigMismatchError,
    InvalidArgumentError,
    MissingDependencyError,
    SimsearchError,
)
from simsearch.ingest import IngestReport, prepare, text_encoder, write_failure
from simsearch.progress import progress_bar
from simsearch.sources import Record

__all__ = ["EMBED_BATCH", "Embed", "ingest_sharded"]

#: Texts one embedding actor encodes per call.
EMBED_BATCH = 64


class Embed:
    """The callable class of the embedding pool: the encoder is loaded once per actor."""

    def __init__(self, encoder: str) -> None:
        self.encoder = get_encoder(encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.encoder.encode(texts, kind="passage")
        return {"at": batch["at"], "vector": np.ascontiguousarray(vectors, dtype=np.float32)}


def _vectors(
    records: list[Record], encoder: str, workers: int, batch_size: int
) -> Any:  # an iterator of Ray Data batches: positions and vectors, in record order
    ray_module()
    try:
        data: Any = importlib.import_module("ray.data")
    except ImportError as exc:  # Ray without its data library
        raise MissingDependencyError(
            "distributed ingest embeds with Ray Data: pip install 'simsearch[ray]'"
        ) from exc
    context = data.DataContext.get_current()
    context.enable_progress_bars = False  # simsearch draws its own bar
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True  # shards store items in file order
    rows = [{"at": at, "text": r.text} for at, r in enumerate(records)]
    blocks = max(1, min(-(-len(rows) // EMBED_BATCH), 4 * workers))
    dataset = data.from_items(rows, override_num_blocks=blocks).map_batches(
        Embed,
        fn_constructor_kwargs={"encoder": encoder},
        batch_size=EMBED_BATCH,
        batch_format="numpy",
        compute=data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    return dataset.iter_batches(batch_size=batch_size, batch_format="numpy")


def _workers(workers: int | None) -> int:
    if workers is None:
        cpus = int(ray_module().cluster_resources().get("CPU", 1))
        return max(1, cpus)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a positive integer, got {workers!r}")
    return workers


def ingest_sharded(
    source: Path,
    into: Path | ShardedCollection,
    *,
    shards: int | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    id_field: str = "id",
    text_fields: Sequence[str] = ("text",),
    encoder: str | None = None,
    metric: str | None = None,
    index: IndexConfig | None = None,
    batch_size: int = 256,
    upsert: bool = False,
    skip_existing: bool = False,
    on_error: str = "fail",
    infer: bool = True,
    chunk_tokens: int | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> IngestReport:
    """Check every record of ``source``, embed the texts on the Ray cluster and store
    them in the sharded collection ``into``: an open one (left open), or the root folder
    of one (created with ``shards`` shards if new, and closed afterwards).

    The choices are :func:`simsearch.ingest.ingest`'s; ``ray_address`` is the cluster
    to join (``None``: the one this process is connected to, or a new local one),
    ``workers`` the size of the embedding actor pool (``None``: one per CPU of the
    cluster). A new root is created only once every record passed its checks.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    given, root = (into, into.root) if isinstance(into, ShardedCollection) else (None, Path(into))
    source = Path(source)
    exists = (root / MANIFEST).is_file()
    measure = text_encoder(shard_dir(root, 0) if exists else root, encoder)
    report = IngestReport(source, root)
    col = given
    if col is None and exists:
        col = ShardedCollection.open(root, shards=shards, ray_address=ray_address, encoder=encoder)
    try:

        def stored(ids: Sequence[str]) -> set[str]:
            if col is None:
                return set()
            return {i.id for i in col.get(list(ids), include=(), missing="skip")}

        records = prepare(
            source, root, id_field=id_field, text_fields=text_fields, upsert=upsert,
            skip_existing=skip_existing, on_error=on_error, infer=infer,
            chunk_tokens=chunk_tokens, report=report, stored_ids=stored, chunk_encoder=measure,
        )  # fmt: skip
        if not records:  # everything was skipped: nothing to write, nothing to create
            report.held = len(col) if col is not None else None
            return report
        if col is not None:
            _check_encoder(col, measure.name)
        else:
            col = ShardedCollection.open(
                root, shards=shards, ray_address=ray_address, metric=metric,
                encoder=measure.name, index=index,
            )  # fmt: skip
        _write(col, records, source, measure.name, _workers(workers), batch_size, upsert, note)
        report.stored, report.held = len(records), len(col)
        report.first, report.last = records[0].where, records[-1].where
        return report
    finally:
        if col is not None and col is not given:
            col.close()


def _check_encoder(col: ShardedCollection, name: str) -> None:
    """Refuse to store vectors of a non-default encoder in shards that record no encoder:
    their text searches would embed queries with the default one."""
    if col.info()["encoder"] is None and name != DEFAULT_ENCODER:
        raise ConfigMismatchError(
            f"the sharded collection at {col.root} records no encoder, so its text searches "
            f"use {DEFAULT_ENCODER}; to ingest with {name}, create it with "
            f"ShardedCollection.open(root, shards=N, encoder={name!r}) or let ingest create it"
        )


def _write(
    col: ShardedCollection,
    records: list[Record],
    source: Path,
    encoder: str,
    workers: int,
    batch_size: int,
    upsert: bool,
    note: Callable[[str], None],
) -> None:
    write = col.upsert if upsert else col.add
    stored = 0
    try:
        with progress_bar(len(records), f"Ingesting {source.name} into {col.shards} shards") as bar:
            for batch in _vectors(records, encoder, workers, batch_size):
                part = [records[int(at)] for at in batch["at"]]
                try:
                    write(
                        [r.id for r in part],
                        vectors=batch["vector"],
                        texts=[r.text for r in part],
                        metadata=[r.metadata for r in part],
                    )
                except (SimsearchError, OSError) as exc:
                    raise write_failure(exc, col.root, part, stored, records) from None
                stored += len(part)
                bar(len(part))
    except BaseException as exc:
        if not isinstance(exc, SimsearchError) and 0 < stored < len(records):
            note(
                f"{stored} of {len(records)} items were stored (through "
                f"{records[stored - 1].where}); rerun with --skip-existing to store the rest "
                "(or --upsert to replace what is there)"
            )
        raise
