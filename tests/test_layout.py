"""The house rules of the package's layout: files stay small, and imports go down the floors.

Each module belongs to a floor; a module may import only from its own floor or lower ones,
so data flows one way through the search pipeline and no part reaches back into the
collection. Core (everything below the tools on top) never imports the server or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "simsearch"

#: Lowest first. A module not named here belongs to its package's floor.
FLOORS: list[tuple[str, ...]] = [
    (
        "errors",
        "blas",
        "vecmath",
        "types",
        "config",
        "validation",
        "filters",
        "progress",
        "encoders",
        "chunking",
        "multivector",
        "multivector.fde",
        "multivector.refuse",
    ),
    ("store",),
    ("index", "multivector.tokens"),
    ("scoring",),
    ("upgrade.compat", "embedding"),
    ("upgrade",),
    ("search",),
    (
        "rows",
        "writes",
        "multivector.writes",
        "fitting",
        "opening",
        "field_admin",
        "transfer",
        "browse",
        "updates",
        "tuning",
    ),
    ("collection", "collection_parts", "collection_scoring", "collection_upgrades"),
    ("http_transport",),
    ("check", "ingest", "sources", "eval", "plots", "client", "distributed", "__init__"),
    ("server", "cli"),
]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def _floor(module: str) -> int:
    best = None
    for level, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best[1])
            ):
                best = (level, name)
    assert best is not None, f"{module} has no floor in tests/test_layout.py"
    return best[0]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("simsearch"):
            if node.module == "simsearch":
                found.update(f"simsearch.{a.name}" for a in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("simsearch."))
    return {name.removeprefix("simsearch.") for name in found}


def test_no_source_file_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long


def test_the_collection_is_a_thin_facade() -> None:
    # About 35 public methods, each argument checks, a docstring and one delegation, grouped
    # by concern: data and search here, scoring and model upgrades beside it, the parts
    # and their life below them.
    assert len((SRC / "collection.py").read_text(encoding="utf-8").splitlines()) < 400
    for facet in ("collection_parts", "collection_scoring", "collection_upgrades"):
        assert len((SRC / f"{facet}.py").read_text(encoding="utf-8").splitlines()) < 200


def test_imports_go_down_the_floors() -> None:
    upward = []
    for path in SRC.rglob("*.py"):
        me = _module(path)
        for name in _imports(path):
            if _floor(name) > _floor(me):
                upward.append(f"{me} imports {name}")
    assert not upward, upward
