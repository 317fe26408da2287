"""The command line for people: --version, -h, completion, confirmation before destructive
commands, readable info, and tables that use the terminal's width."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app, common

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src"


def _filled(path: Path) -> Path:
    with simsearch.Collection.open(path, metric="dot") as col:
        col.add(
            [f"i{n}" for n in range(6)],
            vectors=[[1.0, n] for n in range(6)],
            metadata=[{"n": n, "long": f"value-{n}-" + "x" * 110} for n in range(6)],
        )
    return path


def test_version_and_short_help() -> None:
    for flag in ("--version", "-V"):
        done = runner.invoke(app, [flag])
        assert done.exit_code == 0
        assert done.output.strip() == f"simsearch {simsearch.__version__}"
    short = runner.invoke(app, ["-h"])
    assert short.exit_code == 0
    assert "ingest" in short.output
    assert "--install-completion" in short.output
    assert runner.invoke(app, ["search", "-h"]).exit_code == 0


def test_shell_completion_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "--show-completion", "bash"],
        capture_output=True, text=True, timeout=60,
        # The shell is named by the argument: typer's own switch turns off its guess from the
        # parent process, which under CI may be sh (unsupported).
        env=os.environ
        | {"PYTHONPATH": str(SRC), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout


@pytest.mark.parametrize(
    "argv", [["--where", '{"n": {"$lt": 3}}'], ["--all"], ["i1", "i2", "--where", '{"n": 1}']]
)
def test_destructive_deletes_ask_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    col = _filled(tmp_path / "c")
    monkeypatch.setattr(common, "interactive", lambda: True)
    refused = runner.invoke(app, ["delete", str(col), *argv], input="n\n")
    assert refused.exit_code == 1
    assert "Delete" in refused.output
    assert "nothing changed" in refused.output
    with simsearch.Collection.open(col, create=False) as c:
        assert len(c) == 6
    agreed = runner.invoke(app, ["delete", str(col), *argv], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    with simsearch.Collection.open(col, create=False) as c:
        assert len(c) < 6


def test_yes_skips_the_question_and_ids_alone_never_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = _filled(tmp_path / "c")
    monkeypatch.setattr(common, "interactive", lambda: True)
    done = runner.invoke(app, ["delete", str(col), "--where", '{"n": 0}', "--yes"])
    assert (done.exit_code, "Delete" in done.output) == (0, False)
    done = runner.invoke(app, ["delete", str(col), "i1"])
    assert (done.exit_code, "Delete" in done.output) == (0, False)
    with simsearch.Collection.open(col, create=False) as c:
        assert len(c) == 4


def test_info_is_for_people(tmp_path: Path) -> None:
    col = _filled(tmp_path / "c")
    shown = runner.invoke(app, ["info", str(col)])
    assert shown.exit_code == 0
    assert "KiB" in shown.output
    assert "seq" not in shown.output
    assert "size_bytes" not in shown.output
    assert "items" in shown.output
    assert "metadata fields" in shown.output
    assert "integer: 6" in shown.output  # the field n, held by all six items
    data = json.loads(runner.invoke(app, ["info", str(col), "--json"]).stdout)
    assert {"seq", "size_bytes"} <= set(data)  # machines still get every figure


def test_the_search_table_uses_a_wide_terminal(tmp_path: Path) -> None:
    col = _filled(tmp_path / "c")
    done = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "get", str(col), "i3"],
        capture_output=True, text=True, timeout=60,
        env=os.environ | {"PYTHONPATH": str(SRC), "COLUMNS": "250"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "value-3-" + "x" * 110 in done.stdout  # whole, on one line
    pytest.importorskip("static_model", reason="the static-64 encoder needs simsearch[static]")
    with simsearch.Collection.open(tmp_path / "t", encoder="static-64") as c:
        c.add(["t"], texts=["a note about tables"], metadata=[{"k": "y" * 150}])
    done = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "search", str(tmp_path / "t"), "tables"],
        capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(SRC), "COLUMNS": "250"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "y" * 150 in done.stdout  # the old table cut metadata at 60 characters
