"""Input that once got past the checks: deep metadata, wide filters, invalid Unicode and
metadata keys no filter could name. Each is refused with a specific error, or works."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsearch
from oracle import matches
from simsearch import errors
from simsearch.filters import MAX_CLAUSES, MAX_DEPTH, compile_filter, field_path
from simsearch.validation import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    check_metadata,
    check_query_texts,
)

ALL = 1_000_000


def nested(levels: int) -> dict[str, Any]:
    """Metadata whose objects nest ``levels`` deep (the metadata object is the first)."""
    meta: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        meta = {"a": meta}
    return meta


def state(col: simsearch.Collection) -> list[tuple[str, dict[str, Any]]]:
    return [(i.id, i.metadata) for i in col.iter_items()]


@pytest.fixture
def col(tmp_path: Path) -> Iterator[simsearch.Collection]:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as c:
        c.add(["x"], vectors=[[1.0, 0.0]], metadata=[{"k": 1}], texts=["hello"])
        yield c


# -- (8) metadata depth and size ------------------------------------------------------------
@pytest.mark.parametrize("levels", [MAX_METADATA_DEPTH + 1, 256, 100_000])
def test_metadata_nested_past_the_limit_is_refused_and_nothing_is_written(
    col: simsearch.Collection, levels: int
) -> None:
    before = state(col)
    deep: Any = 1
    for _ in range(levels):  # built iteratively: the input itself is far too deep to recurse
        deep = [deep]
    meta = {"deep": deep} if levels > MAX_METADATA_DEPTH + 1 else nested(levels)
    with pytest.raises(errors.InvalidMetadataError) as info:
        col.add(["ok", "deep"], vectors=[[1, 0], [0, 1]], metadata=[{}, meta])
    assert "metadata[1]" in str(info.value)
    assert str(MAX_METADATA_DEPTH) in str(info.value)
    assert state(col) == before


def test_metadata_at_the_depth_limit_is_stored_and_returned_everywhere(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from simsearch.server.app import create_app
    from simsearch.server.settings import ServerSettings

    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as client:
        assert client.post("/collections", json={"name": "c", "metric": "dot"}).status_code == 201
        ok = client.post(
            "/collections/c/add",
            json={"ids": ["a"], "vectors": [[1, 0]], "metadata": [nested(MAX_METADATA_DEPTH)]},
        )
        assert ok.status_code == 201, ok.text
        # One level deeper: refused at write time, so no stored item can break a read.
        # (Past about 200 levels the server's JSON parser refuses the body itself.)
        for levels, code in ((MAX_METADATA_DEPTH + 1, "invalid_metadata"), (256, "invalid_input")):
            body = {"ids": ["b"], "vectors": [[0, 1]], "metadata": [nested(levels)]}
            refused = client.post("/collections/c/add", json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == code
        hits = client.post("/collections/c/search", json={"query": [1, 0], "k": 5})
        assert hits.status_code == 200, hits.text
        got = client.post("/collections/c/get", json={"ids": ["a"]})
        assert got.status_code == 200, got.text
        assert got.json()["items"][0]["metadata"] == nested(MAX_METADATA_DEPTH)


def test_metadata_size_is_bounded(col: simsearch.Collection) -> None:
    # Compact JSON of {"s":"..."} is the string plus 8 bytes; é takes two bytes in UTF-8.
    col.add(["fits"], vectors=[[1, 0]], metadata=[{"s": "x" * (MAX_METADATA_BYTES - 8)}])
    before = state(col)
    with pytest.raises(errors.InvalidMetadataError, match=r"metadata at position 0 .*65,536"):
        col.add(["big"], vectors=[[1, 0]], metadata=[{"s": "é" * (MAX_METADATA_BYTES // 2)}])
    assert state(col) == before


def test_metadata_that_holds_itself_or_huge_integers_is_refused(col: simsearch.Collection) -> None:
    before = state(col)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    bad: list[Any] = [loop, {"n": 10**5000}, {"n": 2**64}, {"n": [-(2**63) - 1]}]
    for meta in bad:
        with pytest.raises(errors.InvalidMetadataError, match=r"metadata\[0\]"):
            col.add(["new"], vectors=[[1, 0]], metadata=[meta])
    col.add(["edge"], vectors=[[1, 0]], metadata=[{"n": 2**63 - 1, "m": -(2**63)}])
    assert col.search([1, 0], where={"n": 2**63 - 1})[0][0].id == "edge"
    assert [i for i, _ in state(col)] == [i for i, _ in before] + ["edge"]


# -- (10) wide filters -----------------------------------------------------------------------
def wide(kind: str, n: int) -> dict[str, Any]:
    if kind == "$or":
        return {"$or": [{"a": i * 3} for i in range(n)]}
    if kind == "$and":
        return {"$and": [{"a": {"$ne": i * 3}} for i in range(n)]}
    return {f"k{i}": {"$ne": i} for i in range(n)}  # a plain object: an implicit $and


def wide_items(n: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(n)
    count = 120
    metas = []
    for _ in range(count):
        meta: dict[str, Any] = {"a": int(rng.integers(0, 3 * n + 30))}
        for key in rng.integers(0, n + 5, size=3):
            meta[f"k{key}"] = int(key) if rng.random() < 0.3 else -1
        metas.append(meta)
    return [f"i{j}" for j in range(count)], rng.normal(size=(count, 4)), metas


@pytest.mark.parametrize("kind", ["$or", "$and", "object"])
@pytest.mark.parametrize("n", [950, 1_000, 5_000])
def test_wide_filters_agree_with_the_python_evaluator(tmp_path: Path, kind: str, n: int) -> None:
    ids, vectors, metas = wide_items(n)
    where = wide(kind, n)
    expected = {i for i, m in zip(ids, metas, strict=True) if matches(m, where)}
    assert 0 < len(expected) < len(ids)
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(ids, vectors=vectors, metadata=metas)
        hits = col.search(vectors[0], k=len(ids), where=where)[0]
        assert {h.id for h in hits} == expected
        assert col.delete(where=where) == len(expected)
        assert {i.id for i in col.iter_items()} == set(ids) - expected


@pytest.mark.parametrize("kind", ["$or", "$and", "object"])
def test_filters_over_the_clause_limit_are_refused(col: simsearch.Collection, kind: str) -> None:
    before = state(col)
    where = wide(kind, 20_000)
    for call in (lambda: col.search([1, 0], where=where), lambda: col.delete(where=where)):
        with pytest.raises(errors.InvalidFilterError, match=f"{MAX_CLAUSES:,} comparisons"):
            call()
    assert state(col) == before


def deepest(shape: str) -> dict[str, Any]:
    where: dict[str, Any] = {"k": 1}
    for level in range(MAX_DEPTH):
        if shape == "$not":
            where = {"$not": where}
        elif shape == "alternating":
            op = ("$and", "$or", "$not")[level % 3]
            where = {"$not": where} if op == "$not" else {op: [{"z": level}, where]}
        else:  # the nested filter last in a list, after other fields
            where = {"z": {"$ne": level}, "$or": [{"y": level}, where]}
    return where


@pytest.mark.parametrize("shape", ["$not", "alternating", "last"])
def test_filters_nested_to_the_depth_limit_run(col: simsearch.Collection, shape: str) -> None:
    where = deepest(shape)
    meta = state(col)[0][1]
    hits = col.search([1, 0], where=where)[0]
    assert [h.id for h in hits] == (["x"] if matches(meta, where) else [])


LEVEL = st.tuples(st.sampled_from(["$and", "$or", "$not"]), st.integers(1, 300), st.booleans())


def build(levels: list[tuple[str, int, bool]]) -> dict[str, Any]:
    """A filter nested ``len(levels)`` deep: each level an operator, with the filter below
    it first or last among ``width - 1`` comparisons."""
    where: dict[str, Any] = {"k": 1}
    for op, width, first in levels:
        if op == "$not":
            where = {"$not": where}
            continue
        others = [{("k", "z", "y")[j % 3]: j % 3} for j in range(width - 1)]
        where = {op: [where, *others] if first else [*others, where]}
    return where


SHAPES = st.integers(0, MAX_DEPTH + 2).flatmap(lambda n: st.lists(LEVEL, min_size=n, max_size=n))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(levels=SHAPES)
def test_any_filter_shape_is_refused_cleanly_or_runs(levels: list[tuple[str, int, bool]]) -> None:
    """Run as the store runs filters, in both its forms, on a real SQLite table."""
    where = build(levels)
    narrow = len(levels) <= MAX_DEPTH and all(w <= 3 for _, w, _ in levels)
    try:
        flt = compile_filter(where)
    except errors.InvalidFilterError:
        if narrow:  # narrow filters within the depth limit always compile
            raise
        return
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE items (row INTEGER PRIMARY KEY, seq INTEGER, metadata TEXT)")
    rows = [{"k": 1}, {"z": 0, "y": 2}, {}]
    conn.executemany(
        "INSERT INTO items VALUES (?, 1, ?)", [(i, json.dumps(m)) for i, m in enumerate(rows)]
    )
    for sql, params in (
        (f"SELECT row FROM items WHERE {flt.sql} ORDER BY row", flt.params),
        (f"SELECT row FROM items WHERE seq > ? AND ({flt.sql}) ORDER BY row", [0, *flt.params]),
    ):
        got = [r for (r,) in conn.execute(sql, params)]
        assert got == [i for i, m in enumerate(rows) if matches(m, where)]


# -- (11) invalid Unicode and NUL ------------------------------------------------------------
LONE = "\ud800"

BAD_UNICODE_WRITES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("id", {"ids": ["a", "b" + LONE]}, errors.InvalidIdError, "id at position 1"),
    ("text", {"texts": ["t", LONE]}, errors.InvalidTextError, "text at position 1"),
    ("metadata key", {"metadata": [{}, {LONE: 1}]}, errors.InvalidMetadataError, r"metadata\[1\]"),
    (
        "metadata value",
        {"metadata": [{}, {"v": ["ok", "x" + LONE]}]},
        errors.InvalidMetadataError,
        r"metadata\[1\]\.v\[1\]",
    ),
    (
        "nested metadata key",
        {"metadata": [{"n": {"\udfff": 1}}, {}]},
        errors.InvalidMetadataError,
        r"metadata\[0\]\.n",
    ),
    ("metadata NUL key", {"metadata": [{"a\x00": 1}, {}]}, errors.InvalidMetadataError, "NUL"),
]


@pytest.mark.parametrize(
    ("case", "change", "error", "where"),
    BAD_UNICODE_WRITES,
    ids=[c[0] for c in BAD_UNICODE_WRITES],
)
def test_invalid_unicode_in_writes_is_refused(
    col: simsearch.Collection, case: str, change: dict[str, Any], error: type[Exception], where: str
) -> None:
    before = state(col)
    kwargs = {"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], **change}
    for method in (col.add, col.upsert):
        with pytest.raises(error, match=where):
            method(kwargs["ids"], **{k: v for k, v in kwargs.items() if k != "ids"})
    assert state(col) == before


@pytest.mark.parametrize(
    "where",
    [
        {LONE: 1},
        {"a." + LONE: 1},
        {"k": LONE},
        {"k": {"$in": ["ok", LONE]}},
        {"k": {"$gt": "a" + LONE}},
        {"$or": [{"k": 1}, {"k": {"$ne": LONE}}]},
        {"a\x00b": 1},
        '{"k": "\\ud800"}',
        b'{"k": "\xff"}',
        "[" * 100_000,
    ],
)
def test_invalid_unicode_and_nul_in_filters_are_refused(
    col: simsearch.Collection, where: Any
) -> None:
    before = state(col)
    with pytest.raises(errors.InvalidFilterError):
        col.search([1, 0], where=where)
    with pytest.raises(errors.InvalidFilterError):
        col.delete(where=where)
    assert state(col) == before


def test_ids_with_lone_surrogates_are_refused_by_every_call(col: simsearch.Collection) -> None:
    for call in (lambda: col.get(["x", LONE]), lambda: col.delete([LONE])):
        with pytest.raises(errors.InvalidIdError, match="lone surrogate"):
            call()
    assert len(col) == 1


def test_query_texts_are_checked() -> None:
    assert check_query_texts(["fine", "ça va"]) == ["fine", "ça va"]
    with pytest.raises(errors.InvalidTextError, match="query text at position 1"):
        check_query_texts(["fine", "bad\udc80"])


def test_nul_in_a_filter_field_answers_400_on_the_server(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from simsearch.server.app import create_app
    from simsearch.server.settings import ServerSettings

    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as client:
        client.post("/collections", json={"name": "c", "metric": "dot"})
        client.post("/collections/c/add", json={"ids": ["a"], "vectors": [[1, 0]]})

        def post(url: str, body: dict[str, Any]) -> Any:
            # JSON with \u escapes, as any client sends lone surrogates.
            text = json.dumps(body)
            return client.post(url, content=text, headers={"content-type": "application/json"})

        # The server's JSON parser already refuses lone surrogates; the library refuses NUL.
        for where, code in (
            ({"a\x00": 1}, "invalid_filter"),
            ({"\ud800": 1}, "invalid_input"),
            ({"a": "\udc00"}, "invalid_input"),
        ):
            answer = post("/collections/c/search", {"query": [1, 0], "where": where})
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == code
        body = {"ids": ["b"], "vectors": [[0, 1]], "metadata": [{"\ud800": 1}]}
        answer = post("/collections/c/add", body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("where", ['{"\\ud800": 1}', '{"k": "\\udc00"}', '{"a\\u0000": 1}'])
def test_the_cli_reports_invalid_filters_without_a_traceback(tmp_path: Path, where: str) -> None:
    from typer.testing import CliRunner

    from simsearch.cli import app

    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["a"], vectors=[[1, 0]], metadata=[{"k": 1}])
    result = CliRunner().invoke(app, ["delete", str(tmp_path / "c"), "--where", where])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "error:" in result.output
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert len(col) == 1


# -- (15) every stored key can be named ------------------------------------------------------
TRICKY = ["C:\\dir", "a\nb", "tab\there", "a.b", "$price", "x[0]", "]", "it's", "é 😀", "\x01"]


@pytest.mark.parametrize("key", TRICKY)
def test_tricky_keys_are_reachable_by_filters(tmp_path: Path, key: str) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(
            ["has", "nested", "lacks"],
            vectors=[[1, 0], [0, 1], [1, 1]],
            metadata=[{key: 7}, {"o": {key: 7}}, {"other": 7}],
        )
        path = field_path(key)
        assert [h.id for h in col.search([1, 0], where={path: 7})[0]] == ["has"]
        assert [h.id for h in col.search([1, 0], where={field_path("o", key): 7})[0]] == ["nested"]
        lacking = col.search([1, 0], k=5, where={path: {"$exists": False}})[0]
        assert {h.id for h in lacking} == {"nested", "lacks"}


def test_the_escape_syntax_by_hand(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        metas = [{"a.b": 1}, {"a": {"b": 1}}, {"C:\\dir": 1}, {"$x": 1}, {"a\\": {"b": 1}}]
        col.add([str(i) for i in range(5)], vectors=np.eye(5)[:, :2] + 0.1, metadata=metas)

        def ids(where: dict[str, Any]) -> list[str]:
            return sorted(h.id for h in col.search([1, 0], k=9, where=where)[0])

        assert ids({"a\\.b": 1}) == ["0"]
        assert ids({"a.b": 1}) == ["1"]
        assert ids({"C:\\\\dir": 1}) == ["2"]
        assert ids({"\\$x": 1}) == ["3"]
        assert ids({"a\\\\.b": 1}) == ["4"]
        with pytest.raises(errors.InvalidFilterError, match="escapes only"):
            ids({"C:\\dir": 1})
        with pytest.raises(errors.InvalidFilterError, match="escapes only"):
            ids({"trailing\\": 1})


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({'say "hi"': 1}, "double quote"),
        ({"": 1}, "empty key"),
        ({"n": {"a\x00b": 1}}, "NUL"),
        ({"n": [{'"': 1}]}, "double quote"),
    ],
)
def test_keys_no_filter_can_name_are_refused(
    col: simsearch.Collection, meta: dict[str, Any], message: str
) -> None:
    before = state(col)
    with pytest.raises(errors.InvalidMetadataError, match=message):
        col.add(["new"], vectors=[[1, 0]], metadata=[meta])
    assert state(col) == before


ALPHABET = st.sampled_from([*"ab.\\\n\t $[]'/é😀", "\x01", "\x7f", "\u2028"])
KEY = st.text(ALPHABET, min_size=1, max_size=4)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "v", "é"]))
ITEM_META = st.dictionaries(
    KEY, st.one_of(SCALAR, st.dictionaries(KEY, SCALAR, max_size=2)), max_size=4
)


def stored_paths(metas: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for meta in metas:
        for key, value in meta.items():
            paths.add((key,))
            if isinstance(value, dict):
                paths.update((key, inner) for inner in value)
    return paths


def lookup(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = meta
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metas=st.lists(ITEM_META, min_size=1, max_size=6))
def test_every_stored_key_is_addressable(metas: list[dict[str, Any]]) -> None:
    ids = [f"i{j}" for j in range(len(metas))]
    with (
        tempfile.TemporaryDirectory() as tmp,
        simsearch.Collection.open(Path(tmp) / "c", metric="dot") as col,
    ):
        col.add(ids, vectors=np.ones((len(ids), 2)), metadata=metas)

        def found(where: dict[str, Any]) -> set[str]:
            return {h.id for h in col.search([1, 1], k=len(ids), where=where)[0]}

        for keys in stored_paths(metas):
            path = field_path(*keys)
            looked = [lookup(m, keys) for m in metas]
            holding = {i for i, (has, _) in zip(ids, looked, strict=True) if has}
            assert found({path: {"$exists": False}}) == set(ids) - holding, keys
            assert found({path: {"$exists": True}}) == holding, keys
            for value in {json.dumps(v) for has, v in looked if has and not isinstance(v, dict)}:
                want = json.loads(value)
                # The values are None, bools, ints and strings: typed equality is same type.
                equal = {
                    i
                    for i, (has, v) in zip(ids, looked, strict=True)
                    if has and type(v) is type(want) and v == want
                }
                assert found({path: want}) == equal, (keys, want)


@given(keys=st.lists(KEY, min_size=1, max_size=3))
def test_field_path_names_exactly_its_keys(keys: list[str]) -> None:
    flt = compile_filter({field_path(*keys): 1})
    labels = "".join(f'."{json.dumps(k, ensure_ascii=False)[1:-1]}"' for k in keys)
    assert flt.params[0] == "$" + labels
    assert check_metadata([{keys[0]: 1}], 1) == [{keys[0]: 1}]
