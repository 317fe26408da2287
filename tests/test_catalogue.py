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
        # Another writer of the same folder (its own store and connection) catalogues its
        # writes, and this one sees them.
        with simsearch.Collection.open(path) as other:
            other.add(["y"], vectors=vectors(1), metadata=[{"genre": "poem"}])
            other.upsert(["w", "x"], vectors=vectors(2), metadata=[{"mood": "calm"}, {}])
        assert fields_of(col) == {"genre": (1, {"text": 1}), "mood": (1, {"text": 1})}
        col.upsert(["x"], vectors=vectors(1), metadata=[{"lang": "en"}])
    db = sqlite3.connect(path / DB_FILENAME)
    # A collection written before the catalogue existed (schema 3) gets one at open.
    db.execute("DROP TABLE fields")
    for trigger in ("fields_insert", "fields_delete", "fields_update"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    with simsearch.Collection.open(path) as col:
        want = {"lang": (1, {"text": 1}), "genre": (1, {"text": 1}), "mood": (1, {"text": 1})}
        assert fields_of(col) == want
        col.add(["z"], vectors=vectors(1), metadata=[{"genre": "song"}])
        assert fields_of(col)["genre"] == (2, {"text": 2})


def one_english_item(tmp_path: Path) -> Path:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="dot") as col:
        col.add(["x"], vectors=vectors(1), metadata=[{"lang": "en"}])
    return path


def test_a_schema_7_collection_loses_its_insert_trigger_and_keeps_its_catalogue(
    tmp_path: Path,
) -> None:
    from simsearch.store.catalogue import _ADD

    path = one_english_item(tmp_path)
    db = sqlite3.connect(path / DB_FILENAME)
    db.execute(
        "CREATE TRIGGER fields_insert AFTER INSERT ON items BEGIN "
        + _ADD.format(m="NEW.metadata")
        + " END"
    )
    db.execute("PRAGMA user_version=7")
    db.commit()
    db.close()
    with simsearch.Collection.open(path) as col:
        col.add(["y"], vectors=vectors(1), metadata=[{"lang": "de"}])
        assert fields_of(col) == {"lang": (2, {"text": 2})}  # counted once, not twice
    db = sqlite3.connect(path / DB_FILENAME)
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert "fields_insert" not in names
    assert db.execute("PRAGMA user_version").fetchone()[0] == 8
    db.close()


def test_an_upsert_batch_naming_an_id_twice_is_refused_by_the_store(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        with pytest.raises(ValueError, match="more than once"), col._store.write() as txn:
            txn.upsert(["a", "a"], vectors(2), [None, None], ["{}", "{}"])
        assert len(col) == 0


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


def test_check_finds_rows_written_around_the_catalogue_and_repair_catalogues_them(
    tmp_path: Path,
) -> None:
    from simsearch.check import check_collection

    path = one_english_item(tmp_path)
    assert check_collection(path).ok
    db = sqlite3.connect(path / DB_FILENAME)  # a write from outside simsearch's code
    db.execute(
        "INSERT INTO items (id, seq, vector, text, metadata) VALUES ('y', 1, ?, NULL, ?)",
        (vectors(1)[0].tobytes(), '{"genre": "poem", "lang": "de"}'),
    )
    db.commit()
    db.close()
    report = check_collection(path)
    assert not report.ok
    assert any("catalogue of metadata fields disagrees" in p for p in report.problems)
    repaired = check_collection(path, repair=True)
    assert any("catalogued the metadata fields afresh" in r for r in repaired.repaired)
    assert check_collection(path).ok
    with simsearch.Collection.open(path) as col:
        assert fields_of(col) == {"lang": (2, {"text": 2}), "genre": (1, {"text": 1})}
