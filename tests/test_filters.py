"""The filter language: every operator against an independent Python evaluator."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import matches
from simsearch.filters import compile_filter
from simsearch.validation import metadata_to_json

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -2.5]),
    st.sampled_from(["", "a", "b", "ä", "1", "true", "Zoë"]),
)
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=2), st.fixed_dictionaries({"x": SCALAR}))
META = st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUE, max_size=3)
FIELD = st.sampled_from(["a", "b", "c", "a.x", "b.x"])


def field_op() -> st.SearchStrategy[dict[str, Any]]:
    ordered = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, "a", "b", "", "ä"]))
    ops = st.one_of(
        st.builds(lambda v: {"$eq": v}, SCALAR),
        st.builds(lambda v: {"$ne": v}, SCALAR),
        st.builds(lambda o, v: {o: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ordered),
        st.builds(lambda v: {"$in": v}, st.lists(SCALAR, min_size=1, max_size=4)),
        st.builds(lambda v: {"$nin": v}, st.lists(SCALAR, min_size=1, max_size=4)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda v: {"$contains": v}, SCALAR),
        st.builds(lambda v: {"$all": v}, st.lists(SCALAR, min_size=1, max_size=3)),
    )
    return st.builds(lambda f, op: {f: op}, FIELD, st.one_of(ops, SCALAR))


FILTER = st.recursive(
    field_op(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, inner),
    ),
    max_leaves=6,
)


def sql_matches(rows: list[dict[str, Any]], where: Any) -> list[int]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, metadata TEXT)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?)", [(i, metadata_to_json(m)) for i, m in enumerate(rows)]
    )
    flt = compile_filter(where)
    return [i for (i,) in conn.execute(f"SELECT i FROM t WHERE {flt.sql} ORDER BY i", flt.params)]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(META, min_size=1, max_size=8), where=FILTER)
def test_compiled_filter_agrees_with_the_python_evaluator(
    rows: list[dict[str, Any]], where: Any
) -> None:
    assert sql_matches(rows, where) == [i for i, m in enumerate(rows) if matches(m, where)]


ROWS = [
    {"lang": "en", "year": 2001, "flag": True, "author": {"name": "Ada"}},
    {"lang": "de", "year": 1999.5, "flag": False, "author": {"name": "Bob"}},
    {"lang": "en", "year": "2001", "extra": None},
    {"lang": "fr", "tags": ["a", 1, True, None]},
    {"tags": ["b", 1.0], "lang": ["en"]},
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, [0, 1, 2, 3, 4]),
        ({"lang": "en"}, [0, 2]),  # ["en"] is a list, not "en"
        ({"year": 2001}, [0]),  # the string "2001" is not the number 2001
        ({"year": 2001.0}, [0]),  # integers and floats compare by value
        ({"flag": True}, [0]),
        ({"flag": 1}, []),  # true is not 1
        ({"year": {"$gte": 2000}}, [0]),
        ({"year": {"$lt": 2000}}, [1]),
        ({"year": {"$gt": "2"}}, [2]),  # only the text "2001" compares with text
        ({"lang": {"$gt": "en"}}, [3]),
        ({"lang": {"$in": ["de", "fr"]}}, [1, 3]),
        ({"lang": {"$nin": ["de", "fr"]}}, [0, 2, 4]),
        ({"year": {"$ne": 2001}}, [1, 2, 3, 4]),  # missing fields match $ne
        ({"extra": None}, [2]),
        ({"extra": {"$exists": True}}, [2]),  # a JSON null exists
        ({"flag": {"$exists": False}}, [2, 3, 4]),
        ({"author.name": "Ada"}, [0]),
        ({"author.name": {"$exists": True}, "lang": "de"}, [1]),
        ({"$or": [{"lang": "fr"}, {"flag": False}]}, [1, 3]),
        ({"$not": {"lang": "en"}}, [1, 3, 4]),
        ({"tags": {"$contains": "a"}}, [3]),
        ({"tags": {"$contains": 1}}, [3, 4]),  # 1 and 1.0 are one number
        ({"tags": {"$contains": True}}, [3]),  # true is not 1
        ({"tags": {"$contains": None}}, [3]),
        ({"lang": {"$contains": "en"}}, [4]),  # only a list holds; "en" itself does not
        ({"lang": {"$contains": "e"}}, []),  # no substrings
        ({"tags": {"$all": ["a", 1]}}, [3]),
        ({"tags": {"$all": [1]}}, [3, 4]),
        ({"$not": {"tags": {"$contains": "a"}}}, [0, 1, 2, 4]),
        ({"$and": [{"lang": "en"}, {"$not": {"flag": True}}]}, [2]),
    ],
)
def test_documented_semantics(where: dict[str, Any], expected: list[int]) -> None:
    assert sql_matches(ROWS, where) == expected


def test_json_text_filters_and_large_in_lists() -> None:
    assert sql_matches(ROWS, '{"lang": "de"}') == [1]
    many = [*list(range(5000)), "en"]
    assert sql_matches(ROWS, {"lang": {"$in": many}}) == [0, 2]


def test_deep_nesting_is_refused() -> None:
    from simsearch import InvalidFilterError

    where: dict[str, Any] = {"a": 1}
    for _ in range(40):
        where = {"$not": where}
    with pytest.raises(InvalidFilterError, match="deeper"):
        compile_filter(where)
