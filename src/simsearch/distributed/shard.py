"""One shard of a sharded collection: a plain :class:`~simsearch.Collection` behind a Ray
actor. The class itself imports no Ray; :mod:`simsearch.distributed.sharded` makes it an
actor that Ray restarts (``max_restarts=-1``) and whose calls it retries
(``max_task_retries``). A restart runs ``__init__`` again, which reopens the collection
from its folder, so what was committed before the failure is served again.

Retried writes are idempotent. ``upsert`` and ``delete`` are by nature. ``add`` is made so
by a journal of write tokens: each call carries a token that the shard writes down (and
syncs) before it commits; when a call comes back with a token the journal already holds,
it is a retry of a call that may have committed before its process died, and items
found stored exactly as the call gives them are taken as its own earlier commit instead
of raising :class:`~simsearch.DuplicateIdError`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from simsearch.collection import Collection
from simsearch.config import CollectionConfig, IndexConfig
from simsearch.distributed.hybrid_merge import (
    Candidate,
    Corpus,
    ShardStats,
    shard_sides,
    shard_stats,
)
from simsearch.distributed.placement import MANIFEST
from simsearch.errors import (
    DuplicateIdError,
    InvalidFilterError,
    NotACollectionError,
    SimsearchError,
)
from simsearch.index.keeper import IndexKeeper
from simsearch.search.request import SearchRequest
from simsearch.search.runner import Searcher
from simsearch.store import SQLiteStore
from simsearch.store.catalogue import UNKNOWN_FIELD
from simsearch.types import FloatArray, Item

__all__ = ["HitTuple", "ShardServer", "UnknownField", "WriteJournal"]

#: One hit as a shard sends it: id, score, metadata, text, relevance, dense and lexical score.
HitTuple = tuple[str, float, dict[str, Any], str | None, float | None, float | None, float | None]

T = TypeVar("T")


@dataclass(frozen=True)
class UnknownField:
    """A shard's answer to a filter that names a field none of its items holds: one
    collection refuses such a filter only when no item at all holds the field, so the
    sharded collection decides (the shards that do hold it answer as usual)."""

    message: str


def _lenient(run: Callable[[], T]) -> T | UnknownField:
    try:
        return run()
    except InvalidFilterError as exc:
        if str(exc).startswith(UNKNOWN_FIELD):
            return UnknownField(str(exc))
        raise


#: Tokens of this many recent writes are remembered (a retry comes within seconds).
JOURNAL_KEEP = 10_000


class WriteJournal:
    """The tokens of the writes a shard has started, in a file beside its collection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = path.read_text("utf-8").split() if path.is_file() else []
        self._recent: deque[str] = deque(lines[-JOURNAL_KEEP:], maxlen=JOURNAL_KEEP)
        self._known = set(self._recent)
        if len(lines) > 2 * JOURNAL_KEEP:  # keep the file short: rewrite the recent part
            part = path.with_suffix(".tmp")
            part.write_text("".join(t + "\n" for t in self._recent), "utf-8")
            os.replace(part, path)

    def seen(self, token: str) -> bool:
        return token in self._known

    def record(self, token: str) -> None:
        if token in self._known:
            return
        if len(self._recent) == self._recent.maxlen:
            self._known.discard(self._recent[0])
        self._recent.append(token)
        self._known.add(token)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())


def _same(item: Item, vector: Any, text: str | None, metadata: dict[str, Any] | None) -> bool:
    if vector is not None and (
        item.vector is None or not np.array_equal(item.vector, np.asarray(vector, np.float32))
    ):
        return False
    return item.text == text and item.metadata == (metadata or {})


def _node_name() -> str:
    """The Ray node this process runs on (its host name outside a Ray worker)."""
    import socket

    import ray

    if ray.is_initialized():
        return f"Ray node {ray.get_runtime_context().get_node_id()}"
    return f"host {socket.gethostname()}"


