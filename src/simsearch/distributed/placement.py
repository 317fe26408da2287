"""Where an item lives in a sharded collection: a stable hash of its id, and the manifest
that fixes the shard count of a root folder.

The hash is BLAKE2b of the id's UTF-8 bytes (8 bytes, big-endian, modulo the shard count),
so every process, Python version and machine places an id on the same shard (Python's own
``hash`` of a string changes from process to process).

>>> shard_of("a", 3), shard_of("a", 3) == shard_of("a", 3)
(2, True)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from simsearch.errors import ConfigMismatchError, InvalidArgumentError, NotACollectionError

__all__ = ["MANIFEST", "PLACEMENT", "load_or_create_manifest", "shard_dir", "shard_of", "split"]

#: The file under a sharded collection's root that records its shard count and hash.
MANIFEST = "simsearch-shards.json"
#: The name of the placement rule saved in the manifest.
PLACEMENT = "blake2b-64-mod"


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


def load_or_create_manifest(root: Path, shards: int | None) -> int:
    """The shard count of the sharded collection at ``root``: the saved one (``shards`` must
    be ``None`` or equal to it), or ``shards`` for a new root, saved before any shard opens."""
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int)):
        raise InvalidArgumentError(f"shards must be a positive integer, got {shards!r}")
    if shards is not None and not 1 <= shards <= 4096:
        raise InvalidArgumentError(f"shards must be in [1, 4096], got {shards}")
    path = root / MANIFEST
    if path.is_file():
        try:
            saved = json.loads(path.read_text("utf-8"))
            count, rule = int(saved["shards"]), saved["placement"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NotACollectionError(f"{path} is not a sharded collection's manifest") from exc
        if rule != PLACEMENT:
            raise ConfigMismatchError(f"{root} places items by {rule!r}, not {PLACEMENT!r}")
        if shards is not None and shards != count:
            raise ConfigMismatchError(
                f"{root} holds a collection of {count} shards, not {shards}: items are placed "
                f"by a hash of their id modulo the shard count, so reopen it with "
                f"shards={count} (or shards=None); to change the count, export the items and "
                "ingest them into a new root"
            )
        return count
    if shards is None:
        raise NotACollectionError(
            f"{root} is not a sharded collection; give shards=N to create one"
        )
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise NotACollectionError(f"{root} holds other files and is not a sharded collection")
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": 1, "shards": shards, "placement": PLACEMENT})
    part = path.with_suffix(".tmp")
    with open(part, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
    return shards
