"""The catalogue of metadata fields, and filters that require a field no item holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.store.catalogue import split_full_key
from simsearch.store.sqlite import DB_FILENAME


def fields_of(col: simsearch.Collection) -> dict[str, tuple[int, dict[str, int]]]:
    return {f["field"]: (f["count"], f["types"]) for f in col.info()["fields"]}


def vectors(n: int) -> np.ndarray:
    return np.eye(n, 4, dtype=np.float32) + 0.1


def test_every_write_path_keeps_the_catalogue(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        metas: list[dict[str, Any]] = [
            {"lang": "en", "year": 2001, "author": {"name": "Ada"}},
            {"lang": "de", "year": 1999.5, "tags": ["a", "b"]},
            {"lang": None, "ok": True, "a.b": 1},
        ]
        col.add(["x", "y", "z"], vectors=vectors(3), metadata=metas)
        assert fields_of(col) == {
            "lang": (3, {"text": 2, "null": 1}),
            "year": (2, {"integer": 1, "real": 1}),
            "author": (1, {"object": 1}),
            "author.name": (1, {"text": 1}),
            "tags": (1, {"array": 1}),  # list elements are not fields
            "ok": (1, {"true": 1}),
            "a\\.b": (1, {"integer": 1}),  # the path a filter writes for the key a.b
        }
        col.upsert(["x"], vectors=vectors(1), metadata=[{"lang": "fr"}])
        col.delete(["y"])
        assert fields_of(col) == {
            "lang": (2, {"text": 1, "null": 1}),
            "ok": (1, {"true": 1}),
            "a\\.b": (1, {"integer": 1}),
        }
        col.delete(where={"lang": {"$exists": True}})
        assert col.info()["fields"] == []


def test_another_writer_and_an_older_collection_are_catalogued(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="dot") as col:
        col.add(["x"], vectors=vectors(1), metadata=[{"lang": "en"}])
    db = sqlite3.connect(path / DB_FILENAME)
    # A write from outside simsearch's code (another process, another version of the code
    # path) still passes through the triggers.
    db.execute(
        "INSERT INTO items (id, seq, vector, text, metadata) VALUES ('y', 1, ?, NULL, ?)",
        (vectors(1)[0].tobytes(), '{"genre": "poem"}'),
    )
    db.commit()
    with simsearch.Collection.open(path) as col:
        assert set(fields_of(col)) == {"lang", "genre"}
    # A collection written before the catalogue existed (schema 3) gets one at open.
    db.execute("DROP TABLE fields")
    for trigger in ("fields_insert", "fields_delete", "fields_update"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    with simsearch.Collection.open(path) as col:
        assert fields_of(col) == {"lang": (1, {"text": 1}), "genre": (1, {"text": 1})}
        col.add(["z"], vectors=vectors(1), metadata=[{"genre": "song"}])
        assert fields_of(col)["genre"] == (2, {"text": 2})


@pytest.fixture
def col(tmp_path: Path) -> Any:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(
            ["x", "y", "z"],
            vectors=vectors(3),
            metadata=[{"lang": "en", "a[0]": 1}, {"lang": "de"}, {"language": "fr"}],
        )
        yield col


def test_a_filter_requiring_a_field_no_item_holds_names_the_close_ones(col: Any) -> None:
    q = vectors(1)[0]
    with pytest.raises(simsearch.InvalidFilterError) as err:
        col.search(q, where={"lnag": "en"})
    assert "no item has a field 'lnag'" in str(err.value)
    assert "did you mean 'lang'" in str(err.value)
    with pytest.raises(simsearch.InvalidFilterError, match="no item has a field"):
        col.search(q, where={"lang": "en", "yera": {"$gte": 2000}})
    with pytest.raises(simsearch.InvalidFilterError, match="no item has a field"):
        col.delete(where={"lnag": "en"})
    assert len(col) == 3  # nothing deleted


@pytest.mark.parametrize(
    ("where", "hits"),
    [
        ({"lnag": {"$exists": False}}, 3),  # a presence test names a field on purpose
        ({"lnag": {"$ne": "en"}}, 3),  # a missing field passes $ne ...
        ({"lnag": {"$nin": ["en"]}}, 3),  # ... and $nin
        ({"$or": [{"lnag": "en"}, {"lang": "de"}]}, 1),  # the other branch can match
        ({"$not": {"lnag": "en"}}, 3),
        ({"a[0]": 1}, 1),  # a key the catalogue leaves out is looked up in the items
    ],
)
def test_filters_that_a_missing_field_can_pass_are_not_refused(
    col: Any, where: dict[str, Any], hits: int
) -> None:
    assert len(col.search(vectors(1)[0], k=10, where=where)[0]) == hits


def test_an_empty_collection_refuses_no_field_but_items_without_metadata_do(
    tmp_path: Path,
) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.index_field("lang", "keyword")
        assert col.count({"lang": "en"}) == 0  # no items at all: nothing to tell
        col.add(["x"], vectors=vectors(1))  # items, but no metadata fields at all
        with pytest.raises(simsearch.InvalidFilterError, match="the items hold no metadata"):
            col.search(vectors(1)[0], where={"lang": "en"})
        with pytest.raises(simsearch.InvalidFilterError, match="the items hold no metadata"):
            col.count({"lang": "en"})


@pytest.mark.parametrize(
    ("full_key", "keys"),
    [
        ("$.a", ("a",)),
        ('$.a."b c".d', ("a", "b c", "d")),
        ('$."a.b"', ("a.b",)),
        ('$."ü"', ("ü",)),
        ("$", None),
        ("a", None),
        ('$."open', None),
    ],
)
def test_sqlite_full_keys_split_into_keys(full_key: str, keys: tuple[str, ...] | None) -> None:
    assert split_full_key(full_key) == keys
