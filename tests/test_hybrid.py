"""Lexical and hybrid search: the FTS5 index under every write path, fusion, the weight
tuned from judgements, and bad queries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.encoders.base import register_encoder
from simsearch.index.lexical import LEXICAL_DIR
from simsearch.index.tokens import MAX_QUERY_WORDS, query_words
from simsearch.scoring.fusion import DEFAULT_ALPHA, HYBRID_KEY

TEXTS = {
    "a": "The cat sat on the mat",
    "b": "Dogs chase cats in the park",
    "c": "A red car and a blue car",
    "d": "Quantum physics of cats and dogs",
    "e": "Gardening in the spring",
}


class Letters:
    """A tiny deterministic text encoder: letter counts (26-d)."""

    name, version, dim = "letters-test", "1", 26

    def encode(self, texts: list[str], *, kind: str = "passage", progress: object = None) -> Any:
        out = np.full((len(texts), 26), 1e-3, dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out


register_encoder("letters-test", Letters)


def make(tmp_path: Path) -> simsearch.Collection:
    col = simsearch.Collection.open(tmp_path / "c", encoder="letters-test")
    ids = list(TEXTS)
    col.add(ids, texts=[TEXTS[i] for i in ids], metadata=[{"n": i} for i in range(len(ids))])
    return col


def vec(*hot: int) -> list[float]:
    return [1.0 if i in hot else 0.0 for i in range(26)]


def ids(res: simsearch.Results) -> list[list[str]]:
    return [[h.id for h in row] for row in res]


def test_lexical_search_ranks_by_bm25_and_stems(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        hits = col.search("cat", mode="lexical", k=10)[0]
        # Stemming: "cats" and "cat" are one term; texts without it are absent.
        assert {h.id for h in hits} == {"a", "b", "d"}
        assert all(h.lexical_score == h.score > 0 and h.dense_score is None for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert ids(col.search(["CAR", "garden"], mode="lexical")) == [["c"], ["e"]]


def test_writes_keep_the_lexical_index_exact(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        col.upsert("c", texts=["nothing of note"])
        assert ids(col.search("car", mode="lexical")) == [[]]
        col.update("e", texts=["a car in spring"])
        assert ids(col.search("car", mode="lexical")) == [["e"]]
        col.delete("e")
        assert ids(col.search("car", mode="lexical")) == [[]]
        col.add("v", vectors=[vec(2)])  # no text: never a lexical hit
        col.add("w", texts=["car"])
        assert ids(col.search("car", mode="lexical")) == [["w"]]
        hybrid = {h.id: h for h in col.search("car", mode="hybrid", k=10)[0]}
        assert hybrid["v"].lexical_score == 0.0
        assert hybrid["w"].lexical_score > 0
    assert (tmp_path / "c" / LEXICAL_DIR).is_dir()  # saved on close
    with simsearch.Collection.open(tmp_path / "c") as col:  # reopened: the same
        assert ids(col.search("car", mode="lexical")) == [["w"]]
        with simsearch.Collection.open(tmp_path / "c") as other:  # a second process's writes
            other.add("x", texts=["car car car"])
            other.delete("w")
        assert ids(col.search("car", mode="lexical")) == [["x"]]
        col.update("x", texts=["a red bicycle"])
    with simsearch.Collection.open(tmp_path / "c") as col:  # the saved index, caught up
        assert ids(col.search("car", mode="lexical")) == [[]]
        assert ids(col.search("bicycles", mode="lexical")) == [["x"]]


def test_filters_apply_before_lexical_ranking(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        for i in range(30):  # many better matches that the filter excludes
            col.add(f"x{i}", texts=["cat cat cat"], metadata={"n": 99})
        hits = col.search("cat", mode="lexical", k=3, where={"n": {"$lt": 10}})[0]
        assert {h.id for h in hits} == {"a", "b", "d"}
        hybrid = col.search("cat", mode="hybrid", k=5, where={"n": {"$lt": 10}})[0]
        assert len(hybrid) == 5
        assert all(h.metadata["n"] < 10 for h in hybrid)


def test_hybrid_hits_carry_both_scores_and_fuse(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        dense = {h.id: h.score for h in col.search("cats", k=10)[0]}
        lexical = {h.id: h.score for h in col.search("cats", mode="lexical", k=10)[0]}
        for fusion in ("convex", "rrf"):
            hits = col.search("cats", mode="hybrid", fusion=fusion, k=10)[0]
            assert len(hits) == 5
            for h in hits:
                assert h.lexical_score == pytest.approx(lexical.get(h.id, 0.0))
                assert h.dense_score == pytest.approx(dense[h.id], rel=1e-5)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        # alpha 0 is lexical alone (the matching texts first, in BM25 order)
        only = col.search("cats", mode="hybrid", alpha=0.0, k=3)[0]
        assert [h.id for h in only] == sorted(lexical, key=lambda i: -lexical[i])
        paged = col.search("cats", mode="hybrid", k=2, offset=1)[0]
        assert [h.id for h in paged] == [h.id for h in col.search("cats", mode="hybrid", k=3)[0]][
            1:
        ]


def test_tune_hybrid_chooses_and_saves_a_weight(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        summary = col.tune_hybrid(["cats", "red car"], [{"b"}, ["c"]])
        assert 0.0 <= summary["alpha"] <= 1.0
        assert (
            summary["ndcg@10"] >= max(summary["dense ndcg@10"], summary["lexical ndcg@10"]) - 1e-9
        )
    with simsearch.Collection.open(tmp_path / "c") as col:  # the weight was saved
        with col._store.snapshot() as snap:
            assert snap.read_meta(HYBRID_KEY) is not None
        with pytest.raises(simsearch.InvalidArgumentError, match="judgements"):
            col.tune_hybrid(["cats"], [{"b"}, {"c"}])
        with pytest.raises(simsearch.InvalidArgumentError, match="list of strings"):
            col.tune_hybrid([vec(1)], [{"b"}])  # type: ignore[list-item]
        with pytest.raises(simsearch.InvalidArgumentError, match="relevant"):
            col.tune_hybrid(["cats"], [set()])


def test_tune_hybrid_keeps_lexical_alone_where_fusion_only_ties_it(tmp_path: Path) -> None:
    """Every judged item is lexical's first hit and dense's second (behind its name spelt
    backwards, the same letters); light dense weights tie lexical on the judged queries, so
    lexical alone (alpha 0) is saved, not a tied weight nearer 0.5."""
    names = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima"]
    with simsearch.Collection.open(tmp_path / "c", encoder="letters-test") as col:
        col.add([f"d{i}" for i in range(len(names))], texts=[f"{n} story" for n in names])
        col.add([f"x{i}" for i in range(len(names))], texts=[n[::-1] for n in names])
        summary = col.tune_hybrid(names, [{f"d{i}"} for i in range(len(names))])
        assert summary["lexical ndcg@10"] == pytest.approx(1.0)
        assert summary["dense ndcg@10"] < 0.7
        assert summary["best ndcg@10"] == pytest.approx(1.0)
        assert summary["alpha"] == 0.0
        assert summary["better single"] == "lexical"
        assert "no fused weight beats lexical alone" in summary["reason"]
        with col._store.snapshot() as snap:
            saved = json.loads(snap.read_meta(HYBRID_KEY) or "{}")
        assert saved["alpha"] == 0.0
        assert saved["reason"] == summary["reason"]


def test_a_tuned_weight_is_used_by_later_searches(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        with col._store.write() as txn:
            txn.save_meta(HYBRID_KEY, '{"alpha": 0.0}')
        assert ids(col.search("cats", mode="hybrid", k=3)) == ids(
            col.search("cats", mode="hybrid", alpha=0.0, k=3)
        )
        assert DEFAULT_ALPHA == 0.5


def test_vector_only_collection_says_so(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "v", metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
        with pytest.raises(simsearch.InvalidArgumentError, match="holds none"):
            col.search("cat", mode="lexical")
        with pytest.raises(simsearch.InvalidArgumentError, match="strings"):
            col.search([1.0, 0.0], mode="lexical")


@pytest.mark.parametrize(
    "query",
    ['"', "*", "NEAR", "NEAR(a b)", "AND", "OR NOT", "( )", "-", "cat*", 'c"a"t', "^cat",
     "col:cat", "", "   ", "the of and", "!!! ???", "ünïcödé", "كَتَبَ الولد", "猫と犬",
     "cat\x00dog", "e\u0301t\u00e9"],
)  # fmt: skip
def test_bad_queries_give_results_never_an_sql_error(tmp_path: Path, query: str) -> None:
    with make(tmp_path) as col:
        for mode in ("lexical", "hybrid"):
            res = col.search(query, mode=mode, k=3)
            assert len(res) == 1


def test_fts_syntax_is_read_as_words(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        col.add("n", texts=["near and or not"])
        assert "n" in ids(col.search("NEAR", mode="lexical"))[0]
        assert ids(col.search("-", mode="lexical")) == [[]]
        assert query_words("the of") == []


def test_long_and_huge_queries(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        long = " ".join(["cat"] * 10_000 + [f"w{i}" for i in range(MAX_QUERY_WORDS - 1)])
        assert ids(col.search(long, mode="lexical", k=3))[0][0] in {"a", "b", "d"}
        with pytest.raises(simsearch.InvalidArgumentError, match="at most"):
            col.search(" ".join(f"w{i}" for i in range(MAX_QUERY_WORDS + 1)), mode="lexical")


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with make(tmp_path) as col:
        for kwargs, words in (
            ({"mode": "sparse"}, "mode must be"),
            ({"mode": "hybrid", "fusion": "max"}, "fusion must be"),
            ({"mode": "hybrid", "alpha": 1.5}, "alpha must be"),
            ({"mode": "hybrid", "alpha": True}, "alpha must be"),
            ({"mode": "lexical", "min_relevance": 0.5}, "work with mode='dense'"),
            ({"mode": "hybrid", "hubness": "csls"}, "hubness works with mode='dense'"),
        ):
            with pytest.raises(simsearch.InvalidArgumentError, match=words):
                col.search("cat", **kwargs)  # type: ignore[arg-type]


def test_a_collection_from_before_gets_its_lexical_index(tmp_path: Path) -> None:
    """Schema 4 (no lexical index) and schema 5 (FTS5 kept by triggers): on open the FTS5
    table and its triggers are gone, the old tokenisation's name is read, and lexical
    search works from the index built from the store."""
    from simsearch.config import FTS5_LEXICAL_SPEC

    for version in (4, 5):
        folder = tmp_path / str(version)
        make(folder).close()
        db = sqlite3.connect(folder / "c" / "simsearch.sqlite3")
        if version == 5:
            db.execute(
                "CREATE VIRTUAL TABLE lexical USING fts5(text, content='items', "
                "content_rowid='row')"
            )
            db.execute(
                "CREATE TRIGGER lexical_insert AFTER INSERT ON items BEGIN "
                "INSERT INTO lexical (rowid, text) VALUES (NEW.row, NEW.text); END"
            )
            config = json.loads(
                db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0]
            )
            config["lexical"] = FTS5_LEXICAL_SPEC
            db.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(config),))
        db.execute(f"PRAGMA user_version={version}")
        db.commit()
        db.close()
        with simsearch.Collection.open(folder / "c") as col:
            col.add("f", texts=["a cat again"])  # no trigger writes to a dropped table
            assert {h.id for h in col.search("cat", mode="lexical")[0]} == {"a", "b", "d", "f"}
        db = sqlite3.connect(folder / "c" / "simsearch.sqlite3")
        left = db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'lexical%'").fetchall()
        db.close()
        assert left == []


def _texts_only(tmp_path: Path) -> Path:
    with simsearch.Collection.open(tmp_path / "t", metric="dot") as col:
        col.add(list(TEXTS), vectors=np.eye(5), texts=list(TEXTS.values()))
    return tmp_path / "t"


def test_cli_search_and_http_take_a_mode(tmp_path: Path) -> None:
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from simsearch.cli import app
    from simsearch.server.app import create_app
    from simsearch.server.settings import ServerSettings

    path = _texts_only(tmp_path)
    done = CliRunner().invoke(app, ["search", str(path), "cats", "--mode", "lexical", "--json"])
    assert done.exit_code == 0, done.output
    hits = json.loads(done.stdout)
    assert {h["id"] for h in hits} == {"a", "b", "d"}
    assert all(h["lexical_score"] > 0 for h in hits)
    bad = CliRunner().invoke(app, ["search", str(path), "cats", "--mode", "sparse"])
    assert bad.exit_code != 0
    assert "mode must be" in bad.output
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as http:
        http.post("/collections", json={"name": "c", "metric": "dot", "dim": 2})
        http.post(
            "/collections/c/add",
            json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "texts": ["cat", "dog"]},
        )
        got = http.post("/collections/c/search", json={"query": "dog", "mode": "lexical"}).json()
        assert [h["id"] for h in got["results"][0]] == ["b"]
        assert got["results"][0][0]["lexical_score"] > 0
        refused = http.post("/collections/c/search", json={"query": "dog", "mode": "sparse"})
        assert refused.status_code in (400, 422)


def test_equal_dense_scores_fuse_equally_whatever_float32_rounding(tmp_path: Path) -> None:
    """Items as similar to the query as each other in exact arithmetic come out of float32
    a step apart; min-max must not stretch that step to the whole range (one of them
    scored alpha, the others 0). Found by the stateful test after a text update."""
    from simsearch.scoring.fusion import fuse
    from test_stateful_lexical import letters

    with simsearch.Collection.open(tmp_path / "c", encoder="letters-stateful") as col:
        for i in ("a", "b", "c", "e"):
            col.add(i, vectors=[letters(i + i)], metadata={"blue": i != "a"})
        col.update("a", texts=["cat"])
        hits = col.search("dog", mode="hybrid", alpha=0.3, k=3, where={"blue": True})[0]
        assert len({h.dense_score for h in hits}) > 1  # float32 rounding tells them apart
        assert [round(h.score, 6) for h in hits] == [0.3, 0.3, 0.3]
    step = np.float32(0.5233550667762756)
    scores = np.array([[np.nextafter(step, np.float32(1)), step, step]], dtype=np.float32)
    valid = np.ones((1, 3), dtype=bool)
    none = np.full((1, 3), -1, dtype=np.int64)
    fused = fuse(scores, np.zeros((1, 3), np.float32), none, none, valid, "convex", 0.3)
    assert np.allclose(fused, 0.3)


def test_the_first_text_search_builds_the_index_reporting_progress(tmp_path: Path) -> None:
    """A collection without a saved lexical index (one from before it, or whose files were
    lost) builds it at its first text search, through the progress callback it is given;
    a dense search needs no lexical index and does not build it."""
    import shutil

    with make(tmp_path) as col:
        col.search("cat", mode="lexical")
    shutil.rmtree(tmp_path / "c" / LEXICAL_DIR)
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert len(col.search("cat", k=2)[0]) == 2
        assert not col._keeper.lexical.started
        done: list[int] = []
        hits = col.search("cat", mode="lexical", progress=done.append)[0]
        assert sum(done) == len(TEXTS)
        assert {h.id for h in hits} == {"a", "b", "d"}
        done.clear()
        col.search("cat", mode="lexical", progress=done.append)
        assert done == []  # caught up: nothing to read


def test_a_hybrid_calibration_gives_fused_hits_relevance(tmp_path: Path) -> None:
    """calibrate(mode="hybrid") fits the fused score: min_relevance and cutoff keep their
    meaning in hybrid search (a prefix of the hits, relevance rising with the score)."""
    names = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima"]
    with simsearch.Collection.open(tmp_path / "c", encoder="letters-test") as col:
        ids_ = [f"d{i}" for i in range(len(names) * 3)]
        col.add(ids_, texts=[f"{names[i % len(names)]} story {i}" for i in range(len(ids_))])
        queries = [f"{n} story" for n in names]
        judged = [
            {f"d{i}", f"d{i + len(names)}", f"d{i + 2 * len(names)}"} for i in range(len(names))
        ]
        with pytest.raises(simsearch.NotCalibratedError, match="mode='hybrid'"):
            col.search("alpha", mode="hybrid", min_relevance=0.5)
        summary = col.calibrate(queries, judged, mode="hybrid")
        assert summary["kind"] == "hybrid"
        assert summary["alpha"] == DEFAULT_ALPHA
        every = col.search(queries, mode="hybrid", k=12)
        kept = col.search(queries, mode="hybrid", k=12, min_relevance=0.5)
        assert sum(len(r) for r in kept) < sum(len(r) for r in every)
        for full, some in zip(every, kept, strict=True):
            assert [h.id for h in some] == [h.id for h in full][: len(some)]
            assert all(h.relevance is not None and h.relevance >= 0.5 for h in some)
            rel = [h.relevance for h in some]
            assert rel == sorted(rel, reverse=True)
        best = col.search(queries, mode="hybrid", k=12, cutoff="f1")
        assert all(len(r) >= 1 for r in best)
        with pytest.raises(simsearch.InvalidArgumentError, match="fitted with fusion='convex'"):
            col.search("alpha", mode="hybrid", fusion="rrf", min_relevance=0.5)
        with pytest.raises(simsearch.InvalidArgumentError, match=r"alpha=0\.9"):
            col.search("alpha", mode="hybrid", alpha=0.9, min_relevance=0.5)
        with pytest.raises(simsearch.InvalidArgumentError, match="mode must be"):
            col.calibrate(queries, judged, mode="sparse")
        col.uncalibrate()
        with pytest.raises(simsearch.NotCalibratedError):
            col.search("alpha", mode="hybrid", min_relevance=0.5)


def test_repeated_lexical_searches_skip_the_snapshot_and_still_see_writes(tmp_path: Path) -> None:
    """A lexical search with nothing committed since the last one reads no snapshot; a
    write (here another connection's) sends the next one back to it, and it is found."""
    with make(tmp_path) as col:
        first = ids(col.search("cat", mode="lexical"))
        store = col._store
        real = store.snapshot
        taken: list[int] = []

        def counted() -> Any:
            taken.append(1)
            return real()

        store.snapshot = counted  # type: ignore[method-assign]
        assert ids(col.search("cat", mode="lexical")) == first
        assert taken == []
        with simsearch.Collection.open(tmp_path / "c") as other:
            other.add("z", texts=["cat cat cat"])
        assert ids(col.search("cat", mode="lexical"))[0][0] == "z"
        assert taken
        store.snapshot = real  # type: ignore[method-assign]


def test_a_saved_lexical_index_is_loaded_and_a_damaged_or_foreign_one_rebuilt(
    tmp_path: Path,
) -> None:
    """The lexical index saved on close is used by the next open; a damaged file warns and
    is rebuilt from the store, one of another tokenisation is rebuilt quietly, and one
    saved ahead of the store warns; every time the same hits come back."""
    import warnings

    with make(tmp_path) as col:
        expected = ids(col.search(["cats", "car"], mode="lexical", k=3))
    folder = tmp_path / "c" / LEXICAL_DIR
    meta = json.loads((folder / "lexical.json").read_text())

    def reopened(expect_warning: str | None) -> None:
        with make_open(tmp_path) as col, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert ids(col.search(["cats", "car"], mode="lexical", k=3)) == expected
            assert col._keeper.lexical is not None
            assert col._keeper.lexical.saved_seq == (meta["seq"] if expect_warning == "" else -1)
        found = [str(w.message) for w in seen if "lexical index" in str(w.message)]
        if expect_warning:
            assert any(expect_warning in m and "built from the store" in m for m in found)
        else:
            assert not found

    reopened("")  # loaded as saved, nothing to say
    (folder / "lexical.npz").write_bytes(b"not numpy")
    reopened("was not used")
    for changed, why in (({"spec": {"other": 1}}, None), ({"seq": 10**9}, "ahead of the store")):
        with make_open(tmp_path) as col:
            col.search("cats", mode="lexical")  # rebuilt and saved anew on close
            col._keeper.lexical.saved_seq = -1  # type: ignore[union-attr]
        saved = json.loads((folder / "lexical.json").read_text()) | changed
        from simsearch.index.persist import replace_folder

        arrays = (folder / "lexical.npz").read_bytes()

        def write(staging: Path, saved: dict[str, Any] = saved, arrays: bytes = arrays) -> None:
            (staging / "lexical.json").write_text(json.dumps(saved))
            (staging / "lexical.npz").write_bytes(arrays)

        with make_open(tmp_path) as col:
            store_id = col._store.store_id
        replace_folder(folder, store_id, write)
        reopened(why)


def make_open(tmp_path: Path) -> simsearch.Collection:
    return simsearch.Collection.open(tmp_path / "c", encoder="letters-test")
