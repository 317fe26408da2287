"""Multi-vector collections kept over time: `simsearch check` finds items whose token set
is missing or cut; reopening keeps the encoding a collection was made with."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.check import check_collection

DIM = 4


def _collection(path: Path) -> None:
    rng = np.random.default_rng(0)
    with simsearch.Collection.open(path, dim=DIM, multivector=True) as col:
        col.add(
            [f"d{i}" for i in range(6)],
            multivectors=[rng.standard_normal((3 + i, DIM)) for i in range(6)],
        )


def test_a_sound_multivector_collection_checks_clean(tmp_path: Path) -> None:
    _collection(tmp_path / "c")
    report = check_collection(tmp_path / "c")
    assert report.ok, report.problems
    assert report.items == 6


def test_check_names_items_whose_token_sets_are_missing_or_cut(tmp_path: Path) -> None:
    _collection(tmp_path / "c")
    db = sqlite3.connect(tmp_path / "c" / "simsearch.sqlite3")
    with db:
        db.execute("DELETE FROM tokens WHERE row = (SELECT row FROM items WHERE id = 'd1')")
        db.execute(
            "UPDATE tokens SET data = substr(data, 1, 10) "
            "WHERE row = (SELECT row FROM items WHERE id = 'd4')"
        )
    db.close()
    with (
        simsearch.Collection.open(tmp_path / "c") as col,
        pytest.raises(simsearch.CorruptCollectionError, match="simsearch check"),
    ):
        col.search(np.ones((2, DIM)), k=6, exact=True)
    report = check_collection(tmp_path / "c")
    assert not report.ok
    assert any("no stored token vectors" in p and "'d1'" in p for p in report.problems)
    assert any("not whole int8 sets" in p and "'d4'" in p for p in report.problems)
    assert all("'d0'" not in p for p in report.problems)


def test_multivector_true_reopens_a_collection_whatever_its_saved_encoding(
    tmp_path: Path,
) -> None:
    """A collection keeps the encoding it was made with: ``multivector=True`` opens it
    whatever the defaults are now; an explicit other ``MultiVector`` is refused."""
    made = simsearch.MultiVector(k_sim=2, d_proj=4, r_reps=3, storage="float32")
    with simsearch.Collection.open(tmp_path / "c", dim=DIM, multivector=made) as col:
        col.add(["a"], multivectors=[np.eye(DIM)])
    with simsearch.Collection.open(tmp_path / "c", multivector=True) as col:
        saved = col.config.multivector
        assert saved is not None
        assert saved.same_encoding(made)
        assert col.search(np.eye(DIM), k=1)[0][0].id == "a"
    with pytest.raises(simsearch.ConfigMismatchError, match="encodes its sets"):
        simsearch.Collection.open(tmp_path / "c", multivector=simsearch.MultiVector())
