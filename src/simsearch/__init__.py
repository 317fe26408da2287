"""simsearch: embedding similarity search for Python.

Durable collections of items (id, vector, text, metadata) kept in SQLite,
exact search with metadata filters, and a default text encoder that runs on
onnxruntime. Start with :meth:`Collection.open`.

>>> import simsearch
>>> sorted(simsearch.Metric.__members__)
['COSINE', 'DOT', 'L2']
"""

from __future__ import annotations

from simsearch._collection import Collection
from simsearch.config import CollectionConfig, EncoderSpec
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
    PayloadTooLargeError,
    PermissionDeniedError,
    SimsearchError,
    StoreBusyError,
)
from simsearch.types import Hit, Item, Metric, Results

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENCODER",
    "AuthenticationError",
    "Client",
    "Collection",
    "CollectionClosedError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "CollectionConfig",
    "ConfigMismatchError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "Encoder",
    "EncoderSpec",
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
    "NotACollectionError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RemoteCollection",
    "Results",
    "SimsearchError",
    "StoreBusyError",
    "__version__",
    "available_encoders",
    "get_encoder",
    "register_encoder",
]
