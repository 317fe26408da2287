r"""The ``where`` filter language: parse, validate and compile to SQLite.

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
``$contains`` str, number, bool or null: the field is a  does not match
           list holding it
``$all``   non-empty list: the field is a list holding  does not match
           every one
========== ============================================ ==========================

Comparisons are typed: ``1`` never equals ``"1"`` or ``true``; numbers compare
with numbers and strings with strings (by code point). Integers and floats
compare by value. Values inside lists are reached only by ``$contains`` and
``$all`` (``{"tags": "a"}`` does not match ``{"tags": ["a"]}``).

Field paths name every key metadata may hold. A backslash escapes the next
character: ``\.`` is a dot inside a key (``"a\.b"`` is the key ``a.b``, not
``b`` inside ``a``), ``\\`` is a backslash and ``\$`` a dollar sign (a field at
the top level may not begin with a bare ``$``, which starts an operator); a
backslash before anything else is an error. Every other character (spaces,
brackets, single quotes, tabs, newlines, non-ASCII letters...) stands for
itself. :func:`field_path` writes the path of given keys. Keys that are empty or
hold NUL, a double quote or a lone surrogate are refused when metadata is
written, so every stored key can be named.

Limits: a filter nests at most 32 levels (:data:`MAX_DEPTH`), holds at most
10,000 comparisons (:data:`MAX_CLAUSES`; an empty filter ``{}`` counts as one)
and 30,000 values in all (:data:`MAX_VALUES`: three per comparison, one per
``$in`` value), and one ``$in``/``$nin`` list holds at most 10,000 values
(:data:`MAX_IN_VALUES`). Lists of any length up to those limits work; a filter
both very wide and deeply nested can still exceed what the SQLite in use
parses. Every one of these raises :class:`~simsearch.errors.InvalidFilterError`
saying which limit it met.

>>> f = compile_filter({"year": {"$gte": 2000}, "lang": {"$in": ["en", "de"]}})
>>> f.params
['$."year"', '$."year"', 2000, '$."lang"', '$."lang"', 'en', 'de']
>>> compile_filter({r"C:\\dir\.old": 1}).params  # the key C:\dir.old
['$."C:\\\\dir.old"', '$."C:\\\\dir.old"', 1]
>>> field_path("a.b", "c")
'a\\.b.c'
>>> compile_filter({"year": {"$near": 3}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
simsearch.errors.InvalidFilterError: unknown operator '$near' at year; valid operators are: ...
"""

from __future__ import annotations

import atexit
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from simsearch.errors import InvalidFilterError
from simsearch.validation import INT64_RANGE, describe_invalid_unicode

__all__ = [
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_CLAUSES",
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_VALUES",
    "FilterLeaf",
    "FilterNode",
    "SqlFilter",
    "compile_filter",
    "field_keys",
    "field_path",
]

FIELD_OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains", "$all",
)  # fmt: skip
LOGICAL_OPERATORS = ("$and", "$or", "$not")

#: Levels of nested filter objects (``$and``/``$or``/``$not`` each add one).
MAX_DEPTH = 32
#: Values in one ``$in`` or ``$nin`` list.
MAX_IN_VALUES = 10_000
#: Field comparisons in one filter (an empty filter ``{}`` counts as one).
MAX_CLAUSES = 10_000
#: SQL parameters of one filter (three per comparison, plus one per ``$in`` value):
#: below SQLite's default cap of 32,766, leaving room for the store's own.
MAX_VALUES = 30_000
#: Terms joined in one SQL chain. SQLite parses ``a OR b OR c`` into an expression
#: whose depth grows with its length (at most 1,000 deep) and ``(a OR (b OR c))`` into
#: one whose parser stack grows with the nesting (about 30 levels in SQLite 3.40), so
#: long lists become chains of parenthesised chains, each at most this long.
_CHAIN = 32


