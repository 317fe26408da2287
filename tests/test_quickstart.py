"""The README's quickstart, run as written in a fresh folder: Python, command line, server.

Each block is taken from README.md itself, so the test breaks when the text and
simsearch part ways. The Python and CLI steps run twice, as a newcomer re-running
them would. The server step gets a free port in place of the README's 8000.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


def quickstart_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block between "## Quickstart" and the next section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder that looks like the root of a clone after `make demo`: `.venv` is there."""
    if not (VENV / "bin" / "simsearch").exists():
        pytest.skip(f"{VENV} has no bin/simsearch (not a venv with simsearch installed)")
    (tmp_path / ".venv").symlink_to(VENV, target_is_directory=True)
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # This checkout's sources, even where the venv's editable install points elsewhere.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("SIMSEARCH_API_KEYS_FILE", None)
    return env


def _bash(script: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # A session of its own, so that a server the script leaves behind can be stopped.
    proc = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_the_quickstart_has_python_cli_and_server_steps() -> None:
    blocks = quickstart_blocks()
    assert [lang for lang, _ in blocks] == ["python", "sh", "sh"]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    # It comes right after the two commands and the introduction, before any guide.
    assert text.index("## Quickstart") < text.index("## Python library")
    assert ".venv/bin/simsearch" in text
    assert "source .venv/bin/activate" in text


def test_the_python_quickstart_runs_twice(clone: Path) -> None:
    (code,) = [code for lang, code in quickstart_blocks() if lang == "python"]
    (clone / "quickstart.py").write_text(code, encoding="utf-8")
    for _ in range(2):
        run = _bash(".venv/bin/python quickstart.py", clone)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert len(lines) == 2, run.stdout
        assert lines[0].startswith("guitar "), run.stdout


def test_the_cli_and_server_quickstart_run_as_written(clone: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    cli, server = [code for lang, code in quickstart_blocks() if lang == "sh"]
    for _ in range(2):
        run = _bash(cli, clone)
        assert run.returncode == 0, run.stderr
        # The filter keeps r1 (90 minutes) out; the lemon tart ranks first.
        assert "r2" in run.stdout, run.stdout
        assert "r1" not in run.stdout, run.stdout
    port = free_port()
    assert "8000" in server
    run = _bash(server.replace("8000", str(port)), clone)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert [hit["id"] for hit in answer["results"][0]][:1] in (["r2"], ["r4"]), answer
