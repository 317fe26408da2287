"""The README a newcomer reads first: its two commands lead; every make target it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    assert first_block.splitlines()[1].startswith("make demo")
    assert first_block.splitlines()[2].startswith("make test")
    # No paragraph is repeated (a guard against a botched edit duplicating text).
    paragraphs = [p for p in text.split("\n\n") if len(p) > 80]
    assert len(paragraphs) == len(set(paragraphs))


def test_every_make_target_the_readme_names_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"make ([a-z][a-z-]*)", text))
    assert named <= targets, named - targets
