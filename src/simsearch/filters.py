"""The ``where`` filter language: parse, validate and compile to SQLite.

A filter is a JSON object (a Python dict) over item metadata:

- ``{"lang": "en"}``: the field equals the value (shorthand for ``{"$eq": "en"}``).
- ``{"year": {"$gte": 2000, "$lt": 2010}}``: every operator in the object must hold.
- ``{"author.name": "Ada"}``: dotted paths reach into nested objects.
- ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}``, ``{"$not": f}``: combine filters.
  Several keys in one object are joined with ``$and``; ``{}`` matches everything.

Field operators:

========== ============================================ ==========================
operator   operand                                      a missing field
========== ============================================ ==========================
``$eq``    str, number, bool or null                    does not match
``$ne``    str, number, bool or null                    matches
``$gt``    str or number (``$gte``, ``$lt``, ``$lte``)  does not match
``$in``    non-empty list of str, number, bool, null    does not match
``$nin``   non-empty list of str, number, bool, null    matches
``$exists`` bool                                        matches ``false``
========== ============================================ ==========================

Comparisons are typed: ``1`` never equals ``"1"`` or ``true``; numbers compare
with numbers and strings with strings (by code point). Integers and floats
compare by value. Values inside arrays are not searched.

>>> f = compile_filter({"year": {"$gte": 2000}, "lang": {"$in": ["en", "de"]}})
>>> f.params
['$."year"', '$."year"', 2000, '$."lang"', '$."lang"', 'en', 'de']
>>> compile_filter({"year": {"$near": 3}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
simsearch.errors.InvalidFilterError: unknown operator '$near' at year; valid operators are: ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simsearch.errors import InvalidFilterError

__all__ = ["FIELD_OPERATORS", "LOGICAL_OPERATORS", "SqlFilter", "compile_filter"]

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
LOGICAL_OPERATORS = ("$and", "$or", "$not")

MAX_DEPTH = 32
MAX_IN_VALUES = 10_000
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class SqlFilter:
    """A compiled filter: a SQL boolean expression over ``column`` and its parameters."""

    sql: str
    params: list[Any]

    @property
    def matches_all(self) -> bool:
        """True for the empty filter, which matches every item."""
        return self.sql == "1"


def compile_filter(where: Any, *, column: str = "metadata") -> SqlFilter:
    """Validate ``where`` and compile it to a SQLite expression over ``column``.

    ``where`` may be a dict or its JSON text. Raises
    :class:`~simsearch.errors.InvalidFilterError` naming the offending place
    and listing what is valid.
    """
    if isinstance(where, str | bytes):
        try:
            where = json.loads(where)
        except json.JSONDecodeError as exc:
            raise InvalidFilterError(f"filter is not valid JSON: {exc}") from None
    params: list[Any] = []
    sql = _Compiler(column, params).filter(where, "", 0)
    return SqlFilter(sql=sql, params=params)


def _describe(path: str) -> str:
    return path or "the top level"


def _json_path(field: str, where: str) -> str:
    parts = field.split(".")
    if any(not p for p in parts):
        raise InvalidFilterError(f"field path {field!r} at {_describe(where)} has an empty part")
    if any('"' in p for p in parts):
        raise InvalidFilterError(f'field path {field!r} may not contain a double quote (")')
    return "$" + "".join(f'."{p}"' for p in parts)


def _check_scalar(value: Any, where: str, op: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidFilterError(f"{op} operand at {where} is outside the 64-bit range")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidFilterError(f"{op} operand at {where} must be a finite number")
        return
    raise InvalidFilterError(
        f"{op} operand at {where} is {type(value).__name__}; expected str, number, bool or null"
    )


class _Compiler:
    def __init__(self, column: str, params: list[Any]) -> None:
        self.col = column
        self.params = params

    def filter(self, node: Any, where: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise InvalidFilterError(f"filter is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise InvalidFilterError(
                f"filter at {_describe(where)} must be an object, not {type(node).__name__}"
            )
        clauses = []
        for key, value in node.items():
            if not isinstance(key, str):
                raise InvalidFilterError(f"filter key {key!r} must be a string")
            if key.startswith("$"):
                clauses.append(self.logical(key, value, where, depth))
            else:
                clauses.append(self.field(key, value, depth))
        if not clauses:
            return "1"
        return clauses[0] if len(clauses) == 1 else "(" + " AND ".join(clauses) + ")"

    def logical(self, op: str, value: Any, where: str, depth: int) -> str:
        here = f"{where}.{op}" if where else op
        if op == "$not":
            return f"NOT COALESCE({self.filter(value, here, depth + 1)}, 0)"
        if op in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{op} at {_describe(where)} takes a non-empty list")
            parts = [self.filter(v, f"{here}[{i}]", depth + 1) for i, v in enumerate(value)]
            joiner = " AND " if op == "$and" else " OR "
            return "(" + joiner.join(parts) + ")"
        if op in FIELD_OPERATORS:
            raise InvalidFilterError(
                f"{op} at {_describe(where)} needs a field: write {{'field': {{'{op}': ...}}}}"
            )
        raise InvalidFilterError(
            f"unknown operator {op!r} at {_describe(where)}; "
            f"valid logical operators are: {', '.join(LOGICAL_OPERATORS)}"
        )

    def field(self, name: str, value: Any, depth: int) -> str:
        path = _json_path(name, name)
        if isinstance(value, dict):
            if not value:
                raise InvalidFilterError(f"operator object at {name} is empty")
            parts = []
            for op, operand in value.items():
                if not isinstance(op, str) or not op.startswith("$"):
                    raise InvalidFilterError(
                        f"{name} compares with an object; use dotted paths such as "
                        f"'{name}.{op}' to reach nested fields, or an operator"
                    )
                parts.append(self.operator(op, operand, name, path))
            return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
        if isinstance(value, list):
            raise InvalidFilterError(f"{name} compares with a list; use {{'$in': [...]}}")
        return self.operator("$eq", value, name, path)

    # -- typed comparisons -------------------------------------------------
    def _type(self, path: str) -> str:
        self.params.append(path)
        return f"json_type({self.col}, ?)"

    def _value(self, path: str) -> str:
        self.params.append(path)
        return f"json_extract({self.col}, ?)"

    def eq(self, path: str, value: Any) -> str:
        if value is None:
            return f"{self._type(path)} = 'null'"
        if isinstance(value, bool):
            return f"{self._type(path)} = '{'true' if value else 'false'}'"
        kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
        sql = f"({self._type(path)} IN {kinds} AND {self._value(path)} = ?)"
        self.params.append(value)
        return sql

    def compare(self, sql_op: str, path: str, value: Any, name: str, op: str) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidFilterError(
                f"{op} at {name} compares with {type(value).__name__}; expected a number or str"
            )
        kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
        sql = f"({self._type(path)} IN {kinds} AND {self._value(path)} {sql_op} ?)"
        self.params.append(value)
        return sql

    def in_list(self, path: str, values: Any, name: str, op: str) -> str:
        if not isinstance(values, list) or not values:
            raise InvalidFilterError(f"{op} at {name} takes a non-empty list")
        if len(values) > MAX_IN_VALUES:
            raise InvalidFilterError(f"{op} at {name} holds more than {MAX_IN_VALUES} values")
        for v in values:
            _check_scalar(v, name, op)
        # One IN per JSON type keeps the expression shallow whatever the list length.
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        texts = [v for v in values if isinstance(v, str)]
        parts = []
        for group, kinds in ((numbers, "('integer', 'real')"), (texts, "('text')")):
            if group:
                marks = ", ".join("?" for _ in group)
                parts.append(
                    f"({self._type(path)} IN {kinds} AND {self._value(path)} IN ({marks}))"
                )
                self.params.extend(group)
        for special in (True, False, None):
            if any(v is special for v in values):
                parts.append(self.eq(path, special))
        return "(" + " OR ".join(parts) + ")"

    def operator(self, op: str, operand: Any, name: str, path: str) -> str:
        if op == "$eq":
            _check_scalar(operand, name, op)
            return self.eq(path, operand)
        if op == "$ne":
            _check_scalar(operand, name, op)
            return f"NOT COALESCE({self.eq(path, operand)}, 0)"
        if op in ("$gt", "$gte", "$lt", "$lte"):
            _check_scalar(operand, name, op)
            sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            return self.compare(sql_op, path, operand, name, op)
        if op == "$in":
            return self.in_list(path, operand, name, op)
        if op == "$nin":
            return f"NOT COALESCE({self.in_list(path, operand, name, op)}, 0)"
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilterError(f"$exists at {name} takes true or false")
            return f"{self._type(path)} IS {'NOT ' if operand else ''}NULL"
        raise InvalidFilterError(
            f"unknown operator {op!r} at {name}; valid operators are: {', '.join(FIELD_OPERATORS)}"
        )
