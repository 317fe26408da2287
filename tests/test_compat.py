"""Compatibility maps between embedding spaces, on spaces related by known transforms."""

from __future__ import annotations

import numpy as np
import pytest

import simsearch
from simsearch.upgrade.compat import CompatibilityMap, fit_map


def related(
    n: int, d_new: int, d_old: int, seed: int, shift: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Old vectors, and new ones that are a noisy linear image of them in a shifted cone."""
    rng = np.random.default_rng(seed)
    old = rng.standard_normal((n, d_old))
    q, _ = np.linalg.qr(rng.standard_normal((max(d_new, d_old), max(d_new, d_old))))
    new = old @ q[:d_old, :d_new] + shift + 0.05 * rng.standard_normal((n, d_new))
    return new.astype(np.float32), old.astype(np.float32)


@pytest.mark.parametrize("method", ["procrustes", "ridge", "lowrank", "auto"])
@pytest.mark.parametrize(("d_new", "d_old"), [(32, 32), (48, 24)])
def test_maps_recover_a_related_space(method: str, d_new: int, d_old: int) -> None:
    new, old = related(600, d_new, d_old, 0)
    mapping = fit_map(new[:500], old[:500], method=method)
    mapped = mapping(new[500:])
    cos = np.sum(mapped * old[500:], axis=1) / (
        np.linalg.norm(mapped, axis=1) * np.linalg.norm(old[500:], axis=1)
    )
    floor = 0.4 if mapping.method == "lowrank" else 0.9  # half the directions are dropped
    assert np.median(cos) > floor
    assert mapping.target_dim == d_old


def test_centring_matters_for_vectors_in_a_narrow_cone() -> None:
    new, old = related(600, 32, 32, 1, shift=10.0)
    centred = fit_map(new[:500], old[:500], method="procrustes")
    assert np.allclose(centred.source_mean, new[:500].mean(axis=0), atol=1e-4)
    mapped = centred(new[500:])
    assert np.median(np.sum(mapped * old[500:], axis=1)) > 0


def test_auto_reports_the_held_out_recall_and_round_trips() -> None:
    new, old = related(300, 16, 16, 2)
    mapping = fit_map(new, old)
    assert mapping.method in {"procrustes", "ridge", "lowrank"}
    assert mapping.held_out_recall is not None
    assert mapping.held_out_recall > 0.9
    again = CompatibilityMap.from_json(mapping.to_json())
    np.testing.assert_allclose(again(new[:5]), mapping(new[:5]), rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.ones((20, 3)), np.ones((19, 3))), {}, "as many new vectors"),
        ((np.ones((5, 3)), np.ones((5, 3))), {}, "at least 10"),
        ((np.full((20, 3), np.nan), np.ones((20, 3))), {}, "NaN"),
        ((np.ones((20, 3)), np.ones((20, 3))), {"method": "cca"}, "method must be"),
    ],
)
def test_bad_input(args: tuple[np.ndarray, np.ndarray], kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match=match):
        fit_map(*args, **kwargs)


def test_a_map_refuses_vectors_of_another_dimension() -> None:
    new, old = related(100, 8, 8, 3)
    with pytest.raises(simsearch.InvalidArgumentError, match="takes 8-d"):
        fit_map(new, old)(np.ones((2, 9)))
