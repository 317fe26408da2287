"""One BLAS thread for a run of products that memory bounds, not arithmetic.

OpenBLAS hands any product over about 262,000 multiply-adds to its thread pool, whose
spin-waiting threads stall for milliseconds each time when the cores are busy with
other work (a server's cores are). A MaxSim rerank makes one such product per chunk of
decoded token vectors, dozens a query, and a second thread gains it little: measured
on 140 sets of 238 token vectors against a 21-vector query with other work running,
float16 sets scored in 346 ms with the pool and 146 ms on one thread, int8 sets in 287
and 73 ms. :func:`serial_blas` holds BLAS at one thread for the duration of a block
(through threadpoolctl) and puts it back when the last block that asked for it ends,
so overlapping blocks in several threads leave the setting as they found it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["serial_blas"]

_lock = threading.Lock()
_holders = 0
_restore: Any = None
_controller: Any = None


def _limit() -> Any:
    """threadpoolctl's limit of BLAS to one thread (its controller found once), or
    ``None`` where threadpoolctl is missing."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a declared dependency
            _controller = False
        else:
            _controller = ThreadpoolController()
    if _controller is False:
        return None
    return _controller.limit(limits=1, user_api="blas")


@contextmanager
def serial_blas() -> Iterator[None]:
    """Run the block with BLAS on one thread.

    >>> import numpy as np
    >>> with serial_blas():
    ...     float((np.ones((300, 300)) @ np.ones((300, 300)))[0, 0])
    300.0
    """
    global _holders, _restore
    with _lock:
        if _holders == 0:
            _restore = _limit()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _restore is not None:
                _restore.restore_original_limits()
                _restore = None
