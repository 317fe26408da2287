"""Saving an index folder so that readers only ever see one complete set of files.

The files are written and synced in a fresh sibling folder that then replaces
the old one. Several processes may save at once: each swaps in its own complete
set, and a crash between the two renames leaves no index at all, which the
next opener rebuilds from the store (the index is derived data).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_folder"]


def replace_folder(directory: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(staging)`` to fill a new folder, sync it, and swap it in for ``directory``."""
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".new-", dir=directory.parent))
    try:
        write(staging)
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
