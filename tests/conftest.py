from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import simsearch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def col_path(tmp_path: Path) -> Path:
    return tmp_path / "col"


@pytest.fixture
def col(col_path: Path) -> Iterator[simsearch.Collection]:
    with simsearch.Collection.open(col_path, metric="cosine") as c:
        yield c


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the shared datasets sit beside the repository in CI)")
    return path


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One server with API keys for the whole session (tests use their own collection names)."""
    from server_process import key_file, running_server

    root = tmp_path_factory.mktemp("server")
    with running_server(root / "data", keys=key_file(root / "keys.json")) as server:
        yield server
