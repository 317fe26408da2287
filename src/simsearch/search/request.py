"""A search request: every option checked once, frozen, then handed down the pipeline."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from simsearch.errors import InvalidArgumentError
from simsearch.filters import SqlFilter, compile_filter
from simsearch.index.text_filter import TextFilter
from simsearch.scoring.fusion import FUSIONS
from simsearch.scoring.hubness import HubnessTerms
from simsearch.validation import check_k

__all__ = ["MODES", "Knobs", "SearchRequest"]

#: The largest ef, nprobe or rescore factor a search may ask for.
MAX_KNOB = 100_000
#: The most best hits a search may skip (``offset``).
MAX_OFFSET = 1_000_000
#: The retrievers ``search(mode=...)`` names.
MODES = ("dense", "lexical", "hybrid")
#: Compiled filters kept by their value (see :func:`compiled_filter`), and requests without
#: filters by their arguments (see :meth:`SearchRequest.build`).
RECENT_FILTERS = 256
#: Filters this large or deep are compiled anew each time instead of kept.
_KEY_NODES = 1_000
_KEY_DEPTH = 40


@dataclass(frozen=True)
class Knobs:
    """Index settings one search may override (``None``: the index's own)."""

    ef: int | None = None
    nprobe: int | None = None
    rescore: int | None = None

    @staticmethod
    def checked(**values: Any) -> Knobs:
        for name, value in values.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_KNOB
            ):
                raise InvalidArgumentError(
                    f"{name} must be an integer in [1, {MAX_KNOB}], got {value!r}"
                )
        return Knobs(**values)


DEFAULT_KNOBS = Knobs()


def _check_text_modes(
    mode: Any, fusion: Any, alpha: Any, hubness: HubnessTerms, min_relevance: Any, cutoff: Any
) -> None:
    if mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if fusion not in FUSIONS:
        raise InvalidArgumentError(f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0
    ):
        raise InvalidArgumentError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if mode != "dense" and hubness.method != "none":
        raise InvalidArgumentError(
            f"mode={mode!r} ranks by BM25 or a fused score: hubness works with mode='dense'"
        )
    if mode == "lexical" and (min_relevance is not None or cutoff):
        raise InvalidArgumentError(
            "mode='lexical' ranks by BM25, which no calibration maps: min_relevance and cutoff "
            "work with mode='dense' or 'hybrid'"
        )


NO_HUBNESS = HubnessTerms("none")


