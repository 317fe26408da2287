"""The README a newcomer reads first: its two commands lead; every make target it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchor(heading: str) -> str:
    # GitHub's rule: lower case, drop punctuation but hyphens, spaces become hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    assert first_block.splitlines()[1].startswith("make demo")
    assert first_block.splitlines()[2].startswith("make test")
    # No paragraph is repeated (a guard against a botched edit duplicating text).
    paragraphs = [p for p in text.split("\n\n") if len(p) > 80]
    assert len(paragraphs) == len(set(paragraphs))


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    for doc in DOCS:
        named = set(re.findall(r"make ([a-z][a-z-]*)", doc.read_text(encoding="utf-8")))
        assert named <= targets, (doc.name, named - targets)


def test_the_readme_leads_with_the_quickstart_and_keeps_figures_in_docs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert sections[:2] == ["Quickstart", "Guides"]
    # The command line and server guides come before the research-heavy ones.
    assert sections.index("Command line") < sections.index("Relevance you can threshold")
    assert sections.index("HTTP server, client and web page") < sections.index("Indexes")
    # Benchmark tables live in docs/benchmarks.md, which the README links.
    assert "](docs/benchmarks.md)" in text
    assert "queries/s" not in text
    assert "| cutoff |" not in text
    bench = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for figure in ("0.6468", "| cutoff |", "queries/s", "MiniLM → e5-small", "126 requests/s"):
        assert figure in bench, figure


def test_every_relative_link_in_the_docs_resolves() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            assert linked.exists(), (doc.name, target)
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                assert anchor in {_anchor(h) for h in headings}, (doc.name, target)
