"""Export, import and backup: a collection round-trips exactly, and bad files write nothing."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app
from simsearch.encoders import register_encoder
from simsearch.errors import (
    CollectionExistsError,
    DimensionMismatchError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidVectorError,
)

runner = CliRunner()


def _build(path: Path, n: int = 50, *, index: object = None) -> simsearch.Collection:
    rng = np.random.default_rng(7)
    col = simsearch.Collection.open(path, metric="dot", index=index)  # type: ignore[arg-type]
    vecs = rng.standard_normal((n, 8)).astype(np.float32)
    vecs[0, 0] = np.float32(0.1)  # a value float32 cannot hold exactly in decimal
    vecs[1, 1] = -0.0
    vecs[2, 2] = np.float32(1e-38)  # near the bottom of float32's normal range
    col.add(
        [f"id{i}" for i in range(n)],
        vectors=vecs,
        metadata=[{"n": i, "tags": ["a", "b"][: i % 3], "nested": {"x": i / 7}} for i in range(n)],
    )
    col.upsert(["id3"], vectors=vecs[3:4], texts=["ünïcode text"], metadata=[{"z": None}])
    col.delete(["id4"])  # a gap in the row numbers
    return col


def test_jsonl_export_import_export_is_identical_and_bit_exact(tmp_path: Path) -> None:
    with _build(tmp_path / "a", index=simsearch.HNSW(m=8)) as col:
        col.calibrate()  # saved scoring state travels too
        col.set_hubness_bank()
        col.index_field("n", "integer")  # and the payload-index declarations
        assert col.export(tmp_path / "a.jsonl") == 49
        original = {i.id: i for i in col.iter_items()}
        calibration = col.calibration()
        query = original["id7"].vector
        before = [h.to_dict() for h in col.search(query, k=5, hubness="csls")[0]]
    with simsearch.Collection.import_(tmp_path / "a.jsonl", tmp_path / "b") as copy:
        assert copy.config.index == simsearch.HNSW(m=8)
        assert copy.config.metric.value == "dot"
        assert copy.calibration() == calibration
        assert [f["field"] for f in copy.info()["field_indexes"]] == ["n"]
        assert copy.explain(where={"n": {"$lt": 5}})["filter"]["from"] == "payload index"
        copy.export(tmp_path / "b.jsonl")
        for item in copy.iter_items():
            want = original[item.id]
            assert item.vector.tobytes() == want.vector.tobytes()  # bit for bit
            assert (item.text, item.metadata) == (want.text, want.metadata)
        assert [h.to_dict() for h in copy.search(query, k=5, hubness="csls")[0]] == before
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    header = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert header["config"]["fields"] == [{"field": "n", "kind": "integer", "window": False}]
    assert set(header["saved"]) == {"calibration", "hubness"}


def test_parquet_round_trip(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    with _build(tmp_path / "a") as col:
        col.export(tmp_path / "a.parquet")
        col.export(tmp_path / "a.jsonl")
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.schema.field("vector").type.value_type.bit_width == 32
    with simsearch.Collection.import_(tmp_path / "a.parquet", tmp_path / "b") as copy:
        copy.export(tmp_path / "b.parquet")
        copy.export(tmp_path / "b.jsonl")
    assert pq.read_table(tmp_path / "b.parquet").equals(table)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


class CountingEncoder:
    """A deterministic 16-d encoder that counts the passages it embeds."""

    dim = 16
    name = "counting-16"
    version = "1"
    passages = 0

    def encode(self, texts: Sequence[str], *, kind: str = "passage", progress: Any = None) -> Any:
        if kind == "passage":
            CountingEncoder.passages += len(texts)
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8]) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(16) for s in seeds])


register_encoder("counting-16", CountingEncoder)


def test_import_does_not_embed_texts_again(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "a", encoder="counting-16") as col:
        col.add(["x", "y"], texts=["red apples", "blue sky"])
        sink = io.StringIO()
        col.export(sink)
    assert CountingEncoder.passages == 2
    lines = sink.getvalue().splitlines()
    assert json.loads(lines[0])["config"]["encoder"]["name"] == "counting-16"
    # A vector changed by hand comes back as given, not re-embedded from its text.
    item = json.loads(lines[1])
    item["vector"] = [0.5] * 16
    (tmp_path / "e.jsonl").write_text("\n".join([lines[0], json.dumps(item), lines[2]]) + "\n")
    with simsearch.Collection.import_(tmp_path / "e.jsonl", tmp_path / "b") as copy:
        assert copy.get("x")[0].vector.tolist() == [0.5] * 16
        assert copy.info()["encoder"]["name"] == "counting-16"
        assert copy.search("blue sky", k=1)[0][0].id == "y"  # the saved encoder still works
    assert CountingEncoder.passages == 2


def _export_lines(tmp_path: Path) -> list[str]:
    with _build(tmp_path / "src", n=5) as col:
        col.export(tmp_path / "src.jsonl")
    return (tmp_path / "src.jsonl").read_text().splitlines()


def _item(field: str, value: object) -> object:
    """A change of the first item's ``field`` (the others are dropped)."""

    def change(lines: list[str]) -> list[str]:
        record = json.loads(lines[1])
        record[field] = value(record[field]) if callable(value) else value
        header = json.loads(lines[0]) | {"count": 1}
        return [json.dumps(header), json.dumps(record)]

    return change


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda ls: ls[1:], InvalidInputError, "not a simsearch export"),
        (lambda ls: [*ls, ls[1]], InvalidIdError, "appears again (first at"),
        (lambda ls: [*ls[:3], "{bad json"], InvalidInputError, ":4: not valid JSON"),
        (_item("vector", lambda v: [*v, 1.0]), DimensionMismatchError, "dimension 9"),
        (_item("vector", lambda v: [float("nan"), *v[1:]]), InvalidVectorError, "NaN"),
        (_item("vector", None), InvalidInputError, "has no vector"),
        (_item("metadata", {"": 1}), InvalidMetadataError, ":2:"),
        (_item("id", 7), InvalidIdError, ":2:"),
        (_item("extra", 1), InvalidInputError, "unknown item fields: extra"),
        (lambda ls: ls[:-1], InvalidInputError, "header says 4 items but the file holds 3"),
        (lambda ls: [ls[0].replace('"metric": "dot"', '"metric": "hamming"'), *ls[1:]],
         InvalidInputError, "config is invalid"),
        (lambda ls: [ls[0].replace('"version": 1', '"version": 9'), *ls[1:]], InvalidInputError,
         "export version 9"),
        (lambda ls: [ls[0][:-5], *ls[1:]], InvalidInputError, ":1: the export header is damaged"),
    ],
)  # fmt: skip
def test_a_bad_export_file_writes_nothing(
    tmp_path: Path, change: object, error: type[Exception], words: str
) -> None:
    lines = change(_export_lines(tmp_path))  # type: ignore[operator]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(error) as info:
        simsearch.Collection.import_(bad, tmp_path / "new")
    assert words in str(info.value)
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]


