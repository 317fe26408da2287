"""Routes that browse and change items in place: get (by id or filter, paged), count, update.

Added to the app by :func:`add_item_routes` from ``create_app``, which hands over the
checks every route shares (rights, the embedding and answer limits).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from fastapi import FastAPI

from simsearch.server.auth import ApiKey, Right
from simsearch.server.caller import Caller
from simsearch.server.registry import CollectionRegistry
from simsearch.server.schemas import (
    MAX_BATCH,
    Counted,
    CountItems,
    GetItems,
    ItemOut,
    ItemsOut,
    Updated,
    UpdateItems,
)

__all__ = ["add_item_routes"]


def add_item_routes(
    app: FastAPI,
    registry: CollectionRegistry,
    *,
    allow: Callable[[ApiKey | None, str | None, Right], None],
    check_texts: Callable[[Sequence[str] | None], None],
    check_answer: Callable[[int], None],
    embed_limits: str,
) -> None:
    """Declare ``/get``, ``/count`` and ``/update`` under ``/collections/{name}``."""

    @app.post(
        "/collections/{name}/get",
        tags=["items"],
        description="Items by id (in the order given), by filter (in insertion order), or "
        "both, paged with offset and limit (at most "
        f"{MAX_BATCH:,} an answer). Vectors only when include names them.",
    )
    def get_items(name: str, body: GetItems, key: Caller) -> ItemsOut:
        allow(key, name, Right.READ)
        limit = body.limit if body.limit is not None or body.ids else MAX_BATCH
        items = registry.get(name).get(
            body.ids,
            where=body.where,
            where_text=body.where_text,
            limit=limit,
            offset=body.offset,
            include=body.include,
            missing=body.missing,
        )
        check_answer(
            sum(
                len(i.id) + len(i.text or "") + 24 * (0 if i.vector is None else len(i.vector))
                + len(json.dumps(i.metadata)) + 64
                for i in items
            )
        )  # fmt: skip
        parts = set(body.include)
        return ItemsOut(
            items=[
                ItemOut(
                    id=i.id,
                    vector=None if i.vector is None else i.vector.tolist(),
                    text=i.text,
                    metadata=i.metadata if "metadata" in parts else None,
                )
                for i in items
            ]
        )

    @app.post("/collections/{name}/count", tags=["items"])
    def count_items(name: str, body: CountItems, key: Caller) -> Counted:
        """How many items match the filter (every item without one)."""
        allow(key, name, Right.READ)
        return Counted(count=registry.get(name).count(body.where, where_text=body.where_text))

    @app.post(
        "/collections/{name}/update",
        tags=["items"],
        description="Change only the given metadata (merged key by key, or replaced with "
        "merge=false), texts (embedded again when the collection has an encoder and no "
        "vectors come with them) or vectors of existing items, in one transaction; a "
        f"missing id fails the whole batch (404). {embed_limits}",
    )
    def update_items(name: str, body: UpdateItems, key: Caller) -> Updated:
        allow(key, name, Right.WRITE)
        check_texts(body.texts)
        n = registry.get(name).update(
            body.ids,
            metadata=body.metadata,
            merge=body.merge,
            texts=body.texts,
            vectors=body.vectors,
        )
        return Updated(updated=n)
