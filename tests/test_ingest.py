"""``simsearch ingest`` checks the whole input before it writes, and names file and line."""

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


def _lines(bad: str | None = None) -> list[str]:
    """Ten good JSONL records; ``bad`` replaces line 8."""
    lines = [json.dumps({"id": f"r{i}", "text": f"note number {i}", "n": i}) for i in range(1, 11)]
    if bad is not None:
        lines[7] = bad
    return lines


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ingest(src: Path, col: Path, *extra: str) -> Any:
    return runner.invoke(app, ["ingest", str(src), "--into", str(col), *FAST, *extra])


def _count(col: Path) -> int:
    with simsearch.Collection.open(col, create=False) as c:
        return len(c)


def _refused(result: Any, where: str, *, writes_began: bool = False) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # One line; only once the writes have begun may a progress bar stand above it.
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"error: {where}:"), result.output
    if not writes_began:
        assert lines == errors, result.output


BAD_LINE_8 = {
    "duplicate-id": (json.dumps({"id": "r3", "text": "again"}), "also appears on line 3"),
    "nan-metadata": ('{"id": "r8", "text": "t", "score": NaN}', "score"),
    "infinity-nested": ('{"id": "r8", "text": "t", "m": {"a": [1, -Infinity]}}', "m.a[1]"),
    "long-id": (json.dumps({"id": "x" * 1025, "text": "t"}), "longer than 1024"),
    "text-object": ('{"id": "r8", "text": {"a": 1}}', "text field 'text' is an object"),
    "text-list": ('{"id": "r8", "text": ["a", "b"]}', "text field 'text' is a list"),
    "id-object": ('{"id": {"k": 1}, "text": "t"}', "id field 'id' is an object"),
}


@pytest.mark.parametrize("kind", list(BAD_LINE_8))
def test_a_bad_line_8_writes_nothing_and_is_named(tmp_path: Path, kind: str) -> None:
    """Batches of 3: before the checks came first, lines 1-6 were stored by then."""
    bad, message = BAD_LINE_8[kind]
    src = _write(tmp_path / "data.jsonl", _lines(bad))
    col = tmp_path / "col"
    result = _ingest(src, col, "--batch-size", "3")
    _refused(result, f"{src}:8")
    assert message in result.output
    assert not col.exists()  # a new collection is not created for a bad input
    # Into a collection that holds items already: it stays as it was.
    _write(tmp_path / "other.jsonl", [json.dumps({"id": "o1", "text": "other"})])
    assert _ingest(tmp_path / "other.jsonl", col).exit_code == 0
    _refused(_ingest(src, col, "--batch-size", "3"), f"{src}:8")
    assert _count(col) == 1
    # The fixed file then goes in whole: no id of it was left behind by the failed run.
    _write(src, _lines())
    fixed = _ingest(src, col)
    assert fixed.exit_code == 0, fixed.output
    assert _count(col) == 11


@pytest.mark.parametrize(
    "bad",
    [
        '{"id": "r8", "text": "bad \\ud800 text"}',
        '{"id": "r8\\udc00", "text": "t"}',
        '{"id": "r8", "text": "t", "note": "\\ud800"}',
    ],
    ids=["text", "id", "metadata"],
)
def test_a_lone_surrogate_on_line_8_writes_nothing_and_is_named(tmp_path: Path, bad: str) -> None:
    """The JSON escape \\ud800 decodes to a lone surrogate, which no UTF-8 text can hold.

    The check itself lives in simsearch.validation; ingest runs those checks per record.
    """
    src = _write(tmp_path / "data.jsonl", _lines(bad))
    col = tmp_path / "col"
    _refused(_ingest(src, col, "--batch-size", "3"), f"{src}:8")
    assert not col.exists()


def test_an_id_twice_names_both_lines(tmp_path: Path) -> None:
    src = _write(tmp_path / "data.jsonl", _lines(json.dumps({"id": "r3", "text": "again"})))
    result = _ingest(src, tmp_path / "col")
    assert f"{src}:8: id 'r3' also appears on line 3" in result.output


def test_ids_already_in_the_collection_are_refused_before_any_write(tmp_path: Path) -> None:
    col = tmp_path / "col"
    _write(tmp_path / "first.jsonl", [json.dumps({"id": "r8", "text": "already here"})])
    assert _ingest(tmp_path / "first.jsonl", col).exit_code == 0
    src = _write(tmp_path / "data.jsonl", _lines())
    result = _ingest(src, col, "--batch-size", "3")
    _refused(result, f"{src}:8")
    assert "'r8' is already in" in result.output
    assert "--upsert" in result.output
    assert _count(col) == 1  # lines 1-7 were not stored either
    upsert = _ingest(src, col, "--upsert")
    assert upsert.exit_code == 0, upsert.output
    assert _count(col) == 10


