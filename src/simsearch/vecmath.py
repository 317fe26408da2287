"""Row arithmetic on the one-query path, where numpy's per-call dispatch costs more than
the arithmetic: a server's search normalises and checks a single 50- to 1,000-float query.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

try:  # einsum's own kernel, without the dispatch layer (a few microseconds a call)
    _einsum: Any = importlib.import_module("numpy._core._multiarray_umath").c_einsum
except (ImportError, AttributeError):  # pragma: no cover - another numpy: the public one
    _einsum = np.einsum

__all__ = ["row_sq_norms"]


def row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Each row's squared length, ``(n,)``, the same bits as ``np.einsum("ij,ij->i")``.

    >>> row_sq_norms(np.array([[3.0, 4.0]], dtype=np.float32)).tolist()
    [25.0]
    """
    return _einsum("ij,ij->i", x, x)  # type: ignore[no-any-return]
