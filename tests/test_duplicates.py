"""Near-duplicate mining with margin scoring, against a brute-force computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app
from simsearch.scoring.duplicates import mine_pairs


def brute_force(x: np.ndarray, k: int, margin: str) -> dict[frozenset[int], float]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    background = np.take_along_axis(sim, order, axis=1).mean(axis=1)
    out = {}
    for a in range(len(x)):
        for b in order[a]:
            denom = (background[a] + background[b]) / 2
            s = sim[a, b]
            out[frozenset((a, int(b)))] = s - denom if margin == "distance" else s / denom
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(6, 40),
    k=st.integers(1, 5),
    margin=st.sampled_from(["ratio", "distance"]),
)
def test_margins_match_a_brute_force_computation(seed: int, n: int, k: int, margin: str) -> None:
    # Positive coordinates keep every background positive, so the ratio is defined.
    x = np.random.default_rng(seed).uniform(0.1, 1.0, (n, 5)).astype(np.float32)
    pairs = mine_pairs([str(i) for i in range(n)], x, k=k, candidates=k, margin=margin)
    want = brute_force(x, k, margin)
    got = {frozenset((int(p.a), int(p.b))): p.margin for p in pairs}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert [p.margin for p in pairs] == sorted((p.margin for p in pairs), reverse=True)


def test_the_margin_prefers_an_isolated_pair_to_a_crowded_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    crowd = rng.normal(0, 0.05, (30, 8)) + np.eye(8)[0]  # 30 near-identical items
    twins = np.stack([np.eye(8)[1], np.eye(8)[1] + 0.1 * np.eye(8)[2]])  # one clear pair
    far = rng.standard_normal((20, 8))
    x = np.vstack([crowd, twins, far]).astype(np.float32)
    ids = [f"crowd{i}" for i in range(30)] + ["twin-a", "twin-b"] + [f"far{i}" for i in range(20)]
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add(ids, vectors=x)
        top = col.find_duplicates()[0]
        assert {top.a, top.b} == {"twin-a", "twin-b"}
        assert all(p.margin >= 1.5 for p in col.find_duplicates(min_margin=1.5))
        result = CliRunner().invoke(app, ["dedup", str(tmp_path / "c"), "--json", "--limit", "3"])
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(lines) == 3
        assert {lines[0]["a"], lines[0]["b"]} == {"twin-a", "twin-b"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": "absolute"}, "margin must be"),
        ({"k": 0}, "k must be"),
        ({"k": True}, "k must be"),
        ({"min_margin": "high"}, "min_margin"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add(["a", "b", "c"], vectors=np.eye(3))
        with pytest.raises(simsearch.InvalidArgumentError, match=match):
            col.find_duplicates(**kwargs)  # type: ignore[arg-type]


def test_small_and_l2_collections(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert col.find_duplicates() == []
        col.add(["a"], vectors=[[1.0, 0.0]])
        assert col.find_duplicates() == []
    with simsearch.Collection.open(tmp_path / "d", metric="l2") as col:
        col.add(["a", "b"], vectors=np.eye(2))
        with pytest.raises(simsearch.InvalidArgumentError, match="cosine and dot"):
            col.find_duplicates()
