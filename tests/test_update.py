"""Partial updates: only what is given changes, in one transaction, and every derived index
(vector graph, filters, described hits) sees it at once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app
from simsearch.encoders import register_encoder
from simsearch.errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidMetadataError,
    ItemNotFoundError,
)

runner = CliRunner()


class Embedded:
    """A deterministic 8-d encoder that records every passage it embeds."""

    dim = 8
    name = "update-test-8"
    version = "1"
    seen: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads what was embedded

    def encode(self, texts: Sequence[str], *, kind: str = "passage", progress: Any = None) -> Any:
        if kind == "passage":
            Embedded.seen.extend(texts)
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8]) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(8) for s in seeds])


register_encoder("update-test-8", Embedded)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server_process import running_server

    with running_server(tmp_path_factory.mktemp("update") / "data") as server:
        yield server


@pytest.fixture(params=["local-flat", "local-hnsw", "remote"])
def col(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "remote":
        client = simsearch.Client(request.getfixturevalue("open_server").url)
        made: Any = client.create_collection(uuid.uuid4().hex, metric="dot", dim=3)
    else:
        index = simsearch.HNSW(exact_below=0, ef_search=200) if "hnsw" in request.param else None
        made = simsearch.Collection.open(tmp_path / "c", metric="dot", index=index)
    made.add(
        ["a", "b", "c"],
        vectors=[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        texts=["first", "second", "third"],
        metadata=[{"lang": "en", "n": 1}, {"lang": "fr", "n": 2}, {"lang": "en", "n": 3}],
    )
    made.search([1, 0, 0], k=1, where={"lang": "en"})  # warm the index and the filter cache
    yield made
    made.close()
    if request.param == "remote":
        client.close()


def test_metadata_is_merged_and_filters_see_it_at_once(col: Any) -> None:
    assert col.update(["a"], metadata=[{"lang": "de", "tag": "x"}]) == 1
    (item,) = col.get(["a"])
    assert item.metadata == {"lang": "de", "n": 1, "tag": "x"}
    assert (item.text, item.vector.tolist()) == ("first", [1.0, 0.0, 0.0])  # untouched
    assert [h.id for h in col.search([1, 0, 0], k=3, where={"lang": "en"})[0]] == ["c"]
    assert [h.metadata for h in col.search([1, 0, 0], k=1)[0]] == [item.metadata]
    assert col.count({"lang": "de"}) == 1


def test_metadata_replaced_with_merge_false(col: Any) -> None:
    col.update("b", metadata={"only": True}, merge=False)
    assert col.get("b")[0].metadata == {"only": True}
    assert col.count({"lang": "fr"}) == 0


def test_vectors_update_moves_the_item_in_the_index(col: Any) -> None:
    col.update(["c"], vectors=[[2, 0, 0]])
    hit = col.search([1, 0, 0], k=1)[0][0]
    assert (hit.id, hit.text, hit.metadata) == ("c", "third", {"lang": "en", "n": 3})


def test_a_missing_id_fails_the_whole_update(col: Any) -> None:
    with pytest.raises(ItemNotFoundError, match="'zz'"):
        col.update(["a", "zz"], metadata=[{"lang": "xx"}, {"lang": "yy"}])
    assert col.get("a")[0].metadata == {"lang": "en", "n": 1}


def test_bad_updates_write_nothing(col: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="give metadata, texts or vectors"):
        col.update(["a"])
    with pytest.raises(InvalidArgumentError, match="2 ids but 1"):
        col.update(["a", "b"], metadata=[{"x": 1}])
    with pytest.raises(DimensionMismatchError):
        col.update(["a"], vectors=[[1, 2]])
    with pytest.raises(InvalidMetadataError):
        col.update(["a"], metadata=[{"": 1}])
    assert col.get("a")[0].metadata == {"lang": "en", "n": 1}


def test_merged_metadata_obeys_the_size_limit(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", dim=2) as c:
        c.add(["a"], vectors=[[1, 0]], metadata=[{"big": "x" * 40_000}])
        with pytest.raises(InvalidMetadataError, match="over the limit"):
            c.update(["a"], metadata=[{"more": "y" * 40_000}])
        assert set(c.get("a")[0].metadata) == {"big"}


def test_a_new_text_is_embedded_again_when_there_is_an_encoder(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", encoder="update-test-8") as c:
        c.add(["a", "b"], texts=["old text", "other"])
        seq = c.info()["seq"]
        c.update(["a"], texts=["brand new text"])
        assert Embedded.seen[-1] == "brand new text"
        assert c.info()["seq"] == seq + 1  # one write
        assert c.search("brand new text", k=1)[0][0].id == "a"
        np.testing.assert_allclose(
            c.get("a")[0].vector, Embedded().encode(["brand new text"])[0], rtol=1e-6
        )
        # Vectors given with the texts are stored as given; nothing is embedded.
        before = len(Embedded.seen)
        c.update(["b"], texts=["kept as given"], vectors=[[1.0] * 8])
        assert len(Embedded.seen) == before
        assert c.get("b")[0].vector.tolist() == [1.0] * 8


def test_without_an_encoder_a_text_changes_alone(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", dim=2) as c:
        c.add(["a"], vectors=[[0.6, 0.8]])
        c.update(["a"], texts=["a caption"])
        item = c.get("a")[0]
        assert (item.text, item.vector.tolist()) == (
            "a caption",
            [0.6000000238418579, 0.800000011920929],
        )


def test_cli_update(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", dim=2) as c:
        c.add(["a", "b"], vectors=[[1, 0], [0, 1]], metadata=[{"x": 1}, {"x": 2}])
    done = runner.invoke(app, ["update", str(tmp_path / "c"), "a", "b", "--set", '{"y": 3}'])
    assert done.exit_code == 0, done.output
    assert "2 updated" in done.output
    done = runner.invoke(
        app, ["update", str(tmp_path / "c"), "a", "--set", '{"z": 1}', "--replace", "--text", "t"]
    )
    assert done.exit_code == 0, done.output
    with simsearch.Collection.open(tmp_path / "c", create=False) as c:
        assert [(i.metadata, i.text) for i in c.get(["a", "b"])] == [
            ({"z": 1}, "t"),
            ({"x": 2, "y": 3}, None),
        ]
    bad = runner.invoke(app, ["update", str(tmp_path / "c"), "a", "--set", "[1]"])
    assert bad.exit_code == 1
    assert "--set must be a JSON object" in bad.output
    missing = runner.invoke(app, ["update", str(tmp_path / "nope"), "a", "--set", "{}"])
    assert missing.exit_code == 1
    assert "not a simsearch collection" in missing.output
    assert not (tmp_path / "nope").exists()


def test_metadata_updates_during_a_model_upgrade_keep_the_new_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [f"i{n}" for n in range(12)]
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as c:
        c.add(ids, vectors=rng.standard_normal((12, 4)), metadata=[{"n": n} for n in range(12)])
        c.migrate_vectors(ids[:10], rng.standard_normal((10, 6)))
        assert c.info()["migration"]["remaining"] == 2
        c.update(ids[:3], metadata=[{"seen": True}] * 3)
        assert c.info()["migration"]["remaining"] == 2  # their new vectors still count
        assert c.count({"seen": True}) == 3
        with pytest.raises(InvalidArgumentError, match="model upgrade is in progress"):
            c.update(["i0"], vectors=rng.standard_normal((1, 4)))
        assert c.backfill_vectors(ids[10:], rng.standard_normal((2, 6))) == 0
        assert c.config.dim == 6


def test_an_upsert_of_metadata_alone_points_to_update(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
        with pytest.raises(simsearch.InvalidArgumentError, match=r"use update\(ids, metadata"):
            col.upsert(["a"], metadata=[{"x": 1}])
