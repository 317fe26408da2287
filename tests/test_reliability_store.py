"""Data loss and damage: what a hostile or unlucky user did to the store and its indexes."""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app

DB = "simsearch.sqlite3"
GRAPH = simsearch.HNSW(m=8, ef_construction=40, exact_below=0)


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def filled(path: Path, n: int = 300, index: Any = None, metric: str = "cosine") -> np.ndarray:
    x = vectors(n)
    with simsearch.Collection.open(path, metric=metric, index=index) as col:
        col.add([str(i) for i in range(n)], vectors=x, metadata=[{"i": i} for i in range(n)])
    return x


# -- 1. every use of the shared connection is serialised ------------------------------------
def test_writes_refused_under_a_concurrent_hubness_report_are_never_stored(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add(["seed"], vectors=vectors(1))
        acked: list[list[str]] = []
        refused: list[list[str]] = []
        unexpected: list[BaseException] = []
        stop = time.monotonic() + 3.0

        def writer(name: str) -> None:
            n = 0
            while time.monotonic() < stop:
                ids = [f"{name}-{n}-{j}" for j in range(50)]
                if n % 7 == 3:
                    ids[25] = "seed"  # this batch must be refused whole
                try:
                    col.add(ids, vectors=vectors(50, seed=n))
                    acked.append(ids)
                except simsearch.DuplicateIdError:
                    refused.append(ids)
                except BaseException as exc:
                    unexpected.append(exc)
                n += 1

        def reporter() -> None:
            while time.monotonic() < stop:
                try:
                    col.hubness_report(k=3, sample=50)
                except BaseException as exc:
                    unexpected.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in ("a", "b")]
        threads.append(threading.Thread(target=reporter))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not unexpected, unexpected[:3]
        assert acked
        assert refused
        stored = {i.id for i in col.iter_items()}
        assert all(set(ids) <= stored for ids in acked)
        assert all(not (set(ids) - {"seed"}) & stored for ids in refused)
        assert len(stored) == 1 + 50 * len(acked)


# -- 2. a failed open never removes another process's collection -----------------------------
def test_a_refused_open_keeps_the_collection_another_process_just_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c"
    real_connect = sqlite3.connect
    fired = False

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        nonlocal fired
        if not fired:  # the other process wins the race while this open is under way
            fired = True
            monkeypatch.setattr(sqlite3, "connect", real_connect)
            script = (
                "import simsearch, sys\n"
                "with simsearch.Collection.open(sys.argv[1], metric='cosine') as col:\n"
                "    col.add(['theirs'], vectors=[[1.0, 0.0]])\n"
            )
            subprocess.run([sys.executable, "-c", script, str(path)], check=True)
            monkeypatch.setattr(sqlite3, "connect", connect)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(simsearch.ConfigMismatchError, match="'cosine'"):
        simsearch.Collection.open(path, metric="dot")
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    with simsearch.Collection.open(path, create=False) as col:
        assert [i.id for i in col.iter_items()] == ["theirs"]


def test_a_refused_new_collection_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(simsearch.InvalidArgumentError):
        simsearch.Collection.open(tmp_path / "c", dim=30, index=simsearch.IVFPQ(m=7))
    assert list(tmp_path.iterdir()) == []


# -- 3. a database file without simsearch's tables is refused ---------------------------------
def test_a_zero_length_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 20)
    (path / DB).write_bytes(b"")
    for create in (False, True):
        with pytest.raises(simsearch.CorruptCollectionError, match="empty"):
            simsearch.Collection.open(path, create=create)
    assert (path / DB).stat().st_size == 0


