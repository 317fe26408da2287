"""The collections a server serves: folders under its data directory, and the sharded
collections of its settings (on a Ray cluster), opened once and shared."""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from simsearch.collection import Collection
from simsearch.config import index_from_name
from simsearch.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CorruptCollectionError,
    InvalidArgumentError,
    NotACollectionError,
    PermissionDeniedError,
    SimsearchError,
)
from simsearch.server.schemas import NAME_CHARS
from simsearch.server.settings import ShardedEntry
from simsearch.store import DB_FILENAME

if TYPE_CHECKING:
    from simsearch.distributed.sharded import ShardedCollection

__all__ = ["CollectionRegistry", "Served"]

#: What a name serves: a collection in a folder, or a sharded one on Ray.
Served: TypeAlias = "Collection | ShardedCollection"

_NAME = re.compile(NAME_CHARS)


class CollectionRegistry:
    """Open collections by name; thread-safe.

    Opening, creating, closing and deleting can block (a file lock held by another
    process, a large folder to remove), so they run under a lock of their own name
    only: a slow open of one collection never delays requests for another. The
    registry-wide lock guards the two dictionaries and is never held across a call
    that can block.
    """

    def __init__(self, data_dir: Path, sharded: Sequence[ShardedEntry] = ()) -> None:
        self.data_dir = data_dir
        self._sharded = {e.name: e for e in sharded}
        for entry in sharded:
            self._path(entry.name)  # a name the API can address
        if len(self._sharded) < len(sharded):
            raise InvalidArgumentError("two sharded collections of the settings share a name")
        self._open: dict[str, Served] = {}
        self._name_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise InvalidArgumentError(
                f"invalid collection name {name[:80]!r}: use 1-64 letters, digits, '_', '-' "
                "or '.', not starting with '.'"
            )
        return self.data_dir / name

    def _name_lock(self, name: str) -> threading.Lock:
        # One lock per name that has been asked for; names are checked first and only
        # existing (or created) collections get here, so the dictionary stays small.
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def _cached(self, name: str) -> Served | None:
        with self._lock:
            return self._open.get(name)

    def names(self) -> list[str]:
        folders = (
            [
                p.name
                for p in self.data_dir.iterdir()
                if _NAME.fullmatch(p.name) and (p / DB_FILENAME).is_file()
            ]
            if self.data_dir.is_dir()
            else []
        )
        return sorted({*folders, *self._sharded})

    def get(self, name: str) -> Served:
        path = self._path(name)
        col = self._cached(name)
        if col is not None:
            return col
        if name in self._sharded:
            return self._open_sharded(self._sharded[name])
        if not (path / DB_FILENAME).is_file():
            raise CollectionNotFoundError(f"no collection named {name!r}")
        with self._name_lock(name):
            col = self._cached(name)  # opened by the request this one waited for
            if col is None:
                if not (path / DB_FILENAME).is_file():  # deleted while this one waited
                    raise CollectionNotFoundError(f"no collection named {name!r}")
                col = _open_existing(name, path)
                with self._lock:
                    self._open[name] = col
            return col

    def _open_sharded(self, entry: ShardedEntry) -> Served:
        # Ray is imported here, at the first request for a sharded collection.
        from simsearch.distributed.sharded import ShardedCollection

        with self._name_lock(entry.name):
            col = self._cached(entry.name)
            if col is None:
                col = ShardedCollection.open(
                    entry.root, ray_address=entry.ray_address, timeout=entry.timeout
                )
                with self._lock:
                    self._open[entry.name] = col
            return col

    def create(
        self,
        name: str,
        *,
        metric: str,
        dim: int | None,
        encoder: str | None,
        index: str = "flat",
        multivector: bool = False,
    ) -> Collection:
        path = self._path(name)
        if name in self._sharded:
            raise CollectionExistsError(f"a collection named {name!r} exists already")
        with self._name_lock(name):
            if (path / DB_FILENAME).is_file():
                raise CollectionExistsError(f"a collection named {name!r} exists already")
            if path.exists() or path.is_symlink():
                raise CollectionExistsError(f"{name!r} is taken by another folder")
            col = Collection.open(
                path, metric=metric, dim=dim, encoder=encoder, index=index_from_name(index),
                multivector=multivector,
            )  # fmt: skip
            with self._lock:
                self._open[name] = col
            return col

    def delete(self, name: str) -> None:
        path = self._path(name)
        if name in self._sharded:
            raise PermissionDeniedError(
                f"{name!r} is a sharded collection of the server's settings; the server does "
                "not delete it (remove it from the settings, or delete its items)"
            )
        if not (path / DB_FILENAME).is_file():
            raise CollectionNotFoundError(f"no collection named {name!r}")
        if path.is_symlink():
            # Deleting through the link would remove data kept outside the data folder,
            # and removing only the link would leave the items in place: refuse both.
            raise PermissionDeniedError(
                f"collection {name!r} is a symbolic link to another folder; the server does "
                "not delete through links (remove the link on the server instead)"
            )
        with self._name_lock(name):
            if not (path / DB_FILENAME).is_file():  # deleted by the request this one waited for
                raise CollectionNotFoundError(f"no collection named {name!r}")
            with self._lock:
                col = self._open.pop(name, None)
            if col is not None:
                col.close()
            shutil.rmtree(path)

    def close_all(self) -> None:
        with self._lock:
            cols = list(self._open.values())
            self._open.clear()
        for col in cols:
            col.close()


def _open_existing(name: str, path: Path) -> Collection:
    """Open a collection that is on disk; damaged files raise
    :class:`~simsearch.CorruptCollectionError` naming the collection."""
    db = path / DB_FILENAME
    if db.stat().st_size == 0:
        # SQLite would take an empty file for a new database and a read would write a
        # fresh configuration into it: an empty file is a damaged collection.
        raise CorruptCollectionError(f"collection {name!r} is damaged: its database file is empty")
    try:
        return Collection.open(path, create=False)
    except CollectionNotFoundError:
        raise
    except NotACollectionError as exc:  # the database file is there but holds no collection
        raise _damaged(name, path, exc) from exc
    except SimsearchError:
        raise  # busy, damaged...: simsearch's own words
    except (sqlite3.DatabaseError, ValueError, OSError) as exc:
        # Nothing the request gave is involved in opening a collection that is on disk, so
        # these come from its files.
        raise _damaged(name, path, exc) from exc


def _damaged(name: str, path: Path, exc: Exception) -> CorruptCollectionError:
    reason = str(exc).replace(str(path), name)  # the server's own paths stay out of it
    return CorruptCollectionError(f"collection {name!r} cannot be opened: {reason}")