class ShardServer:
    """The collection of one shard and the calls a sharded collection makes of it."""

    def __init__(
        self,
        path: str,
        metric: str | None,
        dim: int | None,
        encoder: Any,
        index: IndexConfig | None,
    ) -> None:
        folder = Path(path)
        # A failure to open is kept and raised by every call, so the caller gets
        # simsearch's own error (a config mismatch, a missing root) through Ray, not an
        # actor that looks down and is worth waiting for.
        self._failure: SimsearchError | None = None
        try:
            if not (folder.parent / MANIFEST).is_file():
                # A restart on a node that cannot see the root would otherwise create
                # an empty shard and answer without the items written before.
                raise NotACollectionError(
                    f"the sharded collection's root {folder.parent} is not reachable from "
                    f"the node of shard {folder.name} ({_node_name()}): put the root on a "
                    "filesystem every node sees"
                )
            self._collection: Collection | None = Collection.open(
                folder, metric=metric, dim=dim, encoder=encoder, index=index
            )
        except SimsearchError as exc:
            self._failure, self._collection = exc, None
        self.journal = WriteJournal(folder.with_name(folder.name + ".writes"))

    @property
    def collection(self) -> Collection:
        """The shard's collection (raising what kept it from opening, if anything did)."""
        if self._collection is None:
            assert self._failure is not None
            raise self._failure
        return self._collection

    def where(self) -> tuple[int, str]:
        """This actor's process id and the Ray node it runs on."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def dim(self) -> int | None:
        return self.collection.config.dim

    def existing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` that this shard holds."""
        return [i.id for i in self.collection.get(ids, include=(), missing="skip")]

    def write(
        self,
        token: str,
        ids: list[str],
        vectors: Any,
        texts: list[str] | None,
        metadata: list[dict[str, Any] | None] | None,
        replace: bool,
    ) -> None:
        """``add`` (``replace=False``) or ``upsert`` one shard's part of a batch."""
        retried = self.journal.seen(token)
        self.journal.record(token)
        if replace:
            self.collection.upsert(ids, vectors=vectors, texts=texts, metadata=metadata)
            return
        try:
            self.collection.add(ids, vectors=vectors, texts=texts, metadata=metadata)
        except DuplicateIdError:
            if not retried or not self._committed(ids, vectors, texts, metadata):
                raise

    def _committed(
        self,
        ids: list[str],
        vectors: Any,
        texts: list[str] | None,
        metadata: list[dict[str, Any] | None] | None,
    ) -> bool:
        """Whether every item of a retried ``add`` is stored as the call gives it (the
        batch is one transaction, so its earlier attempt committed all of it or none)."""
        stored = self.collection.get(ids, missing="skip")
        if len(stored) != len(ids):
            return False
        for at, item in enumerate(stored):
            vector = None if vectors is None else vectors[at]
            text = None if texts is None else texts[at]
            meta = None if metadata is None else metadata[at]
            if not _same(item, vector, text, meta):
                return False
        return True

    def delete(self, ids: list[str] | None, where: Any, everything: bool) -> int | UnknownField:
        return _lenient(lambda: self.collection.delete(ids, where=where, all=everything))

    def get(
        self,
        ids: list[str] | None,
        where: Any,
        limit: int | None,
        include: Any,
        where_text: Any = None,
    ) -> list[Item] | UnknownField:
        return _lenient(
            lambda: self.collection.get(
                ids,
                where=where,
                limit=limit,
                include=include,
                missing="skip",
                where_text=where_text,
            )
        )

    def count(self, where: Any, where_text: Any = None) -> int | UnknownField:
        return _lenient(lambda: self.collection.count(where, where_text=where_text))

    def knows(self, where: Any) -> bool:
        """Whether this shard holds items with every field ``where`` requires."""
        counted = self.count(where, None)
        return not isinstance(counted, UnknownField) and len(self.collection) > 0

    def update(
        self,
        ids: list[str],
        metadata: list[dict[str, Any] | None] | None,
        merge: bool,
        texts: list[str] | None,
        vectors: Any,
    ) -> int:
        """Change what is given of this shard's items (repeating it changes nothing more)."""
        return self.collection.update(
            ids, metadata=metadata, merge=merge, texts=texts, vectors=vectors
        )

    def config(self) -> CollectionConfig:
        return self.collection.config

    def index_field(self, field: str, kind: str, window: bool) -> bool:
        return self.collection.index_field(field, kind, window=window)

    def drop_field_index(self, field: str) -> bool:
        return self.collection.drop_field_index(field)

    def explain(self, where: Any, exact: bool) -> dict[str, Any]:
        return self.collection.explain(where=where, exact=exact)

    def search(self, query: Any, options: dict[str, Any]) -> list[list[HitTuple]] | UnknownField:
        """Each query's best hits on this shard, as plain tuples."""
        results = _lenient(lambda: self.collection.search(query, **options))
        if isinstance(results, UnknownField):
            return results
        return [
            [
                (h.id, h.score, h.metadata, h.text, h.relevance, h.dense_score, h.lexical_score)
                for h in row
            ]
            for row in results
        ]

    def _parts(self) -> tuple[SQLiteStore, IndexKeeper, Searcher]:
        # A text search over shards needs what Collection's API does not offer (the
        # lexical index's statistics, BM25 under the sums of every shard, the query
        # embedder alone), so the shard takes its collection's parts, as Collection's own
        # methods hand them to the search and tuning modules.
        c = self.collection
        return c._store, c._keeper, c._searcher

    def embed(self, texts: list[str]) -> FloatArray:
        """The query vectors of ``texts`` (a sharded search embeds its text queries once)."""
        return self._parts()[2].query_vectors(texts, None)

    def text_stats(self, words: list[str]) -> ShardStats:
        """This shard's share of the corpus statistics of a text search for ``words``."""
        store, keeper, searcher = self._parts()
        return shard_stats(store, keeper, words, searcher.saved_alpha())

    def text_sides(
        self,
        texts: list[str],
        queries: FloatArray | None,
        request: SearchRequest,
        corpus: Corpus,
    ) -> list[list[Candidate]] | UnknownField:
        """Each text query's candidates on this shard, scored under ``corpus``."""
        store, keeper, _ = self._parts()
        return _lenient(lambda: shard_sides(store, keeper, request, texts, queries, corpus))

    def info(self) -> dict[str, Any]:
        return self.collection.info()

    def close(self) -> None:
        if self._collection is not None:
            self._collection.close()