def test_a_foreign_sqlite_file_is_not_a_collection(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.mkdir()
    with sqlite3.connect(path / DB) as conn:
        conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(simsearch.NotACollectionError, match="tables are missing"):
        simsearch.Collection.open(path)


# -- 6 and 7. saved indexes: checked, tied to their store, scores from the store ---------------
def _graph_bytes(path: Path) -> bytearray:
    return bytearray((path / "index" / "hnsw.bin").read_bytes())


def _forge(path: Path, graph: bytes) -> None:
    """Write a graph file and a manifest that vouches for it (a crafted, not a cut, file)."""
    import hashlib

    index = path / "index"
    (index / "hnsw.bin").write_bytes(graph)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["sha256"]["hnsw.bin"] = hashlib.sha256(graph).hexdigest()
    (index / "manifest.json").write_text(json.dumps(manifest))


def _level0(graph: bytes) -> tuple[int, int, int]:
    """(record size, link capacity, element count) from hnswlib's header."""
    header = struct.unpack_from("<QQQQQQiIQQQdQ", graph, 0)
    return header[3], header[9], header[2]


SEARCH_IN_A_CHILD = (
    "import sys, warnings, numpy as np, simsearch\n"
    "warnings.simplefilter('ignore')\n"
    "with simsearch.Collection.open(sys.argv[1]) as col:\n"
    "    q = np.random.default_rng(1).standard_normal((20, 8)).astype('f4')\n"
    "    hits = col.search(q, k=5)\n"
    "    exact = col.search(q, k=5, exact=True)\n"
    "    print(sum(len(set(a) & set(b)) for a, b in zip(hits.ids.tolist(), exact.ids.tolist())))\n"
    "    print(float(hits.scores.max()))\n"
)


@pytest.mark.parametrize("damage", ["neighbour-id", "link-count"])
def test_a_crafted_graph_is_refused_and_rebuilt_instead_of_crashing(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "c"
    filled(path, 400, GRAPH)
    graph = _graph_bytes(path)
    size, _, count = _level0(graph)
    for element in range(0, count, 3):
        at = 96 + element * size
        if damage == "neighbour-id":
            struct.pack_into("<I", graph, at + 4, 10**9)  # the first neighbour, far out of range
        else:
            struct.pack_into("<H", graph, at, 65535)  # more links than the list holds
    _forge(path, bytes(graph))
    done = subprocess.run(
        [sys.executable, "-c", SEARCH_IN_A_CHILD, str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    overlap, best = done.stdout.split()
    assert int(overlap) >= 95
    assert float(best) <= 1.0 + 1e-5


def test_a_graph_whose_vectors_were_replaced_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 400, GRAPH)
    graph = _graph_bytes(path)
    size, cap, count = _level0(graph)
    noise = np.random.default_rng(5).standard_normal((count, 8)).astype("<f4") * 3
    for element in range(count):
        at = 96 + element * size + 4 + 4 * cap
        graph[at : at + 32] = noise[element].tobytes()
    _forge(path, bytes(graph))
    with pytest.warns(RuntimeWarning, match="differ from the store"):
        col = simsearch.Collection.open(path)
    with col:
        q = vectors(20, seed=9)
        hits, exact = col.search(q, k=5), col.search(q, k=5, exact=True)
        assert float(hits.scores.max()) <= 1.0 + 1e-5
        np.testing.assert_allclose(hits.scores, exact.scores, atol=1e-5)


def test_an_index_folder_from_another_collection_is_not_used(tmp_path: Path) -> None:
    import shutil

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    filled(mine, 300, GRAPH)
    x = vectors(300, seed=42)
    with simsearch.Collection.open(theirs, index=GRAPH) as col:
        col.add([str(i) for i in range(300)], vectors=x)  # same shape and write count
    shutil.rmtree(mine / "index")
    shutil.copytree(theirs / "index", mine / "index")
    with pytest.warns(RuntimeWarning, match="another collection"):
        col = simsearch.Collection.open(mine)
    with col:
        q = vectors(10, seed=3)
        np.testing.assert_allclose(
            col.search(q, k=5).scores, col.search(q, k=5, exact=True).scores, atol=1e-5
        )


# -- 9. opening never waits for another process's writer --------------------------------------
def test_opening_does_not_wait_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 50)
    other = sqlite3.connect(path / DB, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE meta SET value = value WHERE key = 'seq'")
    try:
        start = time.monotonic()
        for create in (False, True):
            with simsearch.Collection.open(path, create=create) as col:
                assert len(col.search(vectors(1), k=3)[0]) == 3
        assert time.monotonic() - start < 10
    finally:
        other.execute("ROLLBACK")
        other.close()


# -- 14. k is bounded by the collection before anything is allocated --------------------------
def test_a_huge_k_costs_nothing(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add([str(i) for i in range(10)], vectors=vectors(10))
        start = time.monotonic()
        for k in (10**7, 10**9, 2**62):
            res = col.search(vectors(2), k=k)
            assert [len(r) for r in res] == [10, 10]
            assert res.k == k
        assert time.monotonic() - start < 2


# -- 17. damage surfaces as simsearch errors naming the collection and the row ----------------
def _sql(path: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(path / DB) as conn:
        conn.execute(statement, params)


def test_a_cut_vector_names_its_row_and_the_rest_stays_searchable(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 50)
    _sql(path, "UPDATE items SET vector = substr(vector, 1, 3) WHERE id = '7'")
    with pytest.warns(RuntimeWarning, match=r"row\(s\) with vectors that are not 8-d"):
        col = simsearch.Collection.open(path)
    with col:
        hits = col.search(vectors(3), k=60)
        assert all(len(row) == 49 and "7" not in [h.id for h in row] for row in hits)
        assert col.get(["8"])[0].id == "8"
        with pytest.raises(simsearch.CorruptCollectionError, match="item '7'"):
            col.get(["7"])
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "'7'" in result.output
    assert "not 8-d" in result.output


def test_non_json_metadata_does_not_break_filters(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 50)
    _sql(path, "UPDATE items SET metadata = '{not json' WHERE id = '3'")
    with simsearch.Collection.open(path) as col:
        with pytest.warns(RuntimeWarning, match="metadata that is not JSON"):
            hits = col.search(vectors(1), k=50, where={"i": {"$lt": 10}})[0]
        assert sorted(int(h.id) for h in hits) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
        with pytest.raises(simsearch.CorruptCollectionError, match="item '3'"):
            col.get(["3"])


@pytest.mark.parametrize(
    "config",
    [
        "[1, 2]",
        '{"metric": 5}',
        '{"metric": "cosine", "dim": "8", "format_version": 1}',
        '{"metric": "cosine", "dim": 8, "format_version": 1, "encoder": 3}',
        '{"metric": "cosine", "dim": 8, "format_version": 1, "index": {"kind": "hnsw", "m": "x"}}',
        "not json",
    ],
)
def test_a_damaged_config_is_a_simsearch_error(tmp_path: Path, config: str) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    _sql(path, "UPDATE meta SET value = ? WHERE key = 'config'", config)
    with pytest.raises(simsearch.CorruptCollectionError, match="config"):
        simsearch.Collection.open(path)


def test_a_changed_saved_dimension_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 30)
    with sqlite3.connect(path / DB) as conn:
        (text,) = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'config'",
            (json.dumps(json.loads(text) | {"dim": 9}),),
        )
    with pytest.raises(simsearch.CorruptCollectionError, match="32 bytes"):
        simsearch.Collection.open(path)


def test_garbage_pages_are_a_simsearch_error(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 3000)
    with (path / DB).open("r+b") as fh:
        fh.seek(16384 * 3)
        fh.write(b"\xde\xad" * 40000)
    with (
        pytest.raises(simsearch.SimsearchError, match=r"damaged|malformed|not a simsearch"),
        simsearch.Collection.open(path) as col,
    ):
        col.search(vectors(1), k=5, where={"i": 1})
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "SQLite" in result.output or "cannot be opened" in result.output


# -- 18. a filter that matches everything does not empty a collection -------------------------
def test_delete_with_an_empty_filter_needs_all(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    with simsearch.Collection.open(path) as col:
        with pytest.raises(simsearch.InvalidArgumentError, match="all=True"):
            col.delete(where={})
        with pytest.raises(simsearch.InvalidArgumentError, match="without ids or where"):
            col.delete(["1"], all=True)
        assert len(col) == 5
        assert col.delete(["1"], where={}) == 1
    result = CliRunner().invoke(app, ["delete", str(path), "--where", "{}"])
    assert result.exit_code == 1
    assert "--all" in result.output
    result = CliRunner().invoke(app, ["delete", str(path), "--all"])
    assert result.exit_code == 0
    assert "4 deleted" in result.output


# -- 21. a graph is saved up to date, even by a process that never searched -------------------
def test_a_writer_that_never_searched_saves_a_current_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c"
    filled(path, 2000, GRAPH)
    meta = json.loads((path / "index" / "hnsw.json").read_text())
    assert meta["seq"] == 1
    assert meta["live"] == 2000
    applied: list[int] = []
    original = simsearch.index.hnsw.HNSWIndex.apply

    def counting(self: Any, changes: Any) -> None:
        applied.append(len(changes.rows))
        original(self, changes)

    monkeypatch.setattr(simsearch.index.hnsw.HNSWIndex, "apply", counting)
    with simsearch.Collection.open(path) as col:
        assert len(col.search(vectors(1), k=3)[0]) == 3
    assert sum(applied) == 0  # loaded, not rebuilt


def test_ingest_into_a_graph_saves_the_graph(tmp_path: Path) -> None:
    pytest.importorskip("static_model")
    src = tmp_path / "notes.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": f"note {i}"}) + "\n" for i in range(40))
    )
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            str(src),
            "--into",
            str(tmp_path / "c"),
            "--index",
            "hnsw",
            "--encoder",
            "static-64",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "c" / "index" / "hnsw.json").read_text())
    assert meta["live"] == 40


