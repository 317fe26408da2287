"""Payload indexes: one metadata field's values as columns, which answer filters without SQL.

A filter over stored metadata is otherwise a SQLite scan that runs ``json_extract``
on every row (about 300 ms at 390,000 rows). An indexed field keeps, for every store
row, the JSON type of its value (one byte) and the value itself: a float64 for the
numeric kinds, a code into a dictionary of distinct strings (int32) for the text
kinds. A comparison is then one vectorised pass over the column and ``$and``,
``$or`` and ``$not`` are boolean operations on the passes' masks.

Measured at 390,000 rows with 1,000 distinct integer labels (one core), the allowed
rows of an equality, a range keeping half the rows and an ``$in`` of 10 values took
0.08, 0.22 and 0.49 ms from columns; compressed bitmaps per value (pyroaring) took
0.001, 0.22 and 0.01 ms, and a value-sorted array with its rows 0.003, 0.78 (the
range's rows must be sorted again) and about 0.03 ms. Bitmaps win on selective
equalities, where a graph search costs a hundred times more anyway; columns tie on
wide ranges, keep every value exactly (a bitmap per distinct value of a float field
is one bitmap per row), and an update is one assignment per row, so they are used.

Each comparison mirrors the SQL one exactly (typed: ``1`` is never ``"1"`` or
``true``; a missing field fails every comparison, so ``$ne`` and ``$nin`` match it).
What a column cannot answer (a list field's ``$contains``, numbers compared on a
keyword field that holds some numbers, integers beyond 2**53 that float64 cannot
hold exactly) makes the whole filter fall back to SQL, so the answer never differs.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.config import FieldIndexSpec
from simsearch.filters import FilterLeaf, FilterTree
from simsearch.index.base import Int64Array

__all__ = ["FieldColumn", "Mask", "covers", "evaluate"]

Mask = npt.NDArray[np.bool_]

ABSENT, NULL, TRUE, FALSE, NUMBER, TEXT, ARRAY, OBJECT = range(8)
#: SQLite's ``json_type`` names, as type codes.
TYPE_CODES = {
    "null": NULL,
    "true": TRUE,
    "false": FALSE,
    "integer": NUMBER,
    "real": NUMBER,
    "text": TEXT,
    "array": ARRAY,
    "object": OBJECT,
}
#: The largest integer a float64 holds exactly.
EXACT_INT = 2**53
_NUMERIC = ("integer", "float")
_TEXTUAL = ("keyword", "datetime")


class FieldColumn:
    """One indexed field: the JSON type and value of the field in every store row."""

    def __init__(self, spec: FieldIndexSpec, size: int = 1024) -> None:
        self.spec = spec
        self.types = np.zeros(size, dtype=np.int8)
        self.numbers = np.full(size if spec.kind in _NUMERIC else 0, np.nan)
        self.codes = np.full(size if spec.kind in _TEXTUAL else 0, -1, dtype=np.int32)
        self.strings: list[str] = []  # the distinct strings, by code
        self._code_of: dict[str, int] = {}
        self._sorted: tuple[Int64Array, npt.NDArray[np.str_]] | None = None
        self.inexact = 0  # rows holding integers beyond EXACT_INT

    # -- upkeep --------------------------------------------------------------------------
    def grow(self, size: int) -> None:
        if size <= len(self.types):
            return
        size = max(size, 2 * len(self.types))
        self.types = np.concatenate([self.types, np.zeros(size - len(self.types), np.int8)])
        if len(self.numbers):
            extra = np.full(size - len(self.numbers), np.nan)
            self.numbers = np.concatenate([self.numbers, extra])
        if len(self.codes):
            extra_codes = np.full(size - len(self.codes), -1, dtype=np.int32)
            self.codes = np.concatenate([self.codes, extra_codes])

    def clear(self, rows: Int64Array) -> None:
        """Forget the values of ``rows`` (deleted, or about to be set again)."""
        rows = rows[rows < len(self.types)]
        if len(self.numbers):
            big = np.abs(self.numbers[rows]) > EXACT_INT
            self.inexact -= int(np.count_nonzero(big & (self.types[rows] == NUMBER)))
            self.numbers[rows] = np.nan
        if len(self.codes):
            self.codes[rows] = -1
        self.types[rows] = ABSENT

    def set(self, rows: Int64Array, kinds: list[str | None], values: list[Any]) -> None:
        """Set the field of ``rows`` to ``values`` of the JSON types ``kinds`` (``None``:
        the row lacks the field)."""
        if not len(rows):
            return
        self.clear(rows)
        self.types[rows] = [TYPE_CODES.get(k, ABSENT) if k else ABSENT for k in kinds]
        if len(self.numbers):
            picked = [i for i, k in enumerate(kinds) if k in ("integer", "real")]
            if picked:
                numbers = [values[i] for i in picked]
                self.inexact += sum(1 for v in numbers if isinstance(v, int) and abs(v) > EXACT_INT)
                self.numbers[rows[picked]] = np.array(numbers, dtype=np.float64)
        if len(self.codes):
            picked = [i for i, k in enumerate(kinds) if k == "text"]
            if picked:
                self.codes[rows[picked]] = [self._code(values[i]) for i in picked]

    def _code(self, text: str) -> int:
        code = self._code_of.get(text)
        if code is None:
            code = self._code_of[text] = len(self.strings)
            self.strings.append(text)
            self._sorted = None
        return code

    def restore(self, types: Any, numbers: Any, codes: Any, strings: list[str]) -> None:
        """Take columns saved by an earlier process (see ``FieldIndexes.save``)."""
        self.types, self.numbers, self.codes = types, numbers, codes
        self.strings = strings
        self._code_of = {s: i for i, s in enumerate(strings)}
        self._sorted = None
        if len(numbers):
            big = (np.abs(numbers) > EXACT_INT) & (types[: len(numbers)] == NUMBER)
            self.inexact = int(np.count_nonzero(big))

    def nbytes(self) -> int:
        strings = sum(len(s) for s in self.strings) + 60 * len(self.strings)
        return int(self.types.nbytes + self.numbers.nbytes + self.codes.nbytes + strings)

    # -- answering comparisons -------------------------------------------------------------
    def _has(self, code: int, size: int) -> bool:
        return bool(np.any(self.types[:size] == code))

    def _text_mask(self, leaf: FilterLeaf, size: int) -> Mask | None:
        if not len(self.codes):
            return None if self._has(TEXT, size) else np.zeros(size, dtype=bool)
        hit = np.zeros(len(self.strings) + 1, dtype=bool)  # the last entry: code -1
        if leaf.op == "eq":
            code = self._code_of.get(leaf.operand)
            if code is not None:
                hit[code] = True
        elif leaf.op == "in":
            for text in leaf.operand:
                code = self._code_of.get(text)
                if code is not None:
                    hit[code] = True
        else:
            order, values = self._sorted_strings()
            lo, hi = _bounds(values, leaf.op, leaf.operand)
            hit[order[lo:hi]] = True
        return hit[self.codes[:size]]

    def _sorted_strings(self) -> tuple[Int64Array, npt.NDArray[np.str_]]:
        """The codes in string order, and the strings in that order (kept until a new
        string arrives). numpy orders str by code point, as SQLite orders UTF-8 text."""
        if self._sorted is None:
            values = np.array(self.strings, dtype=str)
            order = np.argsort(values, kind="stable").astype(np.int64)
            self._sorted = (order, values[order])
        return self._sorted

    def _number_mask(self, leaf: FilterLeaf, size: int) -> Mask | None:
        if not len(self.numbers) or self.inexact:
            return None if self._has(NUMBER, size) else np.zeros(size, dtype=bool)
        operands = leaf.operand if leaf.op == "in" else (leaf.operand,)
        if any(isinstance(v, int) and abs(v) > EXACT_INT for v in operands):
            return None
        column = self.numbers[:size]
        found: Mask
        with np.errstate(invalid="ignore"):
            if leaf.op == "eq":
                found = column == float(leaf.operand)
            elif leaf.op == "in":
                found = np.isin(column, np.array(operands, dtype=np.float64))
            else:
                bound = float(leaf.operand)
                compare = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less}
                found = compare.get(leaf.op, np.less_equal)(column, bound)
        return found

    def mask(self, leaf: FilterLeaf, size: int) -> Mask | None:
        """The rows below ``size`` that pass ``leaf``, or ``None`` when this column cannot
        tell exactly (the caller then asks SQL)."""
        types = self.types[:size]
        op, value = leaf.op, leaf.operand
        if op == "exists":
            found: Mask = (types != ABSENT) if value else (types == ABSENT)
            return found
        if op == "contains":
            return None if self._has(ARRAY, size) else np.zeros(size, dtype=bool)
        if op in ("eq", "in") and (value is None or isinstance(value, bool)):
            found = types == {None: NULL, True: TRUE, False: FALSE}[value]
            return found
        sample = value[0] if op == "in" else value
        text = isinstance(sample, str)
        part = self._text_mask(leaf, size) if text else self._number_mask(leaf, size)
        if part is None:
            return None
        both: Mask = part & (types == (TEXT if text else NUMBER))
        return both


def _bounds(values: npt.NDArray[np.str_], op: str, bound: str) -> tuple[int, int]:
    """The slice of the sorted ``values`` that passes ``op bound``."""
    probe: Any = np.array([bound], dtype=str)
    find: Any = np.searchsorted
    if op in ("gt", "gte"):
        return int(find(values, probe, side="right" if op == "gt" else "left")[0]), len(values)
    return 0, int(find(values, probe, side="left" if op == "lt" else "right")[0])


def evaluate(
    tree: FilterTree, columns: dict[tuple[str, ...], FieldColumn], live: Mask
) -> Mask | None:
    """The live rows that pass ``tree``, from ``columns``; ``None`` when a field it
    compares is not indexed or a column cannot answer exactly."""
    size = len(live)
    if isinstance(tree, FilterLeaf):
        column = columns.get(tree.keys)
        if column is None:
            return None
        column.grow(size)
        found = column.mask(tree, size)
        return None if found is None else found & live
    if tree.op == "all":
        return live.copy()
    parts = []
    for part in tree.parts:
        found = evaluate(part, columns, live)
        if found is None:
            return None
        parts.append(found)
    if tree.op == "not":
        return live & ~parts[0]
    combined = parts[0].copy()
    for found in parts[1:]:
        if tree.op == "and":
            combined &= found
        else:
            combined |= found
    return combined


def covers(tree: FilterTree, columns: Container[tuple[str, ...]]) -> bool:
    """Whether every field ``tree`` compares is among ``columns`` (no look at the values)."""
    if isinstance(tree, FilterLeaf):
        return tree.keys in columns
    return all(covers(part, columns) for part in tree.parts)
