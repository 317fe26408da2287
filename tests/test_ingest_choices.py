"""Ingest's choices: --skip-existing, --on-error skip with a report, typed CSV values, a
report of what was stored; and no command but ingest, import and create makes a collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app

pytest.importorskip("static_model", reason="the static-64 encoder needs simsearch[static]")

runner = CliRunner()
FAST = ["--encoder", "static-64"]


def _jsonl(path: Path, ids: range, bad: dict[int, str] | None = None) -> Path:
    lines = [json.dumps({"id": f"r{i}", "text": f"note {i}", "n": i}) for i in ids]
    for at, line in (bad or {}).items():
        lines[at - 1] = line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ingest(src: Path, col: Path, *extra: str) -> Any:
    return runner.invoke(app, ["ingest", str(src), "--into", str(col), *FAST, *extra])


def _items(col: Path) -> dict[str, Any]:
    with simsearch.Collection.open(col, create=False) as c:
        return {i.id: i for i in c.iter_items()}


def test_skip_existing_keeps_stored_items_and_reports_them(tmp_path: Path) -> None:
    col = tmp_path / "col"
    assert _ingest(_jsonl(tmp_path / "a.jsonl", range(1, 6)), col).exit_code == 0
    src = tmp_path / "b.jsonl"
    src.write_text(
        "\n".join(json.dumps({"id": f"r{i}", "text": f"other {i}"}) for i in range(3, 9)) + "\n"
    )
    done = _ingest(src, col, "--skip-existing")
    assert done.exit_code == 0, done.output
    assert f"stored 3 items from {src} ({src}:4 to {src}:6)" in done.output
    assert "skipped 3 ids already in" in done.output
    assert "'r3', 'r4', 'r5'" in done.output
    assert f"{col} holds 8 items" in done.output
    items = _items(col)
    assert (items["r3"].text, items["r8"].text) == ("note 3", "other 8")
    again = _ingest(src, col, "--skip-existing")
    assert again.exit_code == 0
    assert "stored 0 items" in again.output
    both = _ingest(src, col, "--skip-existing", "--upsert")
    assert both.exit_code == 1
    assert "give one" in both.output


def test_a_stored_id_names_both_flags(tmp_path: Path) -> None:
    col = tmp_path / "col"
    src = _jsonl(tmp_path / "a.jsonl", range(1, 4))
    assert _ingest(src, col).exit_code == 0
    refused = _ingest(src, col)
    assert refused.exit_code == 1
    assert "pass --upsert to replace the items that exist, or --skip-existing" in refused.output


def test_on_error_skip_leaves_bad_records_out_and_shows_them(tmp_path: Path) -> None:
    bad = {
        3: "{not json",
        5: json.dumps({"text": "no id here"}),
        7: json.dumps({"id": "r1", "text": "a repeat"}),
        8: json.dumps({"id": "r8", "text": "t", "m": {"": 1}}),
    }
    src = _jsonl(tmp_path / "a.jsonl", range(1, 11), bad)
    col = tmp_path / "col"
    failed = _ingest(src, col)
    assert failed.exit_code == 1
    assert f"{src}:3" in failed.output
    assert not col.exists()  # the default: nothing written, not even the collection
    done = _ingest(src, col, "--on-error", "skip")
    assert done.exit_code == 0, done.output
    assert "stored 6 items" in done.output
    assert "skipped 4 bad records:" in done.output
    for line in (3, 5, 7, 8):
        assert f"{src}:{line}:" in done.output
    assert "also appears on line 1" in done.output
    assert sorted(_items(col)) == sorted(f"r{i}" for i in (1, 2, 4, 6, 9, 10))
    wrong = _ingest(src, col, "--on-error", "ignore")
    assert wrong.exit_code == 1
    assert "--on-error must be one of fail, skip" in wrong.output


def test_only_bad_records_with_skip_creates_nothing(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text("{bad\n[1]\n")
    done = _ingest(src, tmp_path / "col", "--on-error", "skip")
    assert done.exit_code == 0, done.output
    assert "stored 0 items" in done.output
    assert "skipped 2 bad records" in done.output
    assert "was not created" in done.output
    assert not (tmp_path / "col").exists()


def test_csv_values_are_typed_unless_told_not_to(tmp_path: Path) -> None:
    src = tmp_path / "films.csv"
    src.write_text(
        "id,text,year,rating,seen,code,note\n"
        "a,A film,2012,7.5,true,007,\n"
        "b,Another,1999,-1e2,FALSE,12,later\n",
        encoding="utf-8",
    )
    col = tmp_path / "col"
    assert _ingest(src, col).exit_code == 0
    items = _items(col)
    assert items["a"].metadata == {"year": 2012, "rating": 7.5, "seen": True, "code": "007"}
    assert items["b"].metadata == {
        "year": 1999, "rating": -100.0, "seen": False, "code": 12, "note": "later",
    }  # fmt: skip
    with simsearch.Collection.open(col, create=False) as c:
        assert [i.id for i in c.get(where={"year": 2012})] == ["a"]
        assert c.count({"year": {"$gte": 2000}}) == 1
    plain = tmp_path / "plain"
    assert _ingest(src, plain, "--no-infer").exit_code == 0
    assert _items(plain)["a"].metadata == {
        "year": "2012", "rating": "7.5", "seen": "true", "code": "007", "note": "",
    }  # fmt: skip


def test_an_export_given_to_ingest_points_to_import(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "a", dim=2) as c:
        c.add(["x"], vectors=[[1, 0]], texts=["hello"])
        c.export(tmp_path / "a.jsonl")
    done = _ingest(tmp_path / "a.jsonl", tmp_path / "b")
    assert done.exit_code == 1
    assert "simsearch import" in done.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "{col}", "q"],
        ["info", "{col}"],
        ["get", "{col}"],
        ["count", "{col}"],
        ["update", "{col}", "a", "--set", "{{}}"],
        ["delete", "{col}", "a"],
        ["export", "{col}"],
        ["backup", "{col}", "{col}-copy"],
        ["calibrate", "{col}"],
        ["dedup", "{col}"],
        ["check", "{col}"],
        ["list", "{col}"],
    ],
)
def test_no_other_command_creates_a_collection(tmp_path: Path, argv: list[str]) -> None:
    col = tmp_path / "typo"
    done = runner.invoke(app, [a.format(col=col) for a in argv])
    assert done.exit_code == 1, done.output
    assert str(col) in done.output
    assert not col.exists()
    assert not (tmp_path / "typo-copy").exists()


def test_create_makes_an_empty_collection_once(tmp_path: Path) -> None:
    col = tmp_path / "new"
    done = runner.invoke(app, ["create", str(col), "--metric", "dot", "--dim", "3"])
    assert done.exit_code == 0, done.output
    with simsearch.Collection.open(col, create=False) as c:
        assert (c.config.metric.value, c.config.dim, len(c)) == ("dot", 3, 0)
    again = runner.invoke(app, ["create", str(col)])
    assert again.exit_code == 1
    assert "holds a collection already" in again.output


def test_on_error_skip_in_a_csv_file(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text("id,text,n\na,first,1\nb,second\n,no id,3\nd,fourth,4\n", encoding="utf-8")
    done = _ingest(src, tmp_path / "col", "--on-error", "skip")
    assert done.exit_code == 0, done.output
    assert "skipped 2 bad records:" in done.output
    assert f"{src}:3: the row has 2 fields" in done.output
    assert f"{src}:4: the record has no id" in done.output
    assert sorted(_items(tmp_path / "col")) == ["a", "d"]