# -- 22. a missing config row or a rewound counter is an error, and check repairs the counter -
def test_a_missing_config_with_items_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    _sql(path, "DELETE FROM meta WHERE key = 'config'")
    with pytest.raises(simsearch.CorruptCollectionError, match="no saved config"):
        simsearch.Collection.open(path)


def test_a_rewound_sequence_counter_is_refused_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5, GRAPH)
    _sql(path, "UPDATE meta SET value = '0' WHERE key = 'seq'")
    with pytest.raises(simsearch.CorruptCollectionError, match="--repair"):
        simsearch.Collection.open(path)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "sequence counter" in result.output
    result = CliRunner().invoke(app, ["check", str(path), "--repair"])
    assert result.exit_code == 0, result.output
    with simsearch.Collection.open(path) as col:
        assert len(col.search(vectors(1), k=10)[0]) == 5
        col.add(["new"], vectors=vectors(1))
        assert len(col) == 6


def test_check_repairs_a_damaged_saved_index(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 300, GRAPH)
    graph = _graph_bytes(path)
    graph[200:260] = b"\x00" * 60
    (path / "index" / "hnsw.bin").write_bytes(bytes(graph))
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["ok"]
    assert "saved index" in report["problems"][0]
    result = CliRunner().invoke(app, ["check", str(path), "--repair"])
    assert result.exit_code == 0, result.output
    assert "rebuilt the saved index" in result.output
    assert simsearch.check_collection(path).ok


