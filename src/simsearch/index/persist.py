"""Saving an index folder so that readers only ever see one complete set of files, and
loading only a set that this collection's store wrote.

The files are written and synced in a fresh sibling folder that then replaces
the old one. Several processes may save at once: each swaps in its own complete
set, and a crash between the two renames leaves no index at all, which the
next opener rebuilds from the store (the index is derived data).

Each saved folder carries a manifest: the id of the store it was built from
(written when the collection was created) and the SHA-256 of every file. A
folder copied from another collection, or a file changed on disk, fails
:func:`check_folder`, and the collection rebuilds its index rather than
answering from data that is not its own.

Loading goes through :func:`load_saved` (with :func:`saved_meta` for a folder whose
meta file names its settings): an index that was never saved, or saved with other
settings, is built anew quietly; one that fails its checks, or was saved ahead of
the store, is built anew with a warning saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "LOAD_ERRORS",
    "MANIFEST_FILE",
    "OtherSettingsError",
    "check_folder",
    "load_saved",
    "replace_folder",
    "saved_meta",
]

T = TypeVar("T")

MANIFEST_FILE = "manifest.json"


class OtherSettingsError(ValueError):
    """The saved index is sound but was built with other settings than those asked for
    now (the user changed the index): it is rebuilt without a warning."""


#: The failures of a saved index that :func:`load_saved` turns into a warning and a rebuild.
LOAD_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, KeyError, TypeError, IndexError)

_BLOCK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def replace_folder(directory: Path, store_id: str, write: Callable[[Path], None]) -> None:
    """Call ``write(staging)`` to fill a new folder, add its manifest for ``store_id``,
    sync it, and swap it in for ``directory``."""
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".new-", dir=directory.parent))
    try:
        write(staging)
        files = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        manifest = {"store_id": store_id, "sha256": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, sort_keys=True))
        for path in staging.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        retired = directory.parent / f"{directory.name}.old-{staging.name.rsplit('-', 1)[-1]}"
        # No index yet, or another process is swapping its own in right now:
        with contextlib.suppress(FileNotFoundError):
            os.replace(directory, retired)
        # Another process put its complete index in place first: keep that one.
        with contextlib.suppress(OSError):
            os.replace(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_folder(directory: Path, store_id: str) -> None:
    """Raise ``FileNotFoundError`` when ``directory`` holds no saved index, and
    ``ValueError`` when it was not saved from the store ``store_id`` or a file in it
    changed since."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        if directory.exists() and any(directory.iterdir()):
            raise ValueError("the saved index has no manifest")
        raise FileNotFoundError(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
        owner, files = manifest["store_id"], manifest["sha256"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("the saved index's manifest is unreadable") from None
    if owner != store_id:
        raise ValueError("the saved index was built from another collection's store")
    present = {p.name for p in directory.iterdir()} - {MANIFEST_FILE}
    if not isinstance(files, dict) or set(files) != present:
        raise ValueError("the saved index's files differ from its manifest")
    for name, digest in files.items():
        if _sha256(directory / name) != digest:
            raise ValueError(f"the saved index file {name} changed after it was written")


def saved_meta(
    directory: Path, store_id: str, meta_file: str, settings_key: str, settings: Any
) -> dict[str, Any]:
    """The meta of the index saved in ``directory`` (checked by :func:`check_folder`);
    raises ``OtherSettingsError`` when its ``settings_key`` is not ``settings``."""
    check_folder(directory, store_id)
    meta: dict[str, Any] = json.loads((directory / meta_file).read_text())
    if meta[settings_key] != settings:
        raise OtherSettingsError(f"the saved index was built with other {settings_key}")
    return meta


def load_saved(
    read: Callable[[], tuple[T, int]],
    current_seq: int,
    unused: str,
    rebuilt: str,
    *,
    errors: tuple[type[Exception], ...] = LOAD_ERRORS,
    stacklevel: int = 2,
) -> tuple[T, int] | None:
    """``read()``'s saved index and the sequence number it applied, when a store at
    ``current_seq`` can catch it up; else ``None``: quietly when there is none or it has
    other settings (``FileNotFoundError``, :class:`OtherSettingsError`), with a
    ``RuntimeWarning`` ("``unused`` (why); ``rebuilt``", at ``stacklevel``
    as seen from the caller) when it fails with one of ``errors`` or is ahead of the
    store."""
    try:
        value, seq = read()
        if seq > current_seq:
            raise ValueError(
                f"it was saved at sequence number {seq}, ahead of the store's {current_seq}"
            )
    except (FileNotFoundError, OtherSettingsError):
        return None
    except errors as exc:
        warnings.warn(f"{unused} ({exc}); {rebuilt}", RuntimeWarning, stacklevel=stacklevel + 1)
        return None
    return value, seq
