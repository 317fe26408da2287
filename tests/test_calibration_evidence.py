"""Calibration that backs off with the evidence: the nested models chosen by
cross-validation, the report of what was fitted, the cutoff rules, graded
judgements, and queries with one or hundreds of relevant items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.eval import cutoff_metrics, expected_calibration_error
from simsearch.scoring.calibration import Calibrator

DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def global_map_data(seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, int]]]:
    """Items, queries, and judgements drawn from one score-to-probability map for
    every query, so nothing query-dependent can help."""
    rng = np.random.default_rng(seed)
    items = unit(rng.standard_normal((1500, DIM)))
    queries = unit(rng.standard_normal((60, DIM)))
    scores = queries @ items.T
    p = 1 / (1 + np.exp(-(12 * scores - 7)))
    drawn = rng.random(p.shape) < p
    return items, queries, [{f"i{j}": 1 for j in np.flatnonzero(row)} for row in drawn]


def test_where_query_dependence_does_not_help_the_fitted_model_is_the_global_map(
    tmp_path: Path,
) -> None:
    items, queries, judged = global_map_data(0)
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(items))], vectors=items)
        summary = col.calibrate(queries, judged)
        assert summary["model"] == "global"
        losses = summary["cross_validation"]["log_loss"]
        assert set(losses) == {"global", "list", "shape", "query"}
        # The global map is Platt scaling of the raw score: it recovers the true map.
        hits = col.search(queries[:5], k=50)
        for row, q in zip(hits, queries[:5], strict=True):
            for h in row:
                s = float(q @ items[int(h.id[1:])])
                assert h.relevance == pytest.approx(1 / (1 + np.exp(-(12 * s - 7))), abs=0.05)
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert col.calibration() == summary  # the report is saved with the calibration


def cluster_data(
    seed: int, clusters: int, per_query: float
) -> tuple[np.ndarray, np.ndarray, list[set[str]], np.ndarray, list[set[str]]]:
    """2,000 items in ``clusters`` clusters (so about 2000/clusters relevant per query),
    120 train and 100 test queries near the cluster centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    labels = rng.integers(0, clusters, 2000)
    x = centres[labels] + per_query * rng.standard_normal((2000, DIM))
    members = [{f"i{j}" for j in np.flatnonzero(labels == c)} for c in range(clusters)]
    which = rng.integers(0, clusters, 220)
    q = (centres[which] + 0.6 * rng.standard_normal((220, DIM))).astype(np.float32)
    judged = [members[c] for c in which]
    return x.astype(np.float32), q[:120], judged[:120], q[120:], judged[120:]


def f1_and_ece(
    col: simsearch.Collection, q: np.ndarray, truth: list[set[str]], k: int
) -> tuple[float, float, float]:
    """F1 of cutoff='f1', F1 of the cutoff's own global score threshold, ECE of relevance."""
    qrels = {str(i): dict.fromkeys(t, 1) for i, t in enumerate(truth)}
    cut = col.search(q, k=k, cutoff="f1")
    f1 = cutoff_metrics({str(i): [h.id for h in r] for i, r in enumerate(cut)}, qrels)["f1"]
    full = col.search(q, k=k)
    t = col.calibration()["score_threshold"]  # type: ignore[index]
    base = cutoff_metrics(
        {str(i): [h.id for h in r if h.score >= t] for i, r in enumerate(full)}, qrels
    )["f1"]
    ece = expected_calibration_error(
        [float(h.relevance or 0) for r in full for h in r],
        [h.id in truth[i] for i, r in enumerate(full) for h in r],
    )
    return f1, base, ece


def test_hundreds_of_relevant_items_per_query(tmp_path: Path) -> None:
    x, q, judged, test_q, test_truth = cluster_data(1, 4, 1.0)
    assert np.mean([len(t) for t in test_truth]) > 450
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(x))], vectors=x)
        summary = col.calibrate(q, judged)
        assert summary["depth"] >= 500  # calibrated as deep as the relevant items reach
        f1, base, ece = f1_and_ece(col, test_q, test_truth, 1000)
        assert f1 >= base - 0.01
        assert ece <= 0.05
        kept = col.search(test_q, k=1000, cutoff="f1")
        assert np.mean([len(r) for r in kept]) > 100


def test_one_relevant_item_per_query(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = unit(rng.standard_normal((2000, DIM)))
    targets = rng.choice(2000, 200, replace=False)
    q = unit(x[targets] + rng.uniform(0.05, 0.2, (200, 1)) * rng.standard_normal((200, DIM)))
    truth = [{f"i{t}"} for t in targets]
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(x))], vectors=x)
        summary = col.calibrate(q[:100], truth[:100])
        assert summary["depth"] == 100
        f1, base, ece = f1_and_ece(col, q[100:], truth[100:], 100)
        assert f1 >= base - 0.01
        assert f1 > 0.5
        assert ece <= 0.05


def test_graded_judgements_count_grades_above_zero(tmp_path: Path) -> None:
    x, q, judged, _, _ = cluster_data(3, 20, 0.8)
    graded = [{i: (2 if n % 2 else 1) for n, i in enumerate(sorted(j))} | {"i0": 0} for j in judged]
    binary = [{i for i, g in j.items() if g > 0} for j in graded]
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(x))], vectors=x)
        by_grade = col.calibrate(q[:40], graded[:40])
        by_set = col.calibrate(q[:40], binary[:40])
    assert by_grade == by_set


def test_a_single_judged_query_gets_the_global_map_and_threshold(tmp_path: Path) -> None:
    x, q, judged, test_q, _ = cluster_data(4, 20, 0.8)
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(x))], vectors=x)
        summary = col.calibrate(q[:1], judged[:1])
        assert summary["model"] == "global"
        assert summary["cutoff_rule"] == "global score threshold"
        assert summary["folds"] == 0
        full = col.search(test_q, k=100)
        cut = col.search(test_q, k=100, cutoff="f1")
        for a, b in zip(full, cut, strict=True):
            assert [h.id for h in b] == [h.id for h in a if h.score >= summary["score_threshold"]]


def test_each_cutoff_rule_keeps_what_it_says() -> None:
    from dataclasses import replace

    from simsearch.scoring.calibration import Background

    cal = Calibrator(kind="fitted", background=Background(np.zeros(2), np.eye(2), 10))
    scores = np.array([[0.9, 0.7, 0.5, -np.inf]])
    rel = np.array([[0.8, 0.4, 0.3, 0.0]])
    expected = np.array([1.0])
    by_score = replace(cal, rule="score", score_threshold=0.6).f1_keep(scores, rel, expected)
    assert by_score.tolist() == [[True, True, False, False]]
    by_prob = replace(cal, rule="probability", threshold=0.35).f1_keep(scores, rel, expected)
    assert by_prob.tolist() == [[True, True, False, False]]
    sure = np.array([[0.8, 0.2, 0.1, 0.0]])
    by_f1 = replace(cal, rule="expected").f1_keep(scores, sure, np.array([1.1]))
    assert by_f1.tolist() == [[True, False, False, False]]  # 1.6/2.1 beats 2.0/3.1


def test_calibrations_saved_before_the_nested_models_still_load() -> None:
    import json

    from simsearch.scoring.calibration import Background

    old = Calibrator(kind="fitted", background=Background(np.zeros(2), np.eye(2), 10))
    data = json.loads(old.to_json())
    for key in ("model", "rule", "score_threshold", "depth", "report"):
        del data[key]
    loaded = Calibrator.from_json(json.dumps(data))
    assert (loaded.model, loaded.rule, loaded.depth) == ("query", "expected", 1000)
