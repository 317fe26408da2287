"""Payload indexes: the same rows as the SQL scan for every filter, under every write path."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsearch
from simsearch.filters import compile_filter
from simsearch.index.field_set import FIELDS_DIR
from test_filters import FILTER, META

INDEXES = [("a", "keyword"), ("b", "integer"), ("c", "float"), ("a.x", "bool"), ("b.x", "datetime")]


def both_paths(col: simsearch.Collection, where: Any) -> tuple[Any, Any, str]:
    """The rows of ``where`` from the payload indexes (or SQL where they cannot answer)
    and from the SQL scan alone, and which answered first."""
    flt = compile_filter(where)
    with col._store.snapshot() as snap:
        try:
            indexed, source = col._keeper.allowed_rows(snap, flt)
        except simsearch.InvalidFilterError as exc:
            indexed, source = type(exc), "refused"
        try:
            scanned = snap.filter_rows(flt).tolist()
        except simsearch.InvalidFilterError as exc:
            scanned = type(exc)
    return indexed if isinstance(indexed, type) else indexed.tolist(), scanned, source


def open_with(path: Path, rows: list[dict[str, Any]]) -> simsearch.Collection:
    col = simsearch.Collection.open(path, metric="dot")
    for field, kind in INDEXES:
        col.index_field(field, kind)
    if rows:
        col.add([str(i) for i in range(len(rows))], vectors=np.ones((len(rows), 2)), metadata=rows)
    return col


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(META, min_size=1, max_size=8), where=FILTER)
def test_every_filter_gets_the_sql_rows_from_the_indexes(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], where: Any
) -> None:
    with open_with(tmp_path_factory.mktemp("c") / "c", rows) as col:
        indexed, scanned, _ = both_paths(col, where)
        assert indexed == scanned


# One type per field, as indexed fields usually are: the columns then answer every filter.
TYPED = st.fixed_dictionaries(
    {},
    optional={
        "a": st.sampled_from(["", "a", "b", "ä", "Zoë", "1"]),
        "b": st.integers(-3, 3),
        "c": st.sampled_from([0.0, 1.0, 1.5, -2.5, 3]),
    },
)
TYPED_FILTER = FILTER.filter(lambda w: "contains" not in repr(w) and "$all" not in repr(w))


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(TYPED, min_size=1, max_size=10), where=TYPED_FILTER)
def test_typed_fields_are_answered_by_the_indexes_themselves(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], where: Any
) -> None:
    with open_with(tmp_path_factory.mktemp("c") / "c", rows) as col:
        indexed, scanned, source = both_paths(col, where)
        assert indexed == scanned
        assert source in ("payload index", "refused")  # never left to SQL


def test_indexes_answer_and_follow_writes_deletes_and_upserts(tmp_path: Path) -> None:
    rows = [{"a": "x", "b": i % 5, "c": i / 10} for i in range(40)]
    with open_with(tmp_path / "c", rows) as col:
        where = {"b": {"$gte": 3}, "a": "x"}
        assert both_paths(col, where)[2] == "payload index"
        col.upsert(["0", "1"], vectors=np.ones((2, 2)), metadata=[{"a": "x", "b": 4}, {"a": "y"}])
        col.delete(["3", "4"])
        col.add(["new"], vectors=np.ones((1, 2)), metadata=[{"a": "x", "b": 9}])
        indexed, scanned, source = both_paths(col, where)
        assert source == "payload index"
        assert indexed == scanned
        assert len(col.search([1.0, 1.0], k=100, where=where)[0]) == len(scanned)


def test_saved_indexes_are_loaded_and_damaged_ones_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "c"
    rows = [{"a": "x" if i % 2 else "y", "b": i} for i in range(30)]
    with open_with(path, rows):
        pass
    assert (path / FIELDS_DIR / "fields.json").is_file()
    with simsearch.Collection.open(path) as col:
        keeper = col._keeper
        assert col.explain(where={"b": {"$lt": 7}})["filter"]["allowed"] == 7
        assert keeper.fields.saved_seq == keeper.fields.applied_seq  # loaded, not rebuilt
        col.add(["late"], vectors=np.ones((1, 2)), metadata=[{"b": 1}])  # caught up from there
        assert col.explain(where={"b": {"$lt": 7}})["filter"]["allowed"] == 8
    (path / FIELDS_DIR / "0.types.npy").write_bytes(b"not numpy")
    with simsearch.Collection.open(path) as col, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert col.explain(where={"b": {"$lt": 7}})["filter"]["allowed"] == 8
    assert any("were not used" in str(w.message) for w in seen)


def test_another_process_writes_are_seen_at_the_next_search(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with open_with(path, [{"a": "x", "b": 1}]) as col:
        assert col.explain(where={"a": "x"})["filter"]["allowed"] == 1
        script = (
            "import simsearch, numpy as np\n"
            f"col = simsearch.Collection.open({str(path)!r})\n"
            "col.add(['p'], vectors=np.ones((1, 2)), metadata=[{'a': 'x', 'b': 2}])\n"
            "col.upsert(['0'], vectors=np.ones((1, 2)), metadata=[{'a': 'z'}])\n"
            "col.close()\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True)
        found = col.explain(where={"a": "x"})["filter"]
        assert found["allowed"] == 1
        assert found["from"] == "payload index"
        assert [h.id for h in col.search([1.0, 1.0], where={"a": "x"})[0]] == ["p"]
        # The other process may also declare indexes: they are built at the next search.
        script = (
            f"import simsearch\nsimsearch.Collection.open({str(path)!r})"
            ".index_field('d', 'keyword')\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True)
        found = col.explain(where={"d": {"$exists": False}})["filter"]
        assert "d" in found["indexed_fields"]
        assert found["from"] == "payload index"
        assert found["allowed"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("b", "number"), "unknown field index kind 'number'"),
        (("b", 5), "unknown field index kind 5"),
        (("", "keyword"), "needs a field path"),
        (("a..b", "keyword"), "has an empty part"),
        (("a\\q", "keyword"), "a backslash escapes only"),
        (("a", "integer"), "of kind 'integer' serves; choose the kind that fits (kind 'keyword'"),
        (("b", "keyword"), "choose the kind that fits (kind 'integer' or 'float')"),
    ],
)
def test_bad_declarations_are_refused_and_change_nothing(
    tmp_path: Path, args: tuple[Any, ...], message: str
) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["x"], vectors=np.ones((1, 2)), metadata=[{"a": "t", "b": 3}])
        with pytest.raises(simsearch.InvalidArgumentError, match=re.escape(message)):
            col.index_field(*args)
        assert col.info()["field_indexes"] == []


def test_declaring_twice_window_on_text_and_dropping(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        assert col.index_field("b", "integer") is True
        assert col.index_field("b", "integer") is False  # already there
        with pytest.raises(simsearch.InvalidArgumentError, match="already has a 'integer' index"):
            col.index_field("b", "float")
        with pytest.raises(simsearch.InvalidArgumentError, match="window=True needs a numeric"):
            col.index_field("a", "keyword", window=True)
        assert [f["field"] for f in col.info()["field_indexes"]] == ["b"]
        assert col.drop_field_index("b") is True
        assert col.drop_field_index("b") is False
        assert col.info()["field_indexes"] == []


def test_explain_says_which_plan_runs_and_why(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    graph = simsearch.HNSW(exact_below=100)
    with simsearch.Collection.open(tmp_path / "c", metric="dot", index=graph) as col:
        n = 3000
        col.add(
            [str(i) for i in range(n)],
            vectors=rng.standard_normal((n, 8)),
            metadata=[{"label": i % 100} for i in range(n)],
        )
        plain = col.explain()
        assert plain == {"index": "hnsw", "live": n, "plan": "graph", "reason": "graph search"}
        narrow = col.explain(where={"label": {"$lt": 5}})
        assert narrow["filter"]["from"] == "scan"
        assert narrow["filter"]["allowed"] == 150
        assert narrow["plan"] == "exact"
        assert "150 items" in narrow["reason"]
        col.index_field("label", "integer")
        wide = col.explain(where={"label": {"$gte": 10}})
        assert wide["filter"]["from"] == "payload index"
        assert wide["filter"]["share"] == pytest.approx(0.9)
        # 2,700 rows of 8 dimensions cost less to score than a walk: exact.
        assert wide["plan"] == "exact"
        assert "costs less than the walk" in wide["reason"]
        assert col.explain(where={"label": {"$gte": 10}}, exact=True)["plan"] == "exact"
