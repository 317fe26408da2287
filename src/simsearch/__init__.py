"""simsearch: embedding similarity search for Python.

Durable collections of items (id, vector, text, metadata) kept in SQLite,
exact search with metadata filters, and a default text encoder that runs on
onnxruntime. Start with :meth:`Collection.open`.

>>> import simsearch
>>> sorted(simsearch.Metric.__members__)
['COSINE', 'DOT', 'L2']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simsearch.browse import list_collections
from simsearch.check import CheckReport, check_collection
from simsearch.collection import Collection
from simsearch.config import HNSW, IVFPQ, CollectionConfig, EncoderSpec, Flat
from simsearch.encoders import (
    DEFAULT_ENCODER,
    Encoder,
    available_encoders,
    get_encoder,
    register_encoder,
)
from simsearch.errors import (
    AuthenticationError,
    CollectionClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigMismatchError,
    CorruptCollectionError,
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidTextError,
    InvalidVectorError,
    ItemNotFoundError,
    MissingDependencyError,
    NotACollectionError,
    NotCalibratedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServerUnavailableError,
    ShardUnavailableError,
    SimsearchError,
    StoreBusyError,
    TextTruncatedWarning,
)
from simsearch.multivector import MultiVector
from simsearch.types import Hit, Item, Metric, Results

if TYPE_CHECKING:
    from simsearch.client import Client, RemoteCollection
    from simsearch.distributed import ShardedCollection

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The HTTP client loads httpx; import it only when it is asked for.
    if name in ("Client", "RemoteCollection"):
        from simsearch import client

        return getattr(client, name)
    # Sharded collections run on Ray (the ``ray`` extra); the package imports Ray only
    # when a sharded collection is opened.
    if name == "ShardedCollection":
        from simsearch.distributed import ShardedCollection

        return ShardedCollection
    raise AttributeError(f"module 'simsearch' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ENCODER",
    "HNSW",
    "IVFPQ",
    "AuthenticationError",
    "CheckReport",
    "Client",
    "Collection",
    "CollectionClosedError",
    "CollectionConfig",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigMismatchError",
    "CorruptCollectionError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "Encoder",
    "EncoderSpec",
    "Flat",
    "Hit",
    "InvalidArgumentError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidTextError",
    "InvalidVectorError",
    "Item",
    "ItemNotFoundError",
    "Metric",
    "MissingDependencyError",
    "MultiVector",
    "NotACollectionError",
    "NotCalibratedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RemoteCollection",
    "Results",
    "ServerUnavailableError",
    "ShardUnavailableError",
    "ShardedCollection",
    "SimsearchError",
    "StoreBusyError",
    "TextTruncatedWarning",
    "__version__",
    "available_encoders",
    "check_collection",
    "get_encoder",
    "list_collections",
    "register_encoder",
]
