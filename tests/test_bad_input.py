"""Every kind of bad input raises a specific error and leaves the collection exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch import errors

GOOD = {"ids": ["a", "b"], "vectors": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}


def snapshot(
    col: simsearch.Collection,
) -> list[tuple[str, list[float], str | None, dict[str, Any]]]:
    return [(i.id, i.vector.tolist(), i.text, i.metadata) for i in col.iter_items()]


@pytest.fixture
def filled(tmp_path: Path) -> simsearch.Collection:
    col = simsearch.Collection.open(tmp_path / "c", metric="cosine")
    col.add(["x"], vectors=[[0.5, 0.5, 0.0]], metadata=[{"k": 1}], texts=["hello"])
    return col


BAD_WRITES: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("nan", {"vectors": [[np.nan, 0, 0], [0, 1, 0]]}, errors.InvalidVectorError),
    ("inf", {"vectors": [[np.inf, 0, 0], [0, 1, 0]]}, errors.InvalidVectorError),
    ("overflow to inf", {"vectors": [[1e300, 0, 0], [0, 1, 0]]}, errors.InvalidVectorError),
    ("wrong dimension", {"vectors": [[1, 0], [0, 1]]}, errors.DimensionMismatchError),
    ("ragged", {"vectors": [[1, 0, 0], [0, 1]]}, errors.InvalidVectorError),
    ("3-d", {"vectors": np.zeros((2, 3, 1))}, errors.InvalidVectorError),
    (
        "strings as vectors",
        {"vectors": [["a", "b", "c"], ["d", "e", "f"]]},
        errors.InvalidVectorError,
    ),
    ("one vector for two ids", {"vectors": [[1, 0, 0]]}, errors.InvalidArgumentError),
    ("empty ids", {"ids": [], "vectors": np.zeros((0, 3))}, errors.InvalidIdError),
    ("empty id", {"ids": ["", "b"]}, errors.InvalidIdError),
    ("blank id", {"ids": ["  ", "b"]}, errors.InvalidIdError),
    ("int id", {"ids": [1, "b"]}, errors.InvalidIdError),
    ("None id", {"ids": [None, "b"]}, errors.InvalidIdError),
    ("duplicate in batch", {"ids": ["a", "a"]}, errors.InvalidIdError),
    ("huge id", {"ids": ["a" * 5000, "b"]}, errors.InvalidIdError),
    ("ids not a list", {"ids": 42}, errors.InvalidIdError),
    ("metadata not object", {"metadata": ["x", {}]}, errors.InvalidMetadataError),
    ("metadata not list", {"metadata": 3}, errors.InvalidMetadataError),
    ("metadata nan", {"metadata": [{"v": float("nan")}, {}]}, errors.InvalidMetadataError),
    ("metadata set", {"metadata": [{"v": {1, 2}}, {}]}, errors.InvalidMetadataError),
    ("metadata int key", {"metadata": [{1: "a"}, {}]}, errors.InvalidMetadataError),
    ("metadata length", {"metadata": [{}]}, errors.InvalidArgumentError),
    (
        "metadata too deep",
        {"metadata": [{}, {"a": json.loads("[" * 40 + "]" * 40)}]},
        errors.InvalidMetadataError,
    ),
    ("metadata too big", {"metadata": [{"s": "x" * 70_000}, {}]}, errors.InvalidMetadataError),
    ("metadata huge int", {"metadata": [{"n": 10**30}, {}]}, errors.InvalidMetadataError),
    ("metadata quote key", {"metadata": [{'"': 1}, {}]}, errors.InvalidMetadataError),
    ("metadata empty key", {"metadata": [{"": 1}, {}]}, errors.InvalidMetadataError),
    ("metadata NUL key", {"metadata": [{"\x00": 1}, {}]}, errors.InvalidMetadataError),
    ("metadata surrogate", {"metadata": [{"k": "\udc80"}, {}]}, errors.InvalidMetadataError),
    ("surrogate id", {"ids": ["\ud800", "b"]}, errors.InvalidIdError),
    ("texts not str", {"texts": [1, "b"]}, errors.InvalidTextError),
    ("surrogate text", {"texts": ["a", "\udfff"]}, errors.InvalidTextError),
    ("texts length", {"texts": ["a"]}, errors.InvalidArgumentError),
    ("nothing to store", {"vectors": None}, errors.InvalidArgumentError),
]


@pytest.mark.parametrize(("case", "change", "error"), BAD_WRITES, ids=[c[0] for c in BAD_WRITES])
@pytest.mark.parametrize("method", ["add", "upsert"])
def test_bad_write_raises_and_writes_nothing(
    filled: simsearch.Collection,
    case: str,
    change: dict[str, Any],
    error: type[Exception],
    method: str,
) -> None:
    before = snapshot(filled)
    info = filled.info()
    kwargs = {**GOOD, **change}
    with pytest.raises(error) as exc_info:
        getattr(filled, method)(kwargs.pop("ids"), **kwargs)
    assert isinstance(exc_info.value, simsearch.SimsearchError)
    assert isinstance(exc_info.value, ValueError)  # every input error is also a ValueError
    assert str(exc_info.value)
    assert snapshot(filled) == before
    assert filled.info()["seq"] == info["seq"]


def test_duplicate_id_rejects_the_whole_batch(filled: simsearch.Collection) -> None:
    before = snapshot(filled)
    with pytest.raises(simsearch.DuplicateIdError, match="'x'"):
        filled.add(["new", "x"], vectors=[[1, 0, 0], [0, 1, 0]])
    assert snapshot(filled) == before


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"k": {"$near": 1}}, "valid operators are: \\$eq"),
        ({"$xor": []}, "valid logical operators"),
        ({"k": {"$in": "abc"}}, "non-empty list"),
        ({"k": {"$in": []}}, "non-empty list"),
        ({"k": {"$gt": True}}, "number or str"),
        ({"k": {"$gt": [1]}}, "expected str, number"),
        ({"k": {"$exists": 1}}, "true or false"),
        ({"$and": {}}, "non-empty list"),
        ({"$or": []}, "non-empty list"),
        ({"k": [1, 2]}, "\\$in"),
        ({"k": {"sub": 1}}, "dotted paths"),
        ({"k": {}}, "empty"),
        ({"a..b": 1}, "empty part"),
        ({"k": float("nan")}, "finite"),
        ({"k": 2**70}, "64-bit"),
        ([1, 2], "must be an object"),
        ("{not json", "not valid JSON"),
        ({"$eq": 1}, "needs a field"),
        ({"C:\\dir": 1}, "escapes only"),
        ({"a\x00": 1}, "NUL"),
        ({"k": "\ud800"}, "lone surrogate"),
        ({"$or": [{"k": i} for i in range(10_001)]}, "10,000 comparisons"),
    ],
)
def test_malformed_filters_raise_and_delete_nothing(
    filled: simsearch.Collection, where: Any, message: str
) -> None:
    before = snapshot(filled)
    with pytest.raises(simsearch.InvalidFilterError, match=message):
        filled.search([1, 0, 0], where=where)
    with pytest.raises(simsearch.InvalidFilterError):
        filled.delete(where=where)
    assert snapshot(filled) == before


@pytest.mark.parametrize(
    ("query", "kwargs", "error"),
    [
        ([1, 0], {}, errors.DimensionMismatchError),
        ([np.nan, 0, 0], {}, errors.InvalidVectorError),
        ([], {}, errors.InvalidVectorError),
        ([[1, 0, 0], "text"], {}, errors.InvalidArgumentError),
        ([1, 0, 0], {"k": 0}, errors.InvalidArgumentError),
        ([1, 0, 0], {"k": -3}, errors.InvalidArgumentError),
        ([1, 0, 0], {"k": 2.5}, errors.InvalidArgumentError),
        ([1, 0, 0], {"k": "10"}, errors.InvalidArgumentError),
    ],
)
def test_bad_queries(
    filled: simsearch.Collection, query: Any, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        filled.search(query, **kwargs)


def test_unknown_option_values_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="cosine, dot, l2"):
        simsearch.Collection.open(tmp_path / "c", metric="manhattan")
    with pytest.raises(simsearch.InvalidArgumentError, match="registered encoders are"):
        simsearch.Collection.open(tmp_path / "c", encoder="no-such-model")
    with pytest.raises(simsearch.InvalidArgumentError, match="positive integer"):
        simsearch.Collection.open(tmp_path / "c", dim=0)
    with pytest.raises(TypeError):
        simsearch.Collection.open(tmp_path / "c", colour="red")  # type: ignore[call-arg]
    assert not (tmp_path / "c").exists()


def test_delete_needs_ids_or_where(filled: simsearch.Collection) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="never empties"):
        filled.delete()
    assert len(filled) == 1


def test_paths_that_are_not_collections(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("hello")
    with pytest.raises(simsearch.NotACollectionError, match="is a file"):
        simsearch.Collection.open(file)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.md").write_text("mine")
    with pytest.raises(simsearch.NotACollectionError, match="other files"):
        simsearch.Collection.open(busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.md"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "simsearch.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(simsearch.NotACollectionError):
        simsearch.Collection.open(fake)
    with pytest.raises(simsearch.NotACollectionError):
        simsearch.Collection.open(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_reopening_with_a_conflicting_config(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="dot") as col:
        col.add(["a"], vectors=[[1, 2, 3]])
    with pytest.raises(simsearch.ConfigMismatchError, match="'dot'"):
        simsearch.Collection.open(path, metric="cosine")
    with pytest.raises(simsearch.ConfigMismatchError, match="3-d"):
        simsearch.Collection.open(path, dim=4)
    with simsearch.Collection.open(path) as col:  # nothing given: the saved config
        assert col.config.metric is simsearch.Metric.DOT
        assert col.config.dim == 3
        # The default text encoder makes 384-d vectors: a clear error, nothing stored.
        own = "3-d vectors of your own and has no encoder.*makes 384-d"
        with pytest.raises(simsearch.DimensionMismatchError, match=own):
            col.add(["t"], texts=["some text"])
        with pytest.raises(simsearch.DimensionMismatchError, match=own):
            col.search("some text")
        assert len(col) == 1


class FakeEncoder:
    """A deterministic toy encoder (hashing characters), to test encoder binding."""

    def __init__(self, name: str = "toy", version: str = "1", dim: int = 8) -> None:
        self.name, self.version, self.dim = name, version, dim

    def encode(self, texts: Any, *, kind: str = "passage", progress: Any = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, ord(ch) % self.dim] += 1
        return out


def test_encoder_is_saved_and_a_different_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, encoder=FakeEncoder()) as col:
        col.add(["a", "b"], texts=["aaa", "bbb"])
        assert col.info()["encoder"] == {"name": "toy", "version": "1"}
    with pytest.raises(simsearch.ConfigMismatchError, match="toy"):
        simsearch.Collection.open(path, encoder=FakeEncoder(version="2"))
    with pytest.raises(simsearch.ConfigMismatchError):
        simsearch.Collection.open(path, encoder=FakeEncoder(name="other"))
    with pytest.raises(simsearch.ConfigMismatchError):
        simsearch.Collection.open(path, encoder="minilm-l6-v2-int8")
    with simsearch.Collection.open(path, encoder=FakeEncoder()) as col:
        assert col.search("aab", k=1)[0][0].id == "a"


def test_not_an_encoder_object(tmp_path: Path) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="encoder must be"):
        simsearch.Collection.open(tmp_path / "c", encoder=42)  # type: ignore[arg-type]


def test_closed_collection(tmp_path: Path) -> None:
    col = simsearch.Collection.open(tmp_path / "c")
    col.close()
    col.close()  # idempotent
    for call in (
        lambda: len(col),
        lambda: col.search([1.0]),
        lambda: col.add(["a"], vectors=[[1.0]]),
    ):
        with pytest.raises(simsearch.CollectionClosedError):
            call()


def test_error_classes_carry_status_and_code() -> None:
    assert simsearch.DuplicateIdError.http_status == 409
    assert simsearch.ItemNotFoundError.http_status == 404
    assert issubclass(simsearch.ItemNotFoundError, KeyError)
    assert issubclass(simsearch.MissingDependencyError, ImportError)
    codes = [
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, simsearch.SimsearchError)
    ]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    for code in codes:
        assert errors.error_class_for_code(code).code == code


def test_a_refused_new_collection_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(simsearch.DimensionMismatchError):
        simsearch.Collection.open(tmp_path / "c", dim=5, encoder=FakeEncoder(dim=8))
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("index", [simsearch.Flat(), simsearch.HNSW(exact_below=0)])
def test_vectors_too_small_for_float32_arithmetic_still_score_by_direction(
    tmp_path: Path, index: Any
) -> None:
    # Their squared lengths fall below float32's normal range (1e-45 squared is 0): cosine
    # scores them by direction all the same, never above 1.
    col = simsearch.Collection.open(tmp_path / "c", metric="cosine", index=index)
    col.add(["tiny", "other"], vectors=np.array([[1e-45, 0, 0], [0, 1, 0]], dtype=np.float32))
    for query in ([1.0, 0, 0], [1e-20, 0, 0], [3e-39, 0, 0]):
        hits = col.search(query, k=2)[0]
        assert [h.id for h in hits] == ["tiny", "other"]
        assert hits[0].score == pytest.approx(1.0, abs=1e-6)
        assert hits[0].score <= 1.0