# -- found by a later review -----------------------------------------------------------------
def test_nul_in_a_metadata_value_is_refused_so_filters_never_compare_a_prefix(
    tmp_path: Path,
) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot", dim=1) as col:
        with pytest.raises(simsearch.InvalidMetadataError, match="NUL"):
            col.add(["x"], vectors=[[1.0]], metadata=[{"s": "a\x00b"}])
        with pytest.raises(simsearch.InvalidMetadataError, match="NUL"):
            col.add(["x"], vectors=[[1.0]], metadata=[{"s": ["ok", {"t": "\x00"}]}])
        assert len(col) == 0
        col.add(["y"], vectors=[[1.0]], metadata=[{"s": "a"}])
        with pytest.raises(simsearch.InvalidFilterError, match="NUL"):
            col.search([1.0], where={"s": "a\x00b"})
        with pytest.raises(simsearch.InvalidFilterError, match="NUL"):
            col.delete(where={"s": {"$in": ["\x00"]}})
        assert len(col) == 1


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
def test_vectors_whose_length_overflows_are_refused(tmp_path: Path, metric: str) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric=metric, dim=2) as col:
        with pytest.raises(simsearch.InvalidVectorError, match="overflows float32"):
            col.add(["small", "big"], vectors=[[1, 0], [2e19, 2e19]])
        assert len(col) == 0
        col.add(["small"], vectors=[[1, 0]])
        with pytest.raises(simsearch.InvalidVectorError, match="overflows float32"):
            col.search([2e19, 2e19])


