"""Row arithmetic on the one-query path, where numpy's per-call dispatch costs more than
the arithmetic: a server's search normalises and checks a single 50- to 1,000-float query.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

__all__ = ["row_sq_norms"]


def _kernel() -> Any:
    """einsum's own kernel, without the dispatch layer (a few microseconds a call): where
    numpy keeps it differs between versions, and any surprise falls back to the public
    function (the same arithmetic)."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy 2 warns on the numpy.core path
                found = getattr(importlib.import_module(module), "c_einsum", None)
        except Exception:  # any failure here only costs speed
            continue
        if callable(found):
            return found
    return np.einsum


_einsum: Any = _kernel()


def row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Each row's squared length, ``(n,)``, the same bits as ``np.einsum("ij,ij->i")``.

    >>> row_sq_norms(np.array([[3.0, 4.0]], dtype=np.float32)).tolist()
    [25.0]
    """
    return _einsum("ij,ij->i", x, x)  # type: ignore[no-any-return]
