"""Multi-vector items: sets of token vectors scored by MaxSim (late interaction), found
through MUVERA fixed-dimensional encodings (:mod:`simsearch.multivector.fde`), stored
compressed beside each item (:mod:`simsearch.multivector.tokens`)."""

from __future__ import annotations

from typing import Any

from simsearch.multivector.fde import FDEEncoder, MultiVector

__all__ = ["FDEEncoder", "MultiVector", "multivector_summary"]


def multivector_summary(multi: MultiVector | None) -> dict[str, Any] | None:
    """What ``Collection.info`` says of a multi-vector collection: its encoding, storage,
    token dimension and the dimension of the encodings the index holds."""
    if multi is None:
        return None
    return {**multi.to_dict(), "fde_dim": multi.fde_dim}
