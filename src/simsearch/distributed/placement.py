"""Where an item lives in a sharded collection: a stable hash of its id, and the manifest
that fixes the shard count of a root folder.

The hash is BLAKE2b of the id's UTF-8 bytes (8 bytes, big-endian, modulo the shard count),
so every process, Python version and machine places an id on the same shard (Python's own
``hash`` of a string changes from process to process).

>>> shard_of("a", 3), shard_of("a", 3) == shard_of("a", 3)
(2, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from simsearch.errors import (
    ConfigMismatchError,
    CorruptCollectionError,
    InvalidArgumentError,
    NotACollectionError,
)

__all__ = ["MANIFEST", "PLACEMENT", "load_or_create_manifest", "shard_dir", "shard_of", "split"]

#: The file under a sharded collection's root that records its shard count and hash.
MANIFEST = "simsearch-shards.json"
#: The name of the placement rule saved in the manifest.
PLACEMENT = "blake2b-64-mod"
#: The most shards a collection may have.
MAX_SHARDS = 4096


def shard_of(item_id: str, shards: int) -> int:
    """The shard (``0 .. shards - 1``) that holds ``item_id``."""
    digest = hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def split(ids: Sequence[str], shards: int) -> dict[int, list[int]]:
    """The positions in ``ids`` that each shard holds (only shards with some)."""
    parts: dict[int, list[int]] = {}
    for at, item_id in enumerate(ids):
        parts.setdefault(shard_of(item_id, shards), []).append(at)
    return parts


def shard_dir(root: Path, shard: int) -> Path:
    """The folder of shard ``shard``'s own collection."""
    return root / f"shard-{shard:03d}"


def _read_manifest(root: Path, path: Path) -> int:
    """The shard count the manifest at ``path`` saves, checked."""
    try:
        saved = json.loads(path.read_text("utf-8"))
        count, rule = saved["shards"], saved["placement"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotACollectionError(f"{path} is not a sharded collection's manifest") from exc
    if rule != PLACEMENT:
        raise ConfigMismatchError(f"{root} places items by {rule!r}, not {PLACEMENT!r}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise CorruptCollectionError(
            f"{path} saves a shard count of {count!r}, not a whole number in [1, "
            f"{MAX_SHARDS}]: the manifest is damaged or was edited by hand; restore it (the "
            f"count is the number of shard-NNN folders under {root})"
        )
    return count


def _create_manifest(root: Path, path: Path, shards: int) -> None:
    """Write the manifest of a new root unless one is there: written whole to a file of
    this process's own, then linked to its name, which fails where another process got
    there first (so two processes opening a new root at once agree on the first one's)."""
    text = json.dumps({"format": 1, "shards": shards, "placement": PLACEMENT})
    part = root / f".{MANIFEST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(part, "x", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(part, path)
        except FileExistsError:
            return  # another process created it first: theirs stands
        except OSError:  # a filesystem without hard links: create the name exclusively
            with contextlib.suppress(FileExistsError), open(path, "x", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
    finally:
        part.unlink(missing_ok=True)


def _other_files(root: Path) -> bool:
    """Whether ``root`` holds files beyond a manifest and manifests being written."""
    return any(
        f.name != MANIFEST and not (f.name.startswith(f".{MANIFEST}.") and f.suffix == ".tmp")
        for f in root.iterdir()
    )


def load_or_create_manifest(root: Path, shards: int | None) -> int:
    """The shard count of the sharded collection at ``root``: the saved one (``shards`` must
    be ``None`` or equal to it), or ``shards`` for a new root, saved before any shard opens."""
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int)):
        raise InvalidArgumentError(f"shards must be a positive integer, got {shards!r}")
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise InvalidArgumentError(f"shards must be in [1, {MAX_SHARDS}], got {shards}")
    path = root / MANIFEST
    if not path.is_file():
        if shards is None:
            raise NotACollectionError(
                f"{root} is not a sharded collection; give shards=N to create one"
            )
        if root.exists() and (not root.is_dir() or _other_files(root)) and not path.is_file():
            raise NotACollectionError(f"{root} holds other files and is not a sharded collection")
        root.mkdir(parents=True, exist_ok=True)
        _create_manifest(root, path, shards)
    count = _read_manifest(root, path)
    if shards is not None and shards != count:
        raise ConfigMismatchError(
            f"{root} holds a collection of {count} shards, not {shards}: items are placed "
            f"by a hash of their id modulo the shard count, so reopen it with "
            f"shards={count} (or shards=None); to change the count, export the items and "
            "ingest them into a new root"
        )
    return count
