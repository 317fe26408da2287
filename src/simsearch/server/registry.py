"""The collections a server serves: folders under its data directory, opened once and shared."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

from simsearch._collection import Collection
from simsearch.config import index_from_name
from simsearch.errors import CollectionExistsError, CollectionNotFoundError, InvalidArgumentError
from simsearch.server.schemas import NAME_PATTERN
from simsearch.store import DB_FILENAME

__all__ = ["CollectionRegistry"]

_NAME = re.compile(NAME_PATTERN)


class CollectionRegistry:
    """Open collections by name; thread-safe."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InvalidArgumentError(
                f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.'"
            )
        return self.data_dir / name

    def names(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.data_dir.iterdir()
            if (p / DB_FILENAME).is_file() and _NAME.match(p.name)
        )

    def get(self, name: str) -> Collection:
        path = self._path(name)
        with self._lock:
            col = self._open.get(name)
            if col is None:
                if not (path / DB_FILENAME).is_file():
                    raise CollectionNotFoundError(f"no collection named {name!r}")
                col = Collection.open(path, create=False)
                self._open[name] = col
            return col

    def create(
        self, name: str, *, metric: str, dim: int | None, encoder: str | None, index: str = "flat"
    ) -> Collection:
        path = self._path(name)
        with self._lock:
            if (path / DB_FILENAME).is_file():
                raise CollectionExistsError(f"a collection named {name!r} exists already")
            if path.exists():
                raise CollectionExistsError(f"{name!r} is taken by another folder")
            col = Collection.open(
                path, metric=metric, dim=dim, encoder=encoder, index=index_from_name(index)
            )
            self._open[name] = col
            return col

    def delete(self, name: str) -> None:
        path = self._path(name)
        with self._lock:
            if not (path / DB_FILENAME).is_file():
                raise CollectionNotFoundError(f"no collection named {name!r}")
            col = self._open.pop(name, None)
            if col is not None:
                col.close()
            shutil.rmtree(path)

    def close_all(self) -> None:
        with self._lock:
            for col in self._open.values():
                col.close()
            self._open.clear()