@dataclass(frozen=True)
class SearchRequest:
    """What one call to ``search`` asks, validated (the queries travel beside it)."""

    k: int
    filter: SqlFilter | None = None
    offset: int = 0  # best hits skipped (paging): k + offset are ranked, k returned
    knobs: Knobs = DEFAULT_KNOBS
    exact: bool = False
    min_relevance: float | None = None
    cutoff: str | None = None
    hubness: HubnessTerms = NO_HUBNESS
    mode: str = "dense"
    fusion: str = "convex"
    alpha: float | None = None  # the dense weight of convex fusion; None: the saved one
    candidates: int | None = None  # a multi-vector search's MaxSim rerank depth
    text: TextFilter | None = None  # where_text

    @staticmethod
    def build(
        *,
        k: Any,
        where: Any = None,
        offset: Any = 0,
        ef: Any = None,
        nprobe: Any = None,
        rescore: Any = None,
        exact: Any = False,
        min_relevance: Any = None,
        cutoff: Any = None,
        hubness: Any = "none",
        mode: Any = "dense",
        fusion: Any = "convex",
        alpha: Any = None,
        candidates: Any = None,
        where_text: Any = None,
    ) -> SearchRequest:
        """The request for these ``search`` arguments; a bad one raises a specific error.
        Without filters, the request of arguments seen lately is reused (a server repeats
        its options on every call); the types are part of the key (``1`` is not ``True``)."""
        if (  # the call a server repeats: only k and ef given (exact types: 0 is not False)
            where is None
            and where_text is None
            and nprobe is None
            and rescore is None
            and exact is False
            and min_relevance is None
            and cutoff is None
            and alpha is None
            and candidates is None
            and type(offset) is int
            and offset == 0
            and type(hubness) is str
            and type(mode) is str
            and type(fusion) is str
            and (hubness, mode, fusion) == ("none", "dense", "convex")
        ):
            short = (k, ef, type(k), type(ef))
            try:
                seen = _SHORT.get(short)
            except TypeError:  # an unhashable k or ef: checked (and refused) below, not kept
                seen, kept = None, False
            else:
                kept = True
            if seen is not None:
                return seen
            request = SearchRequest._checked(
                k=k, where=None, offset=0, ef=ef, nprobe=None, rescore=None, exact=False,
                min_relevance=None, cutoff=None, hubness=hubness, mode=mode, fusion=fusion,
                alpha=None, candidates=None, where_text=None,
            )  # fmt: skip
            if kept:
                if len(_SHORT) >= RECENT_FILTERS:
                    _SHORT.clear()
                _SHORT[short] = request
            return request
        plain: tuple[Any, ...] = (k, offset, ef, nprobe, rescore, exact, min_relevance, cutoff)
        plain += (hubness, mode, fusion, alpha, candidates)
        key: tuple[Any, ...] | None = None
        if where is None and where_text is None:
            key = plain + tuple(map(type, plain))
            try:
                seen = _PLAIN.get(key)
            except TypeError:  # an unhashable argument: checked below, and refused there
                seen, key = None, None
            if seen is not None:
                return seen
        request = SearchRequest._checked(
            k=k, where=where, offset=offset, ef=ef, nprobe=nprobe, rescore=rescore,
            exact=exact, min_relevance=min_relevance, cutoff=cutoff, hubness=hubness,
            mode=mode, fusion=fusion, alpha=alpha, candidates=candidates, where_text=where_text,
        )  # fmt: skip
        if key is not None:
            if len(_PLAIN) >= RECENT_FILTERS:
                _PLAIN.clear()
            _PLAIN[key] = request
        return request

    @staticmethod
    def _checked(
        *,
        k: Any,
        where: Any,
        offset: Any,
        ef: Any,
        nprobe: Any,
        rescore: Any,
        exact: Any,
        min_relevance: Any,
        cutoff: Any,
        hubness: Any,
        mode: Any,
        fusion: Any,
        alpha: Any,
        candidates: Any,
        where_text: Any,
    ) -> SearchRequest:
        knobs = (
            DEFAULT_KNOBS
            if ef is None and nprobe is None and rescore is None
            else Knobs.checked(ef=ef, nprobe=nprobe, rescore=rescore)
        )
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise InvalidArgumentError(
                f"offset must be a whole number in [0, {MAX_OFFSET}], got {offset!r}"
            )
        if not isinstance(exact, bool):
            raise InvalidArgumentError(f"exact must be true or false, got {exact!r}")
        if min_relevance is not None and (
            isinstance(min_relevance, bool)
            or not isinstance(min_relevance, int | float)
            or not 0.0 <= min_relevance <= 1.0
        ):
            raise InvalidArgumentError(
                f"min_relevance must be a number in [0, 1], got {min_relevance!r}"
            )
        correction = HubnessTerms(hubness)
        if cutoff not in (None, "f1"):
            raise InvalidArgumentError(f"cutoff must be 'f1' or None, got {cutoff!r}")
        if cutoff is not None and correction.method != "none":
            raise InvalidArgumentError("cutoff='f1' cannot be combined with hubness reduction")
        _check_text_modes(mode, fusion, alpha, correction, min_relevance, cutoff)
        if candidates is not None and (
            isinstance(candidates, bool)
            or not isinstance(candidates, int)
            or not 1 <= candidates <= MAX_KNOB
        ):
            raise InvalidArgumentError(
                f"candidates must be an integer in [1, {MAX_KNOB}], got {candidates!r}"
            )
        flt = compiled_filter(where) if where is not None else None
        return SearchRequest(
            k=check_k(k),
            filter=None if flt is None or flt.matches_all else flt,
            offset=offset,
            knobs=knobs,
            exact=exact,
            min_relevance=None if min_relevance is None else float(min_relevance),
            cutoff=cutoff,
            hubness=correction,
            mode=mode,
            fusion=fusion,
            alpha=None if alpha is None else float(alpha),
            candidates=candidates,
            text=TextFilter.parse(where_text),
        )

    @property
    def depth(self) -> int:
        """How many best hits per query are ranked: the page and the ones it skips."""
        return self.k + self.offset

    @property
    def wants_relevance(self) -> bool:
        return self.min_relevance is not None or self.cutoff is not None


_RECENT: dict[Hashable, SqlFilter] = {}
_PLAIN: dict[tuple[Any, ...], SearchRequest] = {}
_SHORT: dict[tuple[Any, ...], SearchRequest] = {}  # by (k, ef) and their types


def compiled_filter(where: Any) -> SqlFilter:
    """``compile_filter(where)``, kept by value: a server repeats the same filters, and
    compiling one (SQLite parses its SQL to check it) costs more than many searches."""
    try:
        key = _frozen(where, 0, [0])
    except _UncachedError:
        return compile_filter(where)
    flt = _RECENT.get(key)
    if flt is None:
        flt = compile_filter(where)
        if len(_RECENT) >= RECENT_FILTERS:
            _RECENT.clear()
        _RECENT[key] = flt
    return flt


class _UncachedError(Exception):
    """A filter that is not kept: too large or deep, or holding a type JSON lacks."""


def _frozen(value: Any, depth: int, nodes: list[int]) -> Hashable:
    """``value`` as a hashable key that tells apart everything the compiler tells apart:
    the type of each scalar is part of it (``1``, ``1.0`` and ``True`` differ)."""
    nodes[0] += 1
    if nodes[0] > _KEY_NODES or depth > _KEY_DEPTH:
        raise _UncachedError
    kind = type(value)
    if kind is float:
        return (kind, value, math.copysign(1.0, value))  # -0.0 equals 0.0 but compiles apart
    if value is None or kind in (str, int, bool):
        return (kind, value)
    if kind is dict:
        return (dict, tuple((_frozen(k, depth + 1, nodes), _frozen(v, depth + 1, nodes))
                            for k, v in value.items()))  # fmt: skip
    if kind in (list, tuple):
        return (kind, tuple(_frozen(v, depth + 1, nodes) for v in value))
    raise _UncachedError
