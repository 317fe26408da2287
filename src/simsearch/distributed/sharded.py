"""ShardedCollection: one collection spread over shards, each a Ray actor that owns an
ordinary :class:`~simsearch.Collection` in its own folder under a root.

What is atomic: each shard commits its part of a batch in one transaction, so a shard
holds all of its part or none. What is not: a batch across shards. When a shard fails
after another has committed, the call raises and the other shard's part stays; writing
the batch again with ``upsert`` (or, for ``add``, the same call: retries of one call are
recognised) completes it without duplicating anything. Ray retries a call whose shard
actor died (``max_task_retries``) on the restarted actor, which reopens its collection
first, so every acknowledged write survives a lost process or node.

A write that raised :class:`~simsearch.ShardUnavailableError` (its shard did not answer
within the timeout) is not cancelled: Ray still delivers it when the shard comes back,
so it may be applied after the error, in full on that shard. The safe retry is
``upsert`` of the same batch: it writes each item whole, so applying it once or twice,
before or after the late original, leaves the same items (a new ``add`` of the batch
raises :class:`~simsearch.DuplicateIdError` for the items the late write stored).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from simsearch.browse import MISSING
from simsearch.config import CollectionConfig, IndexConfig
from simsearch.distributed.connection import check_cluster, join_ray, leave_ray, ray_module
from simsearch.distributed.hybrid_merge import (
    corpus_of,
    fused_rows,
    query_word_set,
    refuse_textless,
    shared_alpha,
)
from simsearch.distributed.merge import merge, merge_info
from simsearch.distributed.placement import load_or_create_manifest, shard_dir, split
from simsearch.distributed.request import ShardedResults, checked_request
from simsearch.distributed.shard import ShardServer, UnknownField
from simsearch.errors import (
    CollectionClosedError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidFilterError,
    ItemNotFoundError,
    ShardUnavailableError,
    SimsearchError,
)
from simsearch.search.request import SearchRequest
from simsearch.search.runner import query_texts
from simsearch.types import Item, JSONObject, Metric
from simsearch.updates import checked_update
from simsearch.validation import as_vector_batch, check_ids, check_metadata, check_texts

__all__ = ["DEFAULT_TIMEOUT", "ShardedCollection", "ShardedResults", "ray_module"]

#: Seconds a call waits for a shard (one restarting included) before it gives up.
DEFAULT_TIMEOUT = 60.0
#: Calls one shard actor runs at once.
SHARD_THREADS = 4


def _refuse_absent(ids: Sequence[str], present: set[str]) -> None:
    absent = [i for i in ids if i not in present]
    if absent:
        shown = ", ".join(repr(i) for i in absent[:5])
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise ItemNotFoundError(f"no item with id {shown}{more}")


class ShardedCollection:
    """A collection over ``shards`` Ray actors with the API of :class:`~simsearch.Collection`
    (add, upsert, delete, get, count, search, len, info).

    Items are placed by a stable hash of their id (:mod:`simsearch.distributed.placement`);
    a search asks every shard for its best ``k + offset`` (filters applied before ranking)
    and merges them exactly (:mod:`simsearch.distributed.merge`); lexical and hybrid
    searches score BM25 with every shard's statistics and fuse the union of the shards'
    candidates as one collection does (:mod:`simsearch.distributed.hybrid_merge`).
    """

    def __init__(self, root: Path, actors: list[Any], timeout: float, started_ray: bool) -> None:
        self.root = root
        self._actors = actors
        self._timeout = timeout
        self._started_ray = started_ray
        self._dim: int | None = None
        self._config: CollectionConfig | None = None
        self._closed = False
        self._turn = 0  # the shard that embeds the next text query

    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        shards: int | None = None,
        ray_address: str | None = None,
        metric: Metric | str | None = None,
        dim: int | None = None,
        encoder: Any = None,
        index: IndexConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        shard_cpus: float = 0.0,
    ) -> ShardedCollection:
        """Open (or create with ``shards=N``) the sharded collection at ``root``, a folder
        every Ray node can reach (a path on one machine, or a shared filesystem).

        Args:
            shards: the shard count; fixed when created (saved in the root's manifest), so
                another count on reopen raises :class:`~simsearch.ConfigMismatchError`.
            ray_address: the Ray cluster to join (``None``: the one this process is
                connected to, or a new local one); while connected, an address of another
                cluster raises :class:`~simsearch.ConfigMismatchError`
                (:mod:`simsearch.distributed.connection`).
            metric, dim, encoder, index: as :meth:`Collection.open`, for every shard.
            timeout: seconds a call waits for a shard before raising
                :class:`~simsearch.ShardUnavailableError`.
            shard_cpus: CPUs each shard actor reserves (0 lets shards share nodes with
                ingest workers).
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number, got {timeout!r}")
        ray = ray_module()
        folder = Path(root).resolve()
        check_cluster(ray, ray_address)
        count = load_or_create_manifest(folder, shards)
        started = join_ray(ray, ray_address)
        actor = ray.remote(ShardServer).options(
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=shard_cpus,
            scheduling_strategy="SPREAD",
            # A collection serves several threads at once: searches do not queue behind
            # a shard's writes.
            max_concurrency=SHARD_THREADS,
        )
        metric_name = None if metric is None else Metric.parse(metric).value
        actors = [
            actor.remote(str(shard_dir(folder, s)), metric_name, dim, encoder, index)
            for s in range(count)
        ]
        opened = cls(folder, actors, float(timeout), started)
        try:
            opened._gather([a.dim.remote() for a in actors])
        except BaseException:
            opened._release()
            raise
        return opened

    # -- calling the shards ------------------------------------------------------------------
    def _gather(
        self,
        refs: Sequence[Any],
        timeout: float | None = None,
        allow_partial: bool = False,
        shards: Sequence[int] | None = None,
    ) -> list[Any]:
        """Every shard's answer (``refs[i]`` is shard ``shards[i]``'s call, by default shard
        ``i``'s); a shard that does not answer in time raises
        :class:`~simsearch.ShardUnavailableError` naming it (with ``allow_partial``, its
        answer is ``None``). A shard's own error is raised as is."""
        ray = ray_module()
        numbers = list(range(len(refs))) if shards is None else list(shards)
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout or self._timeout)
        done = {r.hex() for r in ready}
        out: list[Any] = []
        down: list[int] = []
        for shard, ref in zip(numbers, refs, strict=True):
            if ref.hex() not in done:
                down.append(shard)
                out.append(None)
                continue
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, SimsearchError):
                    raise cause from None
                raise
            except ray.exceptions.RayActorError:
                down.append(shard)
                out.append(None)
        if down and not allow_partial:
            named = ("shards " if len(down) > 1 else "shard ") + ", ".join(map(str, down))
            raise ShardUnavailableError(
                f"{named} of {self.shards} of the sharded collection at {self.root} did "
                f"not answer within {timeout or self._timeout:g} s (its actor is down or "
                "restarting); try again, or search with allow_partial=True",
                tuple(down),
            )
        return out

    def _settle(
        self, answers: list[Any], where: Any, blank: Callable[[], Any], allow_partial: bool = False
    ) -> list[Any]:
        """The shards' answers with those of shards whose items lack a field ``where``
        requires made ``blank()``; a filter field that no item of any shard holds raises
        :class:`~simsearch.InvalidFilterError`, as one collection's would."""
        unknown = [a for a in answers if isinstance(a, UnknownField)]
        if not unknown:
            return answers
        knows = [a.knows.remote(where) for a in self._actors]
        if not any(self._gather(knows, allow_partial=allow_partial)):
            raise InvalidFilterError(unknown[0].message)
        return [blank() if isinstance(a, UnknownField) else a for a in answers]

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionClosedError(f"the sharded collection at {self.root} is closed")

    @property
    def shards(self) -> int:
        """How many shards the collection has."""
        return len(self._actors)

    def locate(self) -> list[tuple[int, str]]:
        """Each shard actor's process id and Ray node id, by shard."""
        self._check_open()
        return self._gather([a.where.remote() for a in self._actors])

    # -- closing -----------------------------------------------------------------------------
    def _release(self) -> None:
        ray = ray_module()
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        if self._started_ray:
            leave_ray(ray)

    def close(self) -> None:
        """Close every shard's collection (saving its index) and stop the actors."""
        if self._closed:
            return
        self._closed = True
        try:
            self._gather([a.close.remote() for a in self._actors])
        finally:
            self._release()

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: Any, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ShardedCollection({str(self.root)!r}, shards={self.shards})"

    # -- writes ------------------------------------------------------------------------------
    def _known_dim(self) -> int | None:
        if self._dim is None:
            dims = {d for d in self._gather([a.dim.remote() for a in self._actors]) if d}
            self._dim = dims.pop() if len(dims) == 1 else None
        return self._dim

    @property
    def config(self) -> CollectionConfig:
        """The configuration every shard's collection shares (shard 0's)."""
        self._check_open()
        if self._config is None:
            self._config = self._gather([self._actors[0].config.remote()])[0]
        return self._config

    def _write(
        self, ids: Any, vectors: Any, texts: Any, metadata: Any, multivectors: Any, *, replace: bool
    ) -> None:
        self._check_open()
        if multivectors is not None:
            raise InvalidArgumentError(
                "a sharded collection holds one vector per item; give vectors or texts"
            )
        id_list = check_ids(ids)
        n = len(id_list)
        text_list = check_texts(texts, n) if texts is not None else None
        metas: list[JSONObject] | None = None if metadata is None else check_metadata(metadata, n)
        vecs = None
        if vectors is not None:
            vecs = as_vector_batch(vectors, self._known_dim())
            if len(vecs) != n:
                raise InvalidArgumentError(f"got {n} ids but {len(vecs)} vectors")
        elif text_list is None:
            raise InvalidArgumentError("give vectors, texts, or both")
        parts = split(id_list, self.shards)
        if not replace:  # refuse a batch holding a stored id before any shard writes
            held = self._gather(
                [
                    self._actors[s].existing.remote([id_list[i] for i in at])
                    for s, at in parts.items()
                ]
            )
            found = [i for part in held for i in part]
            if found:
                shown = ", ".join(repr(i) for i in found[:5])
                more = f" and {len(found) - 5} more" if len(found) > 5 else ""
                raise DuplicateIdError(f"ids already exist: {shown}{more}; use upsert")
        token = uuid.uuid4().hex
        self._gather(
            [
                self._actors[s].write.remote(
                    f"{token}-{s}",
                    [id_list[i] for i in at],
                    None if vecs is None else vecs[at],
                    None if text_list is None else [text_list[i] for i in at],
                    None if metas is None else [metas[i] for i in at],
                    replace,
                )
                for s, at in parts.items()
            ]
        )
        if vecs is not None and self._dim is None:
            self._dim = int(vecs.shape[1])

    def add(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Any = None,
        multivectors: Any = None,
    ) -> None:
        """Add new items; a stored id raises :class:`~simsearch.DuplicateIdError` before any
        shard writes. Each shard commits its part in one transaction (and embeds its texts:
        ``progress`` is not shown)."""
        self._write(ids, vectors, texts, metadata, multivectors, replace=False)

    def upsert(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Any = None,
        multivectors: Any = None,
    ) -> None:
        """Add new items and replace existing ones whole; safe to repeat after a failure."""
        self._write(ids, vectors, texts, metadata, multivectors, replace=True)

    def update(
        self,
        ids: Sequence[str] | str,
        *,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        merge: bool = True,
        texts: Sequence[str] | str | None = None,
        vectors: Any = None,
        progress: Any = None,
    ) -> int:
        """Change only what is given of existing items, as :meth:`Collection.update`: a
        missing id raises :class:`~simsearch.ItemNotFoundError` before any shard writes;
        each shard changes its part in one transaction, and repeating the call after a
        failure completes it. Returns how many items were updated."""
        self._check_open()
        id_list, metas, text_list, vecs = checked_update(
            ids, metadata, merge, texts, vectors, self._known_dim()
        )
        parts = split(id_list, self.shards)
        held = self._gather(
            [self._actors[s].existing.remote([id_list[i] for i in at]) for s, at in parts.items()]
        )
        _refuse_absent(id_list, {i for part in held for i in part})
        return sum(
            self._gather(
                [
                    self._actors[s].update.remote(
                        [id_list[i] for i in at],
                        None if metas is None else [metas[i] for i in at],
                        merge,
                        None if text_list is None else [text_list[i] for i in at],
                        None if vecs is None else vecs[at],
                    )
                    for s, at in parts.items()
                ]
            )
        )

    def delete(
        self, ids: Sequence[str] | str | None = None, *, where: Any = None, all: bool = False
    ) -> int:
        """Delete by id, filter or both, or every item with ``all=True``, as
        :meth:`Collection.delete`; returns how many."""
        self._check_open()
        if ids is None:
            calls = [a.delete.remote(None, where, all) for a in self._actors]
        else:
            id_list = check_ids(ids)
            calls = [
                self._actors[s].delete.remote([id_list[i] for i in at], where, all)
                for s, at in split(id_list, self.shards).items()
            ]
        return sum(self._settle(self._gather(calls), where, int))

    # -- reads -------------------------------------------------------------------------------
    def get(
        self,
        ids: Sequence[str] | str | None = None,
        *,
        where: Any = None,
        limit: int | None = None,
        offset: int = 0,
        include: Sequence[str] = ("metadata", "text", "vector"),
        missing: str = "error",
        where_text: Any = None,
    ) -> list[Item]:
        """Items by id (in the order asked) or by filter (shard by shard, each in insertion
        order), as :meth:`Collection.get`."""
        self._check_open()
        if missing not in MISSING:
            raise InvalidArgumentError(
                f"missing must be one of {', '.join(map(repr, MISSING))}, got {missing!r}"
            )
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
        include = tuple(include) if not isinstance(include, str) else include
        if ids is None:
            end = None if limit is None else offset + limit
            parts = self._settle(
                self._gather(
                    [a.get.remote(None, where, end, include, where_text) for a in self._actors]
                ),
                where,
                list,
            )
            return [item for part in parts for item in part][offset:end]
        id_list = check_ids(ids)
        by_shard = split(id_list, self.shards)
        found: dict[str, Item] = {}
        asked = [
            self._actors[s].get.remote([id_list[i] for i in at], where, None, include, where_text)
            for s, at in by_shard.items()
        ]
        for part in self._settle(self._gather(asked), where, list):
            found.update((item.id, item) for item in part)
        if missing == "error" and where is None and where_text is None:
            _refuse_absent(id_list, set(found))
        items = [found[i] for i in id_list if i in found]
        return items[offset : None if limit is None else offset + limit]

    def count(self, where: Any = None, *, where_text: Any = None) -> int:
        """How many items match ``where`` (every item when ``None``) and ``where_text``,
        over all shards."""
        self._check_open()
        counts = self._gather([a.count.remote(where, where_text) for a in self._actors])
        return sum(self._settle(counts, where, int))

    def __len__(self) -> int:
        return self.count()

    def info(self) -> dict[str, Any]:
        """A summary as :meth:`Collection.info` gives one (count and size over all shards),
        with ``shards``: each shard's own summary."""
        self._check_open()
        return merge_info(str(self.root), self._gather([a.info.remote() for a in self._actors]))

    # -- payload indexes ---------------------------------------------------------------------
    def index_field(self, field: str, kind: str, *, window: bool = False) -> bool:
        """Index the metadata ``field`` on every shard, as :meth:`Collection.index_field`;
        ``False`` if every shard had it indexed already."""
        self._check_open()
        self._config = None
        return any(self._gather([a.index_field.remote(field, kind, window) for a in self._actors]))

    def drop_field_index(self, field: str) -> bool:
        """Drop the payload index of ``field`` on every shard; ``False`` if none had one."""
        self._check_open()
        self._config = None
        return any(self._gather([a.drop_field_index.remote(field) for a in self._actors]))

    def explain(self, *, where: Any = None, exact: bool = False) -> dict[str, Any]:
        """How each shard runs a search with ``where`` (:meth:`Collection.explain` per
        shard, under ``shards``)."""
        self._check_open()
        plans = self._gather([a.explain.remote(where, exact) for a in self._actors])
        return {"shard_count": len(plans), "shards": plans}

    def search(
        self,
        query: Any,
        *,
        k: int = 10,
        offset: int = 0,
        allow_partial: bool = False,
        timeout: float | None = None,
        progress: Any = None,
        **options: Any,
    ) -> ShardedResults:
        """The ``k`` items most similar to each query over every shard, as
        :meth:`Collection.search` takes them (``where``, ``ef``, ``exact``, ``mode``...),
        checked here before any shard is asked; a text query is embedded once, by one
        shard (``progress`` is not shown). Lexical and hybrid searches merge exactly
        (:mod:`simsearch.distributed.hybrid_merge`). ``min_relevance``, ``cutoff`` and
        ``hubness`` are refused: sharded collections do not calibrate or reduce hubness.

        A shard that does not answer within ``timeout`` seconds (default: the collection's)
        raises :class:`~simsearch.ShardUnavailableError` naming it; with
        ``allow_partial=True`` the live shards' hits come back instead, in results whose
        ``partial`` is true, whose ``shards`` names the shards that answered and whose
        ``missing_shards`` names the others.
        """
        self._check_open()
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise InvalidArgumentError(f"timeout must be a positive number, got {timeout!r}")
        request = checked_request(k=k, offset=offset, **options)
        texts = query_texts(query)
        where = options.get("where")
        if request.mode != "dense":
            if texts is None:
                raise InvalidArgumentError(
                    f"mode={request.mode!r} searches texts: give the query as a string or a "
                    "list of strings"
                )
            return self._text_search(texts, request, where, timeout, allow_partial)
        if texts is None:
            queries = as_vector_batch(query, None, what="query vectors")
        else:
            queries = self._embed(texts, range(self.shards), timeout, allow_partial)
        asked = {**options, "k": request.depth, "offset": 0}
        answers = self._gather(
            [a.search.remote(queries, asked) for a in self._actors], timeout, allow_partial
        )
        answers = self._settle(answers, where, lambda: [[] for _ in queries], allow_partial)
        missing = tuple(s for s, a in enumerate(answers) if a is None)
        self._refuse_none(missing, timeout)
        live = [a for a in answers if a is not None]
        rows = merge(live, k=request.k, offset=request.offset)
        return ShardedResults(request.k, rows, missing, self.shards)

    def _refuse_none(self, missing: Sequence[int], timeout: float | None) -> None:
        """Raise when no shard answered: nothing to return, not even how many queries."""
        if len(missing) == self.shards:
            raise ShardUnavailableError(
                f"no shard of the sharded collection at {self.root} answered within "
                f"{timeout or self._timeout:g} s (their actors are down or restarting); "
                "try again",
                tuple(missing),
            )

    def _embed(
        self, texts: list[str], among: Sequence[int], timeout: float | None, allow_partial: bool
    ) -> Any:
        """The query texts embedded once, by one of the shards ``among`` (in turn, so that
        the shards share the work; with ``allow_partial``, the next one when it is down)."""
        order = list(among)
        self._turn = (self._turn + 1) % len(order)
        order = order[self._turn :] + order[: self._turn]
        for tried, s in enumerate(order):
            try:
                return self._gather([self._actors[s].embed.remote(texts)], timeout, shards=[s])[0]
            except ShardUnavailableError:
                if not allow_partial or tried == len(order) - 1:
                    raise
        raise AssertionError("unreachable: the last try raises")

    def _text_search(
        self,
        texts: list[str],
        request: SearchRequest,
        where: Any,
        timeout: float | None,
        allow_partial: bool,
    ) -> ShardedResults:
        """A lexical or hybrid search in two rounds, the corpus statistics then each side's
        candidates, merged as one collection ranks them (:mod:`.hybrid_merge`)."""
        every = range(self.shards)
        words = query_word_set(texts)
        stats = self._gather(
            [a.text_stats.remote(words) for a in self._actors], timeout, allow_partial
        )
        self._refuse_none([s for s in every if stats[s] is None], timeout)
        live = [s for s in every if stats[s] is not None]
        corpus = corpus_of([stats[s] for s in live])
        refuse_textless(corpus, texts, request.mode)
        queries, alpha = None, 0.0
        if request.mode == "hybrid":
            alpha = shared_alpha(request, [stats[s] for s in live])
            queries = self._embed(texts, live, timeout, allow_partial)
        sides = self._gather(
            [self._actors[s].text_sides.remote(texts, queries, request, corpus) for s in live],
            timeout,
            allow_partial,
            shards=live,
        )
        sides = self._settle(sides, where, lambda: [[] for _ in texts], allow_partial)
        answered = dict(zip(live, sides, strict=True))
        missing = tuple(s for s in every if answered.get(s) is None)
        self._refuse_none(missing, timeout)
        rows = fused_rows([a for a in sides if a is not None], request, alpha)
        return ShardedResults(request.k, rows, missing, self.shards)
