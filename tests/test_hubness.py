"""Hubness reduction: query banks, corrected orderings and the k-occurrence report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.scoring.hubness import HubnessTerms, k_occurrence_skewness

DIM = 24


def hubby(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items, a bank and queries where items along a shared direction are hubs."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(DIM)
    items = rng.standard_normal((800, DIM))
    items[:20] += 3 * common  # twenty hubs, close to every query that leans on `common`
    bank = rng.standard_normal((300, DIM)) + common
    queries = rng.standard_normal((300, DIM)) + common
    return items.astype(np.float32), bank.astype(np.float32), queries.astype(np.float32)


@pytest.fixture
def col(tmp_path: Path) -> simsearch.Collection:
    items, _, _ = hubby(0)
    c = simsearch.Collection.open(tmp_path / "c")
    c.add([f"i{j}" for j in range(len(items))], vectors=items)
    return c


def test_a_bank_is_needed_and_methods_are_checked(col: simsearch.Collection) -> None:
    with pytest.raises(simsearch.NotCalibratedError, match="set_hubness_bank"):
        col.search(np.ones(DIM), k=5, hubness="csls")
    with pytest.raises(simsearch.InvalidArgumentError, match="hubness must be one of"):
        col.search(np.ones(DIM), k=5, hubness="mp")
    assert list(col.hubness_report()["methods"]) == ["none"]


@pytest.mark.parametrize("method", ["csls", "qbnorm", "dbnorm"])
def test_corrections_lower_the_skewness_of_k_occurrence(
    col: simsearch.Collection, method: str
) -> None:
    _, bank, queries = hubby(0)
    col.set_hubness_bank(bank)
    report = col.hubness_report(k=10, queries=queries)["methods"]
    assert report[method]["skewness"] < report["none"]["skewness"]
    # Hits keep their raw scores; every hit is one of the query's nearest items.
    plain = col.search(queries[:5], k=40)
    for full, fixed in zip(plain, col.search(queries[:5], k=10, hubness=method), strict=True):
        raw = {h.id: h.score for h in full}
        assert all(h.id in raw and h.score == pytest.approx(raw[h.id]) for h in fixed)


def test_the_bank_survives_reopen_and_follows_writes(tmp_path: Path) -> None:
    items, bank, queries = hubby(1)
    with simsearch.Collection.open(tmp_path / "c") as col:
        col.add([f"i{j}" for j in range(len(items))], vectors=items)
        col.set_hubness_bank(bank)
        before = col.search(queries[:20], k=10, hubness="csls").ids.tolist()
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert col.search(queries[:20], k=10, hubness="csls").ids.tolist() == before
        col.delete([f"i{j}" for j in range(0, 800, 2)])
        col.add(["new"], vectors=queries[:1])
        res = col.search(queries[:20], k=10, hubness="csls")
        assert res[0][0].id == "new"
        assert all(h.id == "new" or int(h.id[1:]) % 2 == 1 for row in res for h in row)


def test_item_terms_match_their_formulas() -> None:
    rng = np.random.default_rng(3)
    items, bank, gallery = (rng.standard_normal((n, 4)) for n in (5, 30, 12))
    sims = bank @ items.T
    csls = HubnessTerms("csls").item_terms(items, bank, gallery)
    np.testing.assert_allclose(csls, np.sort(sims, axis=0)[-10:].mean(axis=0))
    qb = HubnessTerms("qbnorm").item_terms(items, bank, gallery)
    np.testing.assert_allclose(qb, np.log(np.exp(20 * sims).sum(axis=0)), rtol=1e-9)
    assert k_occurrence_skewness([1, 1, 1, 1], 4) == 0.0


def test_an_item_never_counts_as_its_own_bank_neighbour() -> None:
    rng = np.random.default_rng(4)
    items = rng.standard_normal((6, 5))
    others = rng.standard_normal((40, 5))
    with_self = np.vstack([others, items[2:3]])  # the bank holds item 2 itself
    for method in ("csls", "qbnorm", "dbnorm"):
        terms = HubnessTerms(method)
        got = terms.item_terms(items, with_self, with_self)
        want = terms.item_terms(items, others, others)
        np.testing.assert_allclose(got[2], want[2], rtol=1e-12)
        alone = terms.item_terms(items[2:3], items[2:3], items[2:3])
        assert np.isfinite(alone).all()


def test_the_items_bank_lowers_the_data_sets_own_hubness(col: simsearch.Collection) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="gallery_sample"):
        col.set_hubness_bank(gallery_sample=0)
    with pytest.raises(simsearch.InvalidArgumentError, match="sample must be"):
        col.hubness_report(sample=0)
    col.set_hubness_bank(gallery_sample=400)
    report = col.hubness_report(k=10, sample=800)
    assert report["queries"] == 800
    methods = report["methods"]
    assert methods["csls"]["skewness"] < 0.8 * methods["none"]["skewness"]


def test_cli_reports_hubness(col: simsearch.Collection, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from simsearch.cli import app

    path = str(col.path)
    col.close()
    plain = CliRunner().invoke(app, ["hubness", path, "--json"])
    assert plain.exit_code == 0, plain.output
    report = json.loads(plain.stdout)
    assert list(report["methods"]) == ["none"]
    assert report["queries"] == 800
    assert report["methods"]["none"]["top_hubs"][0][1] >= 1
    banked = CliRunner().invoke(app, ["hubness", path, "--items-bank", "--sample", "300", "--json"])
    assert banked.exit_code == 0, banked.output
    report = json.loads(banked.stdout)
    assert report["queries"] == 300
    assert list(report["methods"]) == ["none", "csls", "qbnorm", "dbnorm"]


def test_a_wrong_bank_is_refused_and_nothing_is_saved(col: simsearch.Collection) -> None:
    with pytest.raises(simsearch.DimensionMismatchError, match="dimension 25"):
        col.set_hubness_bank(np.ones((5, DIM + 1)))
    with pytest.raises(simsearch.NotCalibratedError, match="set_hubness_bank"):
        col.search(np.ones(DIM), k=5, hubness="csls")


def test_hubness_with_calibrated_relevance(col: simsearch.Collection) -> None:
    _, bank, queries = hubby(0)
    col.set_hubness_bank(bank)
    col.calibrate()
    plain = col.search(queries[:20], k=200)
    relevance_of = [{h.id: h.relevance for h in row} for row in plain]
    fixed = col.search(queries[:20], k=10, hubness="csls")
    for row, rel in zip(fixed, relevance_of, strict=True):
        assert len(row) == 10
        assert all(h.relevance == pytest.approx(rel[h.id]) for h in row)
    # The cut keeps the hubness order and leaves no gaps, whatever the relevance order.
    cut = col.search(queries[:20], k=10, hubness="csls", min_relevance=0.5)
    for full, kept in zip(fixed, cut, strict=True):
        assert [h.id for h in kept] == [h.id for h in full if (h.relevance or 0) >= 0.5]
    with pytest.raises(simsearch.InvalidArgumentError, match="cannot be combined"):
        col.search(queries[:1], k=5, hubness="csls", cutoff="f1")
