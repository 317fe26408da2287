"""Declaring and dropping payload indexes, and explaining how a search would run.

A declaration is part of the collection's config (one transaction), so every process
uses the same indexes; the columns themselves are derived data that the index keeper
builds, catches up and saves (see :mod:`simsearch.index.field_set`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from simsearch.config import FieldIndexSpec, Flat, index_name
from simsearch.errors import InvalidArgumentError
from simsearch.filters import compile_filter
from simsearch.index.keeper import IndexKeeper
from simsearch.search.plan import plan_search
from simsearch.store import SQLiteStore

__all__ = ["declare_field_index", "drop_field_index", "explain_filter"]

#: The JSON types a kind of index is meant for (checked against the stored fields).
_KIND_TYPES = {
    "keyword": {"text"},
    "datetime": {"text"},
    "integer": {"integer", "real"},
    "float": {"integer", "real"},
    "bool": {"true", "false"},
}


def declare_field_index(store: SQLiteStore, keeper: IndexKeeper, spec: FieldIndexSpec) -> bool:
    """Declare ``spec`` and build its index now; ``False`` if it was declared already.

    A field that items already hold, but never with a value of the kind's types, is
    refused: the index would serve none of the filters on it.
    """
    with store.write() as txn:
        config = txn.config()
        same = [s for s in config.fields if s.keys == spec.keys]
        if same and same[0] == spec:
            return False
        if same:
            raise InvalidArgumentError(
                f"the field {spec.field!r} already has a {same[0].kind!r} index"
                f"{' with window=True' if same[0].window else ''}; drop it first to change it"
            )
        held = next((f for f in txn.fields() if f.keys == spec.keys), None)
        if held is not None and not set(held.types) & _KIND_TYPES[spec.kind]:
            kinds = ", ".join(sorted(held.types))
            raise InvalidArgumentError(
                f"items hold {spec.field!r} as {kinds} values, none of which a payload index "
                f"of kind {spec.kind!r} serves; choose the kind that fits "
                f"({_suggest(set(held.types))})"
            )
        txn.save_config(replace(config, fields=(*config.fields, spec)))
    with store.snapshot() as snap:
        keeper.build_fields(snap)
    return True


def _suggest(types: set[str]) -> str:
    fits = [kind for kind, wanted in _KIND_TYPES.items() if types & wanted]
    return "kind " + " or ".join(repr(k) for k in fits) if fits else "lists are not indexed"


def drop_field_index(store: SQLiteStore, field: str) -> bool:
    """Forget the payload index of ``field``; ``False`` if it had none."""
    keys = FieldIndexSpec(field, "keyword").keys  # validates the path
    with store.write() as txn:
        config = txn.config()
        kept = tuple(s for s in config.fields if s.keys != keys)
        if len(kept) == len(config.fields):
            return False
        txn.save_config(replace(config, fields=kept))
    return True


def explain_filter(
    store: SQLiteStore, keeper: IndexKeeper, where: Any, exact: bool
) -> dict[str, Any]:
    """Which plan a search with the filter ``where`` takes now, and why."""
    flt = None if where is None else compile_filter(where)
    with store.snapshot() as snap, keeper.reading(snap, flt) as pinned:
        config = pinned.config
        live = 0 if pinned.index is None else len(pinned.index)
        allowed = None if pinned.allowed is None else len(pinned.allowed)
        out: dict[str, Any] = {"index": index_name(config.index), "live": live}
        if flt is not None and not flt.matches_all:
            out["filter"] = {
                "allowed": allowed,
                "share": None if not live or allowed is None else allowed / live,
                "from": pinned.filter_source,
                "indexed_fields": sorted(s.field for s in config.fields),
            }
        if pinned.index is None:
            out.update(plan="none", reason="the collection holds no vectors yet")
            return out
        plan = plan_search(
            config.index,
            live=live,
            allowed=allowed,
            force_exact=exact,
            dim=pinned.index.dim,
            window=None if pinned.window is None or allowed is None else len(pinned.window),
        )
        if isinstance(config.index, Flat):
            out.update(plan="exact", reason="flat index")
        else:
            name = "exact" if plan.exact else "window" if plan.window else "graph"
            out.update(plan=name, reason=plan.reason)
        return out
