"""The behaviour suite of test_behaviour.py against a 3-shard collection on a local
3-node Ray cluster (one cluster for the module)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import simsearch
from ray_cluster import local_cluster
from test_behaviour import *  # noqa: F403  (the suite runs again here with the fixture below)
from test_behaviour import Factory

del test_relevance_travels_over_http  # noqa: F821  (about the HTTP server alone)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(3) as running:
        yield running


@pytest.fixture
def make(cluster: Any, tmp_path: Path) -> Iterator[Factory]:
    """``make(metric, dim)`` opens a fresh 3-shard collection."""
    opened: list[Any] = []

    def sharded(metric: str = "cosine", dim: int | None = None) -> Any:
        col = simsearch.ShardedCollection.open(
            tmp_path / uuid.uuid4().hex, shards=3, metric=metric, dim=dim
        )
        opened.append(col)
        return col

    yield sharded
    for col in opened:
        col.close()