def test_a_write_that_fails_part_way_says_what_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer adds an id of the file after the checks: the batch holding it fails."""
    real_add = simsearch.Collection.add
    calls = 0

    def add(self: simsearch.Collection, ids: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # before the second batch (lines 4-6), another writer stores r5
            real_add(self, ["r5"], texts=["from elsewhere"])
        real_add(self, ids, **kwargs)

    monkeypatch.setattr(simsearch.Collection, "add", add)
    src = _write(tmp_path / "data.jsonl", _lines())
    col = tmp_path / "col"
    result = _ingest(src, col, "--batch-size", "3")
    _refused(result, f"{src}:5", writes_began=True)
    assert "3 of 10 items were stored" in result.output
    assert f"through {src}:3" in result.output
    assert "--upsert" in result.output
    monkeypatch.setattr(simsearch.Collection, "add", real_add)
    assert _count(col) == 4  # lines 1-3, and the other writer's r5
    assert _ingest(src, col, "--upsert").exit_code == 0
    assert _count(col) == 10


def test_a_failed_first_write_into_a_new_collection_says_nothing_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def add(self: simsearch.Collection, ids: Any, **kwargs: Any) -> None:
        raise simsearch.StoreBusyError("the database stayed locked")

    monkeypatch.setattr(simsearch.Collection, "add", add)
    src = _write(tmp_path / "data.jsonl", _lines())
    col = tmp_path / "col"
    result = _ingest(src, col, "--batch-size", "3")
    _refused(result, f"{src}:1", writes_began=True)
    assert "the database stayed locked; nothing was stored" in result.output
    # The collection stays (empty): another writer may have stored items in it meanwhile.
    with simsearch.Collection.open(col, create=False) as c:
        assert len(c) == 0


def test_a_csv_with_a_byte_order_mark_keeps_its_first_column(tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"
    src.write_text("id,text,lang\n1,Cats purr,en\n2,Hunde bellen,de\n", encoding="utf-8-sig")
    assert src.read_bytes().startswith(b"\xef\xbb\xbf")
    col = tmp_path / "col"
    result = _ingest(src, col)
    assert result.exit_code == 0, result.output
    with simsearch.Collection.open(col, create=False) as c:
        items = c.get(["1", "2"])
    assert [i.metadata for i in items] == [{"lang": "en"}, {"lang": "de"}]


@pytest.mark.parametrize(
    ("row", "fields"), [("3,Birds sing,en,extra", 4), ("3,Birds sing", 2)], ids=["more", "fewer"]
)
def test_a_ragged_csv_row_is_named_and_leaves_nothing(
    tmp_path: Path, row: str, fields: int
) -> None:
    src = tmp_path / "d.csv"
    # Record 2 spans lines 3-4 (a quoted newline), so the ragged record starts on line 5.
    src.write_text(f'id,text,lang\n1,Cats,en\n2,"Dogs\nbark",en\n{row}\n4,Fish,en\n')
    col = tmp_path / "col"
    result = _ingest(src, col)
    _refused(result, f"{src}:5", writes_began=True)
    assert f"has {fields} fields, the header (line 1) has 3" in result.output
    assert not col.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.jsonl", b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "caf\xe9"}\n'),
        ("data.csv", b"id,text\na,fine\nb,caf\xe9\n"),
        ("data.tsv", b"id\ttext\na\tfine\nb\tcaf\xe9\n"),
        ("data.txt", b"fine\ncaf\xe9\n"),
    ],
)
def test_invalid_utf8_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, content: bytes
) -> None:
    src = tmp_path / name
    src.write_bytes(content)
    col = tmp_path / "col"
    result = _ingest(src, col)
    line = content.count(b"\n")
    _refused(result, f"{src}:{line}")
    assert "not valid UTF-8" in result.output
    assert not col.exists()


def test_invalid_utf8_in_a_folder_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Fine\n")
    (folder / "b.txt").write_bytes(b"line one\nline \xff two\n")
    col = tmp_path / "col"
    result = _ingest(folder, col)
    _refused(result, f"{folder / 'b.txt'}:2")
    assert "not valid UTF-8" in result.output
    assert not col.exists()


def test_text_and_id_fields_take_numbers_and_refuse_other_kinds(tmp_path: Path) -> None:
    ok = _write(
        tmp_path / "ok.jsonl",
        [json.dumps({"id": 7, "text": 2001}), json.dumps({"id": "s", "text": "plain"})],
    )
    col = tmp_path / "col"
    assert _ingest(ok, col).exit_code == 0
    with simsearch.Collection.open(col, create=False) as c:
        assert c.get("7")[0].text == "2001"
    for value, kind in (("true", "true/false"), ("1.5", "the number 1.5")):
        bad = _write(tmp_path / "bad.jsonl", [f'{{"id": {value}, "text": "t"}}'])
        result = _ingest(bad, col)
        _refused(result, f"{bad}:1")
        assert f"id field 'id' is {kind}" in result.output
    bad = _write(tmp_path / "bad.jsonl", ['{"id": "b", "text": false}'])
    _refused(_ingest(bad, col), f"{bad}:1")
    assert _count(col) == 2
