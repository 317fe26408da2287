"""Opening a collection: the path and the arguments checked, a new collection created whole,
an existing one's saved config compared with what the caller asked.

Opening reads in a snapshot, so it never waits for another process's writer; the
write lock is taken only to save a change (another index kind) or a missing
config. Nothing is ever removed: a refused open leaves the folder as it found it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from simsearch.config import HNSW, IVFPQ, CollectionConfig, Flat, IndexConfig, check_index_fits
from simsearch.embedding import check_compatible, resolve_encoder, spec
from simsearch.encoders import Encoder, TokenEncoder
from simsearch.errors import (
    ConfigMismatchError,
    CorruptCollectionError,
    InvalidArgumentError,
    NotACollectionError,
)
from simsearch.multivector.fde import MultiVector
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.types import Metric

__all__ = ["open_store"]


def open_store(
    path: str | Path,
    *,
    metric: Metric | str | None,
    dim: int | None,
    encoder: str | Encoder | None,
    index: IndexConfig | None,
    create: bool,
    multivector: bool | MultiVector = False,
) -> tuple[Path, SQLiteStore, Encoder | None]:
    """The collection's folder, its open store and the encoder asked for (see
    ``Collection.open`` for the arguments)."""
    directory = Path(path)
    if not create and not (directory / DB_FILENAME).is_file():
        raise NotACollectionError(f"{directory} is not a simsearch collection")
    if directory.exists() and not directory.is_dir():
        raise NotACollectionError(f"{directory} is a file, not a collection folder")
    if directory.is_dir() and not (directory / DB_FILENAME).exists() and any(directory.iterdir()):
        raise NotACollectionError(
            f"{directory} holds other files and is not a simsearch collection"
        )
    if index is not None and not isinstance(index, Flat | HNSW | IVFPQ):
        raise InvalidArgumentError(
            "index must be simsearch.Flat(), simsearch.HNSW(...) or simsearch.IVFPQ(...), "
            f"not {index!r}"
        )
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise InvalidArgumentError(f"dim must be a positive integer, got {dim!r}")
    wanted_metric = Metric.parse(metric) if metric is not None else None
    enc = resolve_encoder(encoder)
    asked = _multivector(multivector)
    multi = asked or (MultiVector() if isinstance(enc, TokenEncoder) else None)
    fresh = CollectionConfig(
        metric=wanted_metric or Metric.COSINE,
        dim=dim if dim is not None else (enc.dim if enc else None),
        encoder=spec(enc) if enc else None,
        index=index or Flat(),
    )
    if multi is not None:
        fresh = _multivector_config(fresh, multi, enc)
    if (directory / DB_FILENAME).exists():
        store = SQLiteStore.open(directory)
    else:
        # Everything about a new collection is checked before anything is written.
        if enc is not None:
            check_compatible(replace(fresh, encoder=None), spec(enc))
        check_index_fits(fresh.index, fresh.dim)
        # Made whole in a private folder and renamed into place; if another process made
        # one there first, that one is opened and checked below like any other.
        store = SQLiteStore.create(directory, fresh)
    try:
        _reconcile(
            store, fresh, wanted_metric, dim, enc, index, asked,
            explicit=isinstance(multivector, MultiVector),
        )  # fmt: skip
    except BaseException:
        store.close()  # never removes anything: the folder may hold another's data
        raise
    return directory, store, enc


def _multivector(value: object) -> MultiVector | None:
    if value is True:
        return MultiVector()
    if value is False or value is None:
        return None
    if not isinstance(value, MultiVector):
        raise InvalidArgumentError(
            f"multivector must be true, false or simsearch.MultiVector(...), not {value!r}"
        )
    return value


def _multivector_config(
    fresh: CollectionConfig, multi: MultiVector, encoder: Encoder | None
) -> CollectionConfig:
    """A new multi-vector collection's config: its index holds the sets' encodings, compared
    by inner product; the token vectors' own metric and dimension are the encoding's."""
    if fresh.metric is Metric.L2:
        raise InvalidArgumentError(
            "a multi-vector collection scores by MaxSim of inner products: metric 'cosine' "
            "(token vectors at unit length) or 'dot', not 'l2'"
        )
    if encoder is not None and not isinstance(encoder, TokenEncoder):
        raise InvalidArgumentError(
            f"encoder {encoder.name} makes one vector per text; a multi-vector collection "
            "needs a token encoder such as 'minilm-l6-v2-tokens'"
        )
    token_dim = fresh.dim if multi.dim is None else multi.dim
    multi = replace(multi, dim=token_dim, cosine=fresh.metric is Metric.COSINE)
    if multi.fde_dim < 1:
        raise InvalidArgumentError(
            "MultiVector(projection='identity') needs the dimension: pass dim=... or d_final"
        )
    return replace(fresh, metric=Metric.DOT, dim=multi.fde_dim, multivector=multi)


def _reconcile(
    store: SQLiteStore,
    fresh: CollectionConfig,
    metric: Metric | None,
    dim: int | None,
    encoder: Encoder | None,
    index: IndexConfig | None,
    multivector: MultiVector | None = None,
    *,
    explicit: bool = False,
) -> None:
    """Check what the caller asked of an existing collection against its saved config
    (``multivector=True`` asks for sets however they were encoded when the collection was
    made; an ``explicit`` MultiVector(...) for that encoding)."""
    with store.snapshot() as snap:
        saved = snap.read_config()
        if saved is None and snap.count():
            raise CorruptCollectionError(
                f"the collection at {store.collection} holds {snap.count()} items but no "
                "saved config (metric, dimension): it was damaged; restore it from a backup"
            )
        if snap.current_seq() < snap.max_written_seq():
            raise CorruptCollectionError(
                f"the sequence counter of the collection at {store.collection} is behind its "
                f"rows ({snap.current_seq()} < {snap.max_written_seq()}): it was damaged; run "
                f"`simsearch check {store.collection} --repair`"
            )
    if saved is None:  # a collection whose creation stopped before its config was saved
        if encoder is not None:
            check_compatible(replace(fresh, encoder=None), spec(encoder))
        check_index_fits(fresh.index, fresh.dim)
        with store.write() as txn:
            if txn.read_config() is None:
                txn.save_config(fresh)
        return
    saved_metric = saved.multivector.metric if saved.multivector else saved.metric.value
    if metric is not None and metric.value != saved_metric:
        raise ConfigMismatchError(
            f"the collection uses metric {saved_metric!r}, not {metric.value!r}"
        )
    if dim is not None and saved.token_dim is not None and dim != saved.token_dim:
        raise ConfigMismatchError(f"the collection holds {saved.token_dim}-d vectors, not {dim}-d")
    if multivector is not None and saved.multivector is None:
        raise ConfigMismatchError(
            "the collection holds one vector per item, not sets (multivector=True makes a "
            "new collection of sets)"
        )
    if (
        explicit
        and multivector is not None
        and saved.multivector is not None
        and not saved.multivector.same_encoding(multivector)
    ):
        raise ConfigMismatchError(
            f"the collection encodes its sets as {saved.multivector}, not {multivector}"
        )
    if encoder is not None:
        check_compatible(saved, spec(encoder))
    if index is not None and index != saved.index:
        check_index_fits(index, saved.dim)
        with store.write() as txn:
            current = txn.read_config() or saved
            txn.save_config(replace(current, index=index))
