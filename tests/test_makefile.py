"""make test installs what the tests need: a failed install of the ray extra stops it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_a_failed_ray_install_fails_make_test(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # A venv whose pip fails, already set up otherwise (its stamp newer than pyproject).
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text("#!/bin/sh\necho 'ERROR: no matching distribution for ray' >&2\nexit 1\n")
    python.chmod(0o755)
    (tmp_path / ".venv" / ".installed").touch()
    done = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), ".venv/.ray"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "could not install the ray extra" in done.stderr
    assert not (tmp_path / ".venv" / ".ray").exists()  # the next run tries again
