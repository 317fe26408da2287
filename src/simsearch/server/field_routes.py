"""Routes for payload indexes and plans: declare or drop a field index, explain a filter.

Added to the app by :func:`add_field_routes` from ``create_app``. Declaring and dropping
change the collection's config, so they take the admin right, as creating a collection
does; explaining reads, so it takes the read right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from simsearch.server.auth import ApiKey, Right
from simsearch.server.caller import Caller
from simsearch.server.registry import CollectionRegistry
from simsearch.server.schemas import (
    DropFieldIndex,
    ExplainSearch,
    FieldIndexBody,
    FieldIndexChanged,
)

__all__ = ["add_field_routes"]


def add_field_routes(
    app: FastAPI,
    registry: CollectionRegistry,
    *,
    allow: Callable[[ApiKey | None, str | None, Right], None],
) -> None:
    """Declare ``/fields``, ``/fields/drop`` and ``/explain`` under ``/collections/{name}``."""

    @app.post(
        "/collections/{name}/fields",
        tags=["admin"],
        description="Index a metadata field (kind keyword, integer, float, bool or datetime) "
        "so filters on it are answered without scanning; built at once.",
    )
    def index_field(name: str, body: FieldIndexBody, key: Caller) -> FieldIndexChanged:
        allow(key, name, Right.ADMIN)
        col = registry.get(name)
        changed = col.index_field(body.field, body.kind, window=body.window)
        return FieldIndexChanged(changed=changed, field_indexes=col.info()["field_indexes"])

    @app.post("/collections/{name}/fields/drop", tags=["admin"])
    def drop_field_index(name: str, body: DropFieldIndex, key: Caller) -> FieldIndexChanged:
        allow(key, name, Right.ADMIN)
        col = registry.get(name)
        changed = col.drop_field_index(body.field)
        return FieldIndexChanged(changed=changed, field_indexes=col.info()["field_indexes"])

    @app.post(
        "/collections/{name}/explain",
        tags=["search"],
        description="Which plan a search with this filter runs and why: the rows it allows, "
        "where they came from (payload index, scan, cache), exact or graph search.",
    )
    def explain(name: str, body: ExplainSearch, key: Caller) -> dict[str, Any]:
        allow(key, name, Right.READ)
        return registry.get(name).explain(where=body.where, exact=body.exact)
