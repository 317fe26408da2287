"""Pictures of an evaluation: a reliability diagram and score histograms (matplotlib).

matplotlib is optional (``pip install 'simsearch[plots]'``); it is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoders.base import require

__all__ = ["reliability_diagram", "score_histograms"]


def _pyplot() -> Any:
    matplotlib: Any = require("matplotlib", "plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plots")


def reliability_diagram(
    probabilities: Sequence[float], outcomes: Sequence[bool], path: Path, title: str, bins: int = 10
) -> None:
    """Observed share of relevant hits against predicted relevance, per bin, as a PNG."""
    plt = _pyplot()
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot(
        [p[which == b].mean() for b in used],
        [y[which == b].mean() for b in used],
        marker="o",
        label="simsearch",
    )
    ax.set_xlabel("predicted relevance")
    ax.set_ylabel("observed share relevant")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_histograms(
    scores: Sequence[float], relevant: Sequence[bool], path: Path, title: str
) -> None:
    """Histograms of the raw scores of relevant and non-relevant hits, as a PNG."""
    plt = _pyplot()
    s = np.asarray(scores, dtype=float)
    r = np.asarray(relevant, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(s[~r], bins=50, alpha=0.6, density=True, label="not relevant")
    if r.any():
        ax.hist(s[r], bins=50, alpha=0.6, density=True, label="relevant")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