@dataclass(frozen=True)
class FilterLeaf:
    """One comparison of a filter's tree: the field's keys (outermost first), the operation
    (``eq``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``, ``exists``, ``contains``) and its
    operand (a scalar; a tuple of scalars for ``in``; a bool for ``exists``)."""

    keys: tuple[str, ...]
    op: str
    operand: Any


@dataclass(frozen=True)
class FilterNode:
    """``and``/``or`` of its parts, ``not`` of its one part, or ``all`` (no parts: every
    item). ``$ne`` and ``$nin`` are ``not`` of ``eq`` and ``in``: a missing field matches."""

    op: str
    parts: tuple[FilterLeaf | FilterNode, ...] = ()


FilterTree = FilterLeaf | FilterNode


def _required(tree: FilterTree) -> Iterator[FilterLeaf]:
    """The comparisons every matching item must pass (reached from the root through
    ``and`` alone)."""
    if isinstance(tree, FilterLeaf):
        yield tree
    elif tree.op == "and":
        for part in tree.parts:
            yield from _required(part)


@dataclass(frozen=True)
class SqlFilter:
    """A compiled filter: a SQL boolean expression over ``column`` and its parameters, and
    the same filter as a tree (which payload indexes evaluate without SQL)."""

    sql: str
    params: list[Any]
    tree: FilterTree = field(default=FilterNode("all"), compare=False, repr=False)

    @property
    def required_fields(self) -> frozenset[tuple[str, ...]]:
        """The fields (as key tuples) an item must hold to match: those compared by a
        condition every match passes. A filter requiring a field no item holds matches
        nothing, which is almost always a typo. ``$exists`` tests are left out (naming a
        field to test its presence is deliberate), as are fields under ``$or``, ``$not``,
        ``$ne`` and ``$nin``, which a missing field can pass."""
        return frozenset(leaf.keys for leaf in _required(self.tree) if leaf.op != "exists")

    @cached_property
    def key(self) -> str:
        """A text naming this filter exactly (its SQL and parameters), for caches (made once:
        a compiled filter is reused by every search that repeats it)."""
        return self.sql + "\x00" + json.dumps(self.params)

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
        except UnicodeDecodeError as exc:
            raise InvalidFilterError(f"filter is not valid UTF-8 JSON: {exc.reason}") from None
        except RecursionError:
            raise InvalidFilterError(f"filter is nested deeper than {MAX_DEPTH} levels") from None
    compiled = _Compiler(column).filter(where, "", 0)
    params = list(compiled.params)
    _check_sqlite_accepts(compiled.sql, params, column)
    return SqlFilter(sql=compiled.sql, params=params, tree=compiled.tree)


def field_path(*keys: str) -> str:
    r"""The filter field path that names ``keys``, outermost first (escaping ``.``, ``\``
    and a leading ``$``).

    >>> field_path("author", "name")
    'author.name'
    >>> field_path("$price")
    '\\$price'
    """
    if not keys:
        raise InvalidFilterError("field_path needs at least one key")
    parts = []
    for key in keys:
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"field_path takes non-empty strings, not {key!r}")
        parts.append(key.replace("\\", "\\\\").replace(".", "\\."))
    if parts[0].startswith("$"):
        parts[0] = "\\" + parts[0]
    return ".".join(parts)


def _describe(path: str) -> str:
    return path or "the top level"


_ESCAPABLE = (".", "\\", "$")


def field_keys(field: str) -> list[str]:
    """The keys a field path names, outermost first (see the module docstring)."""
    keys: list[str] = []
    part: list[str] = []
    chars = iter(field)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in _ESCAPABLE:
                shown = f"'\\{escaped}'" if escaped else "a backslash at its end"
                raise InvalidFilterError(
                    f"field path {field!r} holds {shown}; a backslash escapes only '.', '\\' "
                    "or '$' (write '\\\\' for a backslash)"
                )
            part.append(escaped)
        elif char == ".":
            keys.append("".join(part))
            part = []
        else:
            part.append(char)
    keys.append("".join(part))
    if any(not k for k in keys):
        raise InvalidFilterError(f"field path {field!r} has an empty part")
    return keys