def test_check_names_metadata_a_write_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    _sql(path, "UPDATE items SET metadata = ? WHERE id = '2'", '{"a":' * 300 + "1" + "}" * 300)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "metadata past simsearch's limits" in result.output
    assert "'2'" in result.output


def test_check_reports_a_vector_stored_as_text(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    _sql(path, "UPDATE items SET vector = ? WHERE id = '1'", "x" * 32)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1, result.output
    assert "'1'" in result.output
    assert "not 8-d float32" in result.output


def test_check_blames_a_changed_config_not_the_items(tmp_path: Path) -> None:
    path = tmp_path / "c"
    filled(path, 5)
    with sqlite3.connect(path / DB) as conn:
        (text,) = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'config'",
            (json.dumps(json.loads(text) | {"dim": 9}),),
        )
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "the config is damaged, not the items" in result.output
    assert "delete or rewrite" not in result.output


def test_another_index_setting_rebuilds_without_a_warning(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    path = tmp_path / "c"
    filled(path, 300, GRAPH)
    with simsearch.Collection.open(path, index=simsearch.HNSW(m=12, exact_below=0)) as col:
        assert len(col.search(vectors(1), k=5)[0]) == 5
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# -- a whole-table scan reads through a small page cache --------------------------------------
def test_a_long_scan_reads_through_a_small_cache_and_a_short_one_keeps_the_cache(
    tmp_path: Path,
) -> None:
    from simsearch.store.scans import SCAN_CACHE_KIB

    filled(tmp_path / "c", n=30)
    col = simsearch.Collection.open(tmp_path / "c")
    with col._store.snapshot() as snap:
        sizes = []
        for _ in snap.changes_since(0, 8, chunk=10):
            sizes.append(snap.query("PRAGMA cache_size").fetchone()[0])
        normal = snap.query("PRAGMA cache_size").fetchone()[0]
        assert normal < -SCAN_CACHE_KIB  # the reader's own cache, back after the scan
        # The first chunk reads with the cache as it was, the later ones with the small one;
        # the deletions come after the scan.
        assert sizes == [normal, -SCAN_CACHE_KIB, -SCAN_CACHE_KIB, normal]
        short = [snap.query("PRAGMA cache_size").fetchone()[0] for _ in snap.changes_since(0, 8)]
        assert short == [normal, normal]  # one chunk of rows, then the deletions
        texts = [snap.query("PRAGMA cache_size").fetchone()[0] for _ in snap.texts_since(0, 10)]
        assert texts == [normal, -SCAN_CACHE_KIB, -SCAN_CACHE_KIB]
        exported = [snap.query("PRAGMA cache_size").fetchone()[0] for _ in snap.iter_rows(8, 10)]
        assert exported[:10] == [normal] * 10
        assert set(exported[10:]) == {-SCAN_CACHE_KIB}
        assert snap.query("PRAGMA cache_size").fetchone()[0] == normal
        dropped = snap.iter_rows(8, 10)
        for _ in range(15):
            next(dropped)
        dropped.close()  # left unfinished: the cache comes back all the same
        assert snap.query("PRAGMA cache_size").fetchone()[0] == normal
    col.close()
