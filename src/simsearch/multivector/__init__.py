"""Multi-vector items: sets of token vectors scored by MaxSim (late interaction), found
through MUVERA fixed-dimensional encodings (:mod:`simsearch.multivector.fde`), stored
compressed beside each item (:mod:`simsearch.multivector.tokens`)."""

from simsearch.multivector.fde import FDEEncoder, MultiVector

__all__ = ["FDEEncoder", "MultiVector"]