def test_import_refuses_an_existing_collection(tmp_path: Path) -> None:
    _export_lines(tmp_path)
    with pytest.raises(CollectionExistsError, match="import into a new folder"):
        simsearch.Collection.import_(tmp_path / "src.jsonl", tmp_path / "src")
    (tmp_path / "empty").mkdir()
    simsearch.Collection.import_(tmp_path / "src.jsonl", tmp_path / "empty").close()


def test_an_export_without_vectors_is_refused_on_import(tmp_path: Path) -> None:
    with _build(tmp_path / "a", n=5) as col:
        col.export(tmp_path / "a.jsonl", vectors=False)
    with pytest.raises(InvalidInputError, match="no vectors"):
        simsearch.Collection.import_(tmp_path / "a.jsonl", tmp_path / "b")


def test_cli_export_import_round_trip(tmp_path: Path) -> None:
    _build(tmp_path / "a").close()
    done = runner.invoke(app, ["export", str(tmp_path / "a"), "-o", str(tmp_path / "a.jsonl")])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["import", str(tmp_path / "a.jsonl"), "--into", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    assert "49 items imported" in done.output
    done = runner.invoke(app, ["export", str(tmp_path / "b")])
    assert done.exit_code == 0
    assert done.stdout == (tmp_path / "a.jsonl").read_text()
    again = runner.invoke(app, ["import", str(tmp_path / "a.jsonl"), "--into", str(tmp_path / "b")])
    assert again.exit_code == 1
    assert "import into a new folder" in again.output


def test_backup_while_a_writer_runs_is_consistent(tmp_path: Path) -> None:
    col = simsearch.Collection.open(tmp_path / "live", metric="dot")
    col.add(["seed"], vectors=[[1.0, 0.0]], metadata=[{"batch": -1}])
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with simsearch.Collection.open(tmp_path / "live") as mine:
            batch = 0
            while not stop.is_set():
                ids = [f"b{batch}-{j}" for j in range(20)]
                mine.add(ids, vectors=np.ones((20, 2)), metadata=[{"batch": batch}] * 20)
                written.append(batch)
                batch += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 3:
            threading.Event().wait(0.01)
        col.backup(tmp_path / "copy")
        done = runner.invoke(app, ["backup", str(tmp_path / "live"), str(tmp_path / "copy2")])
        assert done.exit_code == 0, done.output
    finally:
        stop.set()
        thread.join()
    for name in ("copy", "copy2"):
        with simsearch.Collection.open(tmp_path / name, create=False) as copy:
            batches = [i.metadata["batch"] for i in copy.iter_items()]
            # Whole batches only (each add is one transaction), and every one up to the last.
            assert len(batches) == 1 + 20 * (len(batches) // 20)
            last = max(batches)
            assert sorted(set(batches)) == list(range(-1, last + 1))
            assert len(copy.search([1.0, 0.0], k=5)[0]) == min(5, len(batches))  # searchable
    with pytest.raises(CollectionExistsError):
        col.backup(tmp_path / "copy")
    col.close()


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with (
        _build(tmp_path / "a", n=5) as col,
        pytest.raises(simsearch.MissingDependencyError, match=r"simsearch\[parquet\]"),
    ):
        col.export(tmp_path / "a.parquet")


def _piped(command: str) -> Any:
    """Run ``simsearch COMMAND`` in bash, where COMMAND may end in a pipe to a reader."""
    import os
    import subprocess
    import sys

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(
        f"set -o pipefail; {sys.executable} -m simsearch.cli {command}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_export_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    _build(tmp_path / "a", n=2000).close()
    done = _piped(f"export {tmp_path / 'a'} | head -n 2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 2


def test_export_refuses_a_collection_in_a_model_upgrade(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with _build(tmp_path / "a", n=12) as col:
        col.migrate_vectors(
            [f"id{i}" for i in range(5, 12)] + ["id0", "id1", "id2"], rng.standard_normal((10, 5))
        )
        with pytest.raises(simsearch.InvalidArgumentError, match="model upgrade is in progress"):
            col.export(tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()


def test_index_settings_travel(tmp_path: Path) -> None:
    index = simsearch.IVFPQ(nlist=4, m=2, nprobe=3, exact_below=7)
    with _build(tmp_path / "a", n=12, index=index) as col:
        col.export(tmp_path / "a.jsonl")
    with simsearch.Collection.import_(tmp_path / "a.jsonl", tmp_path / "b") as copy:
        assert copy.config.index == index


WRITER = """
import sys
import numpy as np
import simsearch
with simsearch.Collection.open(sys.argv[1]) as col:
    for batch in range(10**6):
        ids = [f"b{batch}-{j}" for j in range(50)]
        col.add(ids, vectors=np.ones((50, 2)), metadata=[{"batch": batch}] * 50)
        if batch == 3:
            print("writing", flush=True)
"""


def test_backup_while_another_process_writes(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    live = tmp_path / "live"
    simsearch.Collection.open(live, metric="dot", dim=2).close()
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        for name in ("one", "two"):
            done = runner.invoke(app, ["backup", str(live), str(tmp_path / name)])
            assert done.exit_code == 0, done.output
        assert writer.poll() is None  # it was still writing
    finally:
        writer.kill()
        writer.wait()
    sizes = []
    for name in ("one", "two"):
        with simsearch.Collection.open(tmp_path / name, create=False) as copy:
            batches = sorted(i.metadata["batch"] for i in copy.iter_items())
            assert batches == sorted(b for b in range(max(batches) + 1) for _ in range(50))
            sizes.append(len(batches))
    assert sizes[0] >= 200


def test_import_from_standard_input(tmp_path: Path) -> None:
    _build(tmp_path / "a", n=6).close()
    exported = runner.invoke(app, ["export", str(tmp_path / "a")]).stdout
    done = runner.invoke(app, ["import", "-", "--into", str(tmp_path / "b")], input=exported)
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["export", str(tmp_path / "b")]).stdout == exported
    bad = runner.invoke(app, ["import", "-", "--into", str(tmp_path / "c")], input="{}\n")
    assert bad.exit_code == 1
    assert "<stdin>:1: not a simsearch export" in bad.output


@pytest.mark.parametrize("command", ["info", "get", "list"])
def test_every_command_into_a_closed_pipe_exits_quietly(tmp_path: Path, command: str) -> None:
    _build(tmp_path / "a", n=50).close()
    target = tmp_path if command == "list" else tmp_path / "a"
    done = _piped(f"{command} {target} | true")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
