"""Calibrated relevance: fitted from judgements, the unlabelled background fallback, cutoffs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import simsearch

DIM = 16
CLUSTERS = 40


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Items around cluster centres; an item is relevant to queries from its own cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM))
    spread = rng.uniform(0.3, 1.2, CLUSTERS)  # clusters of different tightness
    labels = rng.integers(0, CLUSTERS, 2000)
    x = centres[labels] + spread[labels, None] * rng.standard_normal((2000, DIM))
    return x.astype(np.float32), labels


def queries(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((CLUSTERS, DIM))
    which = rng.integers(0, CLUSTERS, n)
    q = centres[which] + 0.5 * rng.standard_normal((n, DIM))
    return q.astype(np.float32), which


@pytest.fixture
def col(tmp_path: Path) -> simsearch.Collection:
    x, labels = data()
    c = simsearch.Collection.open(tmp_path / "c", metric="cosine")
    c.add([f"i{j}" for j in range(len(x))], vectors=x, metadata=[{"c": int(v)} for v in labels])
    return c


def judgements(which: np.ndarray) -> list[set[str]]:
    _, labels = data()
    by_cluster = {c: {f"i{j}" for j in np.flatnonzero(labels == c)} for c in range(CLUSTERS)}
    return [by_cluster[int(c)] for c in which]


def test_an_uncalibrated_collection_says_so(col: simsearch.Collection) -> None:
    hit = col.search(np.ones(DIM), k=3)[0][0]
    assert hit.relevance is None
    assert "relevance" not in hit.to_dict()
    with pytest.raises(simsearch.NotCalibratedError, match="not calibrated"):
        col.search(np.ones(DIM), k=3, min_relevance=0.5)


def test_fitted_relevance_is_calibrated_and_monotone(col: simsearch.Collection) -> None:
    train_q, train_c = queries(300, 1)
    summary = col.calibrate(train_q, judgements(train_c))
    assert summary["kind"] == "fitted"
    test_q, test_c = queries(200, 2)
    res = col.search(test_q, k=100)
    rel = np.array([[h.relevance for h in row] for row in res])
    assert ((rel >= 0) & (rel <= 1)).all()
    assert (np.diff(rel, axis=1) <= 1e-12).all()  # never reorders a query's hits
    truth = judgements(test_c)
    y = np.array([[h.id in t for h in row] for row, t in zip(res, truth, strict=True)])
    # Expected calibration error over 10 bins.
    bins = np.clip((rel * 10).astype(int), 0, 9)
    ece = (
        sum(
            abs(rel[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum()
            for b in range(10)
            if (bins == b).any()
        )
        / rel.size
    )
    assert ece <= 0.05
    # The cutoff keeps a prefix of each row, and keeps more relevant than irrelevant items.
    cut = col.search(test_q, k=100, min_relevance=summary["threshold"])
    for full, kept in zip(res, cut, strict=True):
        assert [h.id for h in kept] == [h.id for h in full][: len(kept)]
    kept_y = [h.id in t for row, t in zip(cut, truth, strict=True) for h in row]
    assert np.mean(kept_y) > 0.5


def test_background_fallback_without_labels(col: simsearch.Collection) -> None:
    assert col.calibrate() == {"kind": "background"}
    q, _ = queries(50, 3)
    res = col.search(q, k=20)
    rel = np.array([[h.relevance for h in row] for row in res])
    assert ((rel >= 0) & (rel <= 1)).all()
    assert (np.diff(rel, axis=1) <= 1e-12).all()
    strict = col.search(q, k=20, min_relevance=0.9)
    assert all(h.relevance >= 0.9 for row in strict for h in row)
    assert sum(len(r) for r in strict) < sum(len(r) for r in res)


def test_calibration_survives_reopen_and_follows_writes(tmp_path: Path) -> None:
    x, _ = data()
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(x))], vectors=x)
        train_q, train_c = queries(200, 1)
        col.calibrate(train_q, judgements(train_c))
        q, _ = queries(20, 4)
        before = col.search(q, k=10)
    with simsearch.Collection.open(tmp_path / "c") as col:
        after = col.search(q, k=10)
        assert before == after  # relevance included
        # Deleting half: deleted items never come back, and the background follows the data.
        col.delete([f"i{j}" for j in range(0, 2000, 2)])
        res = col.search(q, k=10)
        assert all(int(h.id[1:]) % 2 == 1 for row in res for h in row)
        assert all(0 <= h.relevance <= 1 for row in res for h in row)
        calibrator = col._calibration.calibrator  # the one searches use, refreshed
        with col._store.snapshot() as snap:
            state = snap.state()
            current = calibrator(snap, state, col._keeper.index, snap.config(state))
        assert current is not None
        assert current.background.count == 1000
        col.add(["new"], vectors=q[:1])
        top = col.search(q[:1], k=1)[0][0]
        assert top.id == "new"
        assert top.relevance is not None
        col.uncalibrate()
        assert col.search(q[:1], k=1)[0][0].relevance is None


def test_a_filtered_search_gives_the_same_relevance_as_an_unfiltered_one(
    col: simsearch.Collection,
) -> None:
    train_q, train_c = queries(200, 1)
    col.calibrate(train_q, judgements(train_c))
    q, c = queries(5, 6)
    for query, cluster in zip(q, c, strict=True):
        everything = {h.id: h.relevance for h in col.search(query, k=2000)[0]}
        for hit in col.search(query, k=10, where={"c": int(cluster)})[0]:
            assert hit.relevance == pytest.approx(everything[hit.id])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.ones((2, DIM)),), {}, "together"),
        ((np.ones((2, DIM)), [{"i1"}]), {}, "2 queries but 1 judgements"),
        ((np.ones((1, DIM)), ["i1"]), {}, "each judgement"),
        ((np.ones((1, DIM)), "i1"), {}, "one entry per query"),
        ((np.ones((1, DIM + 1)), [{"i1"}]), {}, "dimension"),
        ((np.ones((1, DIM)), [{"nope"}]), {}, "both relevant and non-relevant"),
    ],
)
def test_bad_calibration_input(
    col: simsearch.Collection, args: tuple[object, ...], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(simsearch.SimsearchError, match=match):
        col.calibrate(*args, **kwargs)  # type: ignore[arg-type]
    assert col.search(np.ones(DIM), k=1)[0][0].relevance is None  # nothing was saved


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", True, float("nan")])
def test_bad_min_relevance(col: simsearch.Collection, bad: object) -> None:
    col.calibrate()
    with pytest.raises(simsearch.InvalidArgumentError, match="min_relevance"):
        col.search(np.ones(DIM), k=3, min_relevance=bad)  # type: ignore[arg-type]


def test_l2_collections_are_refused(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="l2") as col:
        col.add(["a", "b"], vectors=np.eye(2))
        with pytest.raises(simsearch.InvalidArgumentError, match="cosine and dot"):
            col.calibrate()


def test_expected_f1_cutoff_keeps_a_prefix_and_needs_fitted_probabilities(
    col: simsearch.Collection,
) -> None:
    col.calibrate()
    with pytest.raises(simsearch.NotCalibratedError, match="judgements"):
        col.search(np.ones(DIM), k=5, cutoff="f1")
    train_q, train_c = queries(300, 1)
    col.calibrate(train_q, judgements(train_c))
    q, c = queries(100, 7)
    full = col.search(q, k=100)
    cut = col.search(q, k=100, cutoff="f1")
    for a, b in zip(full, cut, strict=True):
        assert [h.id for h in b] == [h.id for h in a][: len(b)]
    truth = judgements(c)
    precision = np.mean(
        [np.mean([h.id in t for h in row]) for row, t in zip(cut, truth, strict=True) if row]
    )
    assert precision > 0.5
    with pytest.raises(simsearch.InvalidArgumentError, match="cutoff"):
        col.search(np.ones(DIM), k=5, cutoff="precision")


@pytest.mark.slow
def test_the_f1_cutoff_counts_relevant_items_beyond_the_first_window(tmp_path: Path) -> None:
    """With hundreds of relevant items per query, the expected F1 must count those past the
    first 100 candidates (down to the depth the judged relevant items reach), or it keeps
    too small a set."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, DIM))
    labels = rng.integers(0, 4, 2000)
    x = centres[labels] + 0.9 * rng.standard_normal((2000, DIM))
    which = rng.integers(0, 4, 200)
    q = centres[which] + 0.5 * rng.standard_normal((200, DIM))
    members = [{f"i{j}" for j in np.flatnonzero(labels == c)} for c in range(4)]
    with simsearch.Collection.open(tmp_path / "big") as col:
        col.add([f"i{j}" for j in range(2000)], vectors=x.astype(np.float32))
        summary = col.calibrate(q[:150].astype(np.float32), [members[c] for c in which[:150]])
        assert summary["cutoff_rule"] == "expected F1"
        assert summary["depth"] > 100
        test = q[150:].astype(np.float32)
        deep = col.search(test, k=summary["depth"])
        cut = col.search(test, k=300, cutoff="f1")
    for row, kept in zip(deep, cut, strict=True):
        p = np.array([h.relevance or 0.0 for h in row])
        f1 = 2 * np.cumsum(p[:300]) / (np.arange(1, 301) + p.sum())
        assert len(kept) == int(np.argmax(f1)) + 1