def _json_path(field: str) -> str:
    bad = describe_invalid_unicode(field)
    if bad:
        raise InvalidFilterError(f"field path {field!r} {bad}")
    if "\x00" in field:
        raise InvalidFilterError(f"field path {field!r} holds a NUL character")
    if '"' in field:
        raise InvalidFilterError(f'field path {field!r} may not contain a double quote (")')
    # Each key is written as stored metadata writes it (JSON escapes, no ASCII escaping):
    # SQLite before 3.45 matches a quoted path label against the stored key's JSON text,
    # later versions decode both; either way the key is found.
    labels = (json.dumps(k, ensure_ascii=False)[1:-1] for k in field_keys(field))
    return "$" + "".join(f'."{label}"' for label in labels)


def _check_scalar(value: Any, where: str, op: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        bad = describe_invalid_unicode(value)
        if bad:
            raise InvalidFilterError(f"{op} operand at {where} {bad}")
        if "\x00" in value:
            raise InvalidFilterError(
                f"{op} operand at {where} holds a NUL character, which no stored value holds"
            )
        return
    if isinstance(value, int):
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise InvalidFilterError(f"{op} operand at {where} is outside the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilterError(f"{op} operand at {where} must be a finite number")
        return
    raise InvalidFilterError(
        f"{op} operand at {where} is {type(value).__name__}; expected str, number, bool or null"
    )


@dataclass(frozen=True)
class _Sql:
    """A compiled part: SQL that is ``1`` or wrapped in parentheses (so it combines
    without precedence surprises), its parameters, and how many parentheses deep it
    nests."""

    sql: str
    params: tuple[Any, ...]
    nesting: int
    tree: FilterTree


_ALL = _Sql("1", (), 0, FilterNode("all"))


def _join(parts: list[_Sql], joiner: str) -> _Sql:
    """``parts`` joined with ``joiner`` (`` AND `` or `` OR ``) in a shape SQLite parses.

    The most deeply nested parts go first: SQLite's parser stack grows little for
    parentheses that open one after another, and much more for each one opened after an
    operator. Lists longer than ``_CHAIN`` become chains of parenthesised chains.
    """
    if len(parts) == 1:
        return parts[0]
    tree = FilterNode("and" if joiner == " AND " else "or", tuple(p.tree for p in parts))
    parts = sorted(parts, key=lambda p: -p.nesting)
    while len(parts) > _CHAIN:
        groups = -(-len(parts) // _CHAIN)
        size = -(-len(parts) // groups)
        parts = [_chain(parts[i : i + size], joiner) for i in range(0, len(parts), size)]
    joined = _chain(parts, joiner)
    return _Sql(joined.sql, joined.params, joined.nesting, tree)


def _chain(parts: list[_Sql], joiner: str) -> _Sql:
    if len(parts) == 1:
        return parts[0]
    sql = "(" + joiner.join(p.sql for p in parts) + ")"
    params = tuple(v for p in parts for v in p.params)
    return _Sql(sql, params, parts[0].nesting + 1, parts[0].tree)  # tree set by _join


def _negate(part: _Sql) -> _Sql:
    # Parts are 0, 1 or NULL (a missing field); a negation matches all but 1.
    return _Sql(
        f"({part.sql} IS NOT 1)", part.params, part.nesting + 1, FilterNode("not", (part.tree,))
    )


@dataclass(frozen=True)
class _Field:
    """A field a comparison reads: as the user wrote it, as a JSON path, and as keys."""

    name: str
    path: str
    keys: tuple[str, ...]


class _Compiler:
    def __init__(self, column: str) -> None:
        self.col = column
        self.clauses = 0
        self.values = 0

    def count(self, where: str) -> None:
        """Count one comparison (refusing filters over the limit before they are built)."""
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise InvalidFilterError(
                f"filter holds more than {MAX_CLAUSES:,} comparisons (at {_describe(where)}); "
                "use $in for lists of values, or split the filter"
            )

    def filter(self, node: Any, where: str, depth: int) -> _Sql:
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
                clauses.append(self.field(key, value))
        if not clauses:
            self.count(where)
            return _ALL
        return _join(clauses, " AND ")

    def logical(self, op: str, value: Any, where: str, depth: int) -> _Sql:
        here = f"{where}.{op}" if where else op
        if op == "$not":
            return _negate(self.filter(value, here, depth + 1))
        if op in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{op} at {_describe(where)} takes a non-empty list")
            parts = [self.filter(v, f"{here}[{i}]", depth + 1) for i, v in enumerate(value)]
            return _join(parts, " AND " if op == "$and" else " OR ")
        if op in FIELD_OPERATORS:
            raise InvalidFilterError(
                f"{op} at {_describe(where)} needs a field: write {{'field': {{'{op}': ...}}}}"
            )
        raise InvalidFilterError(
            f"unknown operator {op!r} at {_describe(where)}; "
            f"valid logical operators are: {', '.join(LOGICAL_OPERATORS)}"
        )

    def field(self, name: str, value: Any) -> _Sql:
        at = _Field(name, _json_path(name), tuple(field_keys(name)))
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
                self.count(name)
                parts.append(self.operator(op, operand, at))
            return _join(parts, " AND ")
        if isinstance(value, list):
            raise InvalidFilterError(
                f"{name} compares with a list; use {{'$in': [...]}} for one of several values, "
                "or $contains/$all to look inside a list field"
            )
        self.count(name)
        return self.operator("$eq", value, at)

    # -- typed comparisons -------------------------------------------------
    def leaf(self, tree: FilterLeaf, template: str, *params: Any) -> _Sql:
        """One comparison: ``template`` with ``TYPE`` and ``VALUE`` for the JSON type and
        value at a path and ``EACH`` for the elements of the list there (each takes the
        path as its parameter, in order)."""
        self.values += len(params)
        if self.values > MAX_VALUES:
            raise InvalidFilterError(
                f"filter needs more than {MAX_VALUES:,} values (three per comparison, one "
                "per $in/$nin value); split it"
            )
        sql = template.replace("TYPE", f"json_type({self.col}, ?)")
        sql = sql.replace("EACH", f"json_each({self.col}, ?)")
        return _Sql(sql.replace("VALUE", f"json_extract({self.col}, ?)"), params, 1, tree)

    def eq(self, at: _Field, value: Any) -> _Sql:
        tree = FilterLeaf(at.keys, "eq", value)
        if value is None:
            return self.leaf(tree, "(TYPE = 'null')", at.path)
        if isinstance(value, bool):
            return self.leaf(tree, f"(TYPE = '{'true' if value else 'false'}')", at.path)
        kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
        return self.leaf(tree, f"(TYPE IN {kinds} AND VALUE = ?)", at.path, at.path, value)

    def compare(self, op: str, at: _Field, value: Any) -> _Sql:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidFilterError(
                f"{op} at {at.name} compares with {type(value).__name__}; expected a number or str"
            )
        sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
        tree = FilterLeaf(at.keys, op[1:], value)
        sql = f"(TYPE IN {kinds} AND VALUE {sql_op} ?)"
        return self.leaf(tree, sql, at.path, at.path, value)

    def scalars(self, values: Any, at: _Field, op: str) -> list[Any]:
        if not isinstance(values, list) or not values:
            raise InvalidFilterError(f"{op} at {at.name} takes a non-empty list")
        if len(values) > MAX_IN_VALUES:
            raise InvalidFilterError(f"{op} at {at.name} holds more than {MAX_IN_VALUES} values")
        for v in values:
            _check_scalar(v, at.name, op)
        return values

    def in_list(self, at: _Field, values: Any, op: str) -> _Sql:
        values = self.scalars(values, at, op)
        # One IN per JSON type keeps the expression shallow whatever the list length.
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        texts = [v for v in values if isinstance(v, str)]
        parts = []
        for group, kinds in ((numbers, "('integer', 'real')"), (texts, "('text')")):
            if group:
                marks = ", ".join("?" for _ in group)
                sql = f"(TYPE IN {kinds} AND VALUE IN ({marks}))"
                tree = FilterLeaf(at.keys, "in", tuple(group))
                parts.append(self.leaf(tree, sql, at.path, at.path, *group))
        for special in (True, False, None):
            if any(v is special for v in values):
                parts.append(self.eq(at, special))
        return _join(parts, " OR ")

    def contains(self, at: _Field, value: Any) -> _Sql:
        """The field is a list holding ``value`` (typed as ``$eq`` compares)."""
        tree = FilterLeaf(at.keys, "contains", value)
        params: tuple[Any, ...] = ()
        if value is None or isinstance(value, bool):
            kind = "null" if value is None else ("true" if value else "false")
            element = f"e.type = '{kind}'"
        else:
            kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
            element, params = f"e.type IN {kinds} AND e.value = ?", (value,)
        sql = f"(TYPE = 'array' AND EXISTS (SELECT 1 FROM EACH AS e WHERE {element}))"
        return self.leaf(tree, sql, at.path, at.path, *params)

    def operator(self, op: str, operand: Any, at: _Field) -> _Sql:
        name = at.name
        if op == "$eq":
            _check_scalar(operand, name, op)
            return self.eq(at, operand)
        if op == "$ne":
            _check_scalar(operand, name, op)
            return _negate(self.eq(at, operand))
        if op in ("$gt", "$gte", "$lt", "$lte"):
            _check_scalar(operand, name, op)
            return self.compare(op, at, operand)
        if op == "$in":
            return self.in_list(at, operand, op)
        if op == "$nin":
            return _negate(self.in_list(at, operand, op))
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilterError(f"$exists at {name} takes true or false")
            tree = FilterLeaf(at.keys, "exists", operand)
            return self.leaf(tree, f"(TYPE IS {'NOT ' if operand else ''}NULL)", at.path)
        if op == "$contains":
            _check_scalar(operand, name, op)
            return self.contains(at, operand)
        if op == "$all":
            values = self.scalars(operand, at, op)
            return _join([self.contains(at, v) for v in values], " AND ")
        raise InvalidFilterError(
            f"unknown operator {op!r} at {name}; valid operators are: {', '.join(FIELD_OPERATORS)}"
        )


_probe_lock = threading.Lock()
#: One in-memory database per column name, opened on first use, with an empty table
#: shaped like the store's.
_probes: dict[str, sqlite3.Connection] = {}


def _check_sqlite_accepts(sql: str, params: list[Any], column: str) -> None:
    """Refuse, as an input error, a filter the SQLite in use cannot parse.

    SQLite's parser limits (expression depth, parser stack, parameter count) differ
    between builds, and are all checked while a statement is parsed. This parses the
    store's query in its larger form (``seq > ? AND (filter)``) behind a constant false
    test, so SQLite drops it before planning and code generation, which for a long
    filter cost ten times as much as parsing it.
    """
    if sql == "1":
        return
    with _probe_lock:
        conn = _probes.get(column)
        if conn is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            conn.execute(
                f"CREATE TABLE items (row INTEGER PRIMARY KEY, seq INTEGER, {column} TEXT)"
            )
            atexit.register(conn.close)
            _probes[column] = conn
        try:
            conn.execute(
                f"SELECT row FROM items WHERE 0 AND (seq > ? AND ({sql})) ORDER BY row",
                [0, *params],
            ).fetchall()
        except sqlite3.Error as exc:
            raise InvalidFilterError(
                f"filter is too large for SQLite ({exc}); use fewer comparisons or nest "
                f"fewer levels (the limits are {MAX_CLAUSES:,} comparisons and {MAX_DEPTH} "
                "levels, fewer when both are used at once)"
            ) from None
