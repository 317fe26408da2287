"""Values saved beside the data (a calibration, hubness banks, a model upgrade's map), each
parsed once per revision rather than read and parsed on every search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from simsearch.store.reads import ReadTxn, StoreState

__all__ = ["Saved"]

T = TypeVar("T")


class Saved(Generic[T]):
    """The value saved under ``key``, parsed by ``parse``, cached by its revision.

    >>> import pathlib, tempfile
    >>> from simsearch.config import CollectionConfig
    >>> from simsearch.store import SQLiteStore
    >>> from simsearch.types import Metric
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "c"
    >>> store = SQLiteStore.create(folder, CollectionConfig(Metric.DOT))
    >>> saved = Saved("note", str.upper)
    >>> with store.write() as txn:
    ...     txn.save_meta("note", "hello")
    >>> with store.snapshot() as snap:
    ...     saved.get(snap, snap.state())
    'HELLO'
    >>> store.close()
    """

    def __init__(self, key: str, parse: Callable[[str], T]) -> None:
        self.key = key
        self._parse = parse
        # (revision, text, value), replaced whole: threads on other snapshots never see a
        # revision paired with another revision's value.
        self._held: tuple[str | None, str | None, T | None] = (None, None, None)

    def get(self, snap: ReadTxn, state: StoreState) -> T | None:
        """The value as of ``snap`` (whose :meth:`ReadTxn.state` is ``state``), or None."""
        revision = state.revisions.get(self.key)
        held_revision, held_text, held_value = self._held
        if revision is not None and revision == held_revision:
            return held_value
        if self.key not in state.keys:
            self._held = (revision, None, None)
            return None
        text = snap.read_meta(self.key)
        # A value saved without a revision (by an older simsearch) is read every time and
        # parsed again only when its text changed.
        value = held_value if text == held_text and text is not None else None
        if value is None and text is not None:
            value = self._parse(text)
        self._held = (revision, text, value)
        return value

    def text(self, snap: ReadTxn, state: StoreState) -> str | None:
        """The saved text itself (read through the same cache)."""
        self.get(snap, state)
        return self._held[1]

    def forget(self) -> None:
        """Drop the cached value (after this process changed it)."""
        self._held = (None, None, None)