def _threshold_by_brute_force(
    values: np.ndarray, labels: np.ndarray, relevant: np.ndarray
) -> float:
    """Every candidate cutoff in turn, the F1 of each query's hits at or above it."""
    best, best_f1 = 0.5, -1.0
    for t in np.unique(np.round(values[np.isfinite(values)], 3)):
        f1s = []
        for row, y, n_rel in zip(values, labels, relevant, strict=True):
            kept = np.isfinite(row) & (row >= t)
            tp, n = int((kept & y).sum()), int(kept.sum())
            f1s.append(2 * tp / (n + n_rel) if n + n_rel else 1.0)
        if np.mean(f1s) > best_f1:
            best, best_f1 = float(t), float(np.mean(f1s))
    return best


def test_the_f1_best_threshold_is_the_one_a_search_of_every_cutoff_finds() -> None:
    from simsearch.scoring.calibration import best_threshold

    rng = np.random.default_rng(11)
    for _ in range(40):
        queries, depth = int(rng.integers(1, 30)), int(rng.integers(1, 120))
        values = np.round(rng.random((queries, depth)), int(rng.integers(1, 4)))
        values[rng.random((queries, depth)) < 0.1] = -np.inf  # places without an item
        values = -np.sort(-values, axis=1)
        labels = rng.random((queries, depth)) < 0.3
        relevant = labels.sum(axis=1) + rng.integers(0, 3, queries)
        assert best_threshold(values, labels, relevant) == _threshold_by_brute_force(
            values, labels, relevant
        )
