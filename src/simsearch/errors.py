"""Every error simsearch raises, in one hierarchy.

Each class also inherits the builtin exception a Python user would expect
(``ValueError``, ``KeyError``...), so ``except ValueError`` keeps working, and
carries the HTTP status and a stable ``code`` so a server can serialise any of
them in one handler and a client can rebuild the same class from the code.

::

    SimsearchError
    ├── InvalidInputError (ValueError, 400)
    │   ├── InvalidVectorError        NaN/inf, ragged, empty, wrong ndim
    │   ├── DimensionMismatchError    vector length differs from the collection's
    │   ├── InvalidIdError            empty, non-string, duplicated inside one batch
    │   ├── InvalidMetadataError      not a JSON object, not JSON-serialisable
    │   ├── InvalidTextError          texts that are not strings
    │   ├── InvalidFilterError        malformed ``where`` filter, unknown operator
    │   └── InvalidArgumentError      unknown option value, bad ``k``, length mismatch
    ├── DuplicateIdError (ValueError, 409)   ``add`` of an id that already exists
    ├── ItemNotFoundError (KeyError, 404)    ``get`` of an id that does not exist
    ├── NotACollectionError (ValueError, 400) a path that holds something else
    │   └── CollectionNotFoundError (404)   no collection of that name (server)
    ├── CollectionExistsError (ValueError, 409) creating a name that is taken (server)
    ├── ConfigMismatchError (ValueError, 409) reopening with another metric/encoder/dim
    ├── CollectionClosedError (RuntimeError, 409)
    ├── StoreBusyError (RuntimeError, 503)   the database stayed locked too long
    ├── ShardUnavailableError (ConnectionError, 503) a shard of a sharded collection is down
    ├── CorruptCollectionError (RuntimeError, 500) stored data that fails simsearch's checks
    ├── AuthenticationError (PermissionError, 401) no API key, or an unknown one
    ├── PermissionDeniedError (PermissionError, 403) a key without the right scope
    ├── PayloadTooLargeError (ValueError, 413) a request body over the server's limit
    ├── MissingDependencyError (ImportError, 501) an optional extra is not installed
    └── ServerUnavailableError (ConnectionError, 503) the client cannot reach the server

Warnings: ``TextTruncatedWarning`` (a ``UserWarning``) when a text is longer than
the encoder's token limit and only its start is embedded.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CollectionClosedError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigMismatchError",
    "CorruptCollectionError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "InvalidArgumentError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidTextError",
    "InvalidVectorError",
    "ItemNotFoundError",
    "MissingDependencyError",
    "NotACollectionError",
    "NotCalibratedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ServerUnavailableError",
    "ShardUnavailableError",
    "SimsearchError",
    "StoreBusyError",
    "TextTruncatedWarning",
    "error_class_for_code",
]


class SimsearchError(Exception):
    """Base class of every simsearch error.

    Attributes:
        http_status: the HTTP status a server answers with.
        code: a stable machine-readable name, unique per class.
    """

    http_status: int = 500
    code: str = "simsearch_error"

    def __str__(self) -> str:
        # KeyError's own __str__ quotes its argument; every simsearch error reads as a sentence.
        return str(self.args[0]) if self.args else self.code


class InvalidInputError(SimsearchError, ValueError):
    """The input cannot be accepted as given; nothing was written."""

    http_status = 400
    code = "invalid_input"


class InvalidVectorError(InvalidInputError):
    """Vectors that are empty, ragged, of the wrong shape or hold NaN/inf."""

    code = "invalid_vector"


class DimensionMismatchError(InvalidInputError):
    """Vectors whose length differs from the collection's dimension."""

    code = "dimension_mismatch"


class InvalidIdError(InvalidInputError):
    """Ids that are empty, not strings, or repeated inside one batch."""

    code = "invalid_id"


class InvalidMetadataError(InvalidInputError):
    """Metadata that is not a JSON object of JSON-serialisable values."""

    code = "invalid_metadata"


class InvalidTextError(InvalidInputError):
    """Texts that are not strings."""

    code = "invalid_text"


class InvalidFilterError(InvalidInputError):
    """A ``where`` filter that is malformed or uses an unknown operator."""

    code = "invalid_filter"


class InvalidArgumentError(InvalidInputError):
    """An option with a value outside its valid set, or arguments that disagree."""

    code = "invalid_argument"


class NotCalibratedError(SimsearchError, ValueError):
    """Relevance was asked of a collection that has not been calibrated."""

    http_status = 409
    code = "not_calibrated"


class DuplicateIdError(SimsearchError, ValueError):
    """``add`` was given an id that the collection already holds."""

    http_status = 409
    code = "duplicate_id"


class ItemNotFoundError(SimsearchError, KeyError):
    """An id that the collection does not hold."""

    http_status = 404
    code = "item_not_found"


class NotACollectionError(SimsearchError, ValueError):
    """A path that exists but is not a simsearch collection."""

    http_status = 400
    code = "not_a_collection"


class CollectionNotFoundError(NotACollectionError):
    """No collection of that name exists."""

    http_status = 404
    code = "collection_not_found"


class CollectionExistsError(SimsearchError, ValueError):
    """A collection of that name exists already."""

    http_status = 409
    code = "collection_exists"


class AuthenticationError(SimsearchError, PermissionError):
    """The request carries no API key, or one the server does not know."""

    http_status = 401
    code = "unauthenticated"


class PermissionDeniedError(SimsearchError, PermissionError):
    """The API key is valid but not scoped for this collection or action."""

    http_status = 403
    code = "permission_denied"


class PayloadTooLargeError(SimsearchError, ValueError):
    """The request body is larger than the server accepts."""

    http_status = 413
    code = "payload_too_large"


class ConfigMismatchError(SimsearchError, ValueError):
    """A collection reopened with a metric, dimension or encoder other than its own."""

    http_status = 409
    code = "config_mismatch"


class CollectionClosedError(SimsearchError, RuntimeError):
    """An operation on a collection after ``close()``."""

    http_status = 409
    code = "collection_closed"


class StoreBusyError(SimsearchError, RuntimeError):
    """The database stayed locked by another writer for longer than the busy timeout."""

    http_status = 503
    code = "store_busy"


class ShardUnavailableError(SimsearchError, ConnectionError):
    """A shard of a sharded collection did not answer in time (its actor is down or
    restarting); ``shards`` names the shard numbers, as the message does."""

    http_status = 503
    code = "shard_unavailable"

    def __init__(self, message: str, shards: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.shards = shards


class CorruptCollectionError(SimsearchError, RuntimeError):
    """Stored data that fails simsearch's checks (a damaged file or row); the message names
    the collection and, where one is to blame, the row. ``simsearch check`` reports more."""

    http_status = 500
    code = "collection_corrupt"


class MissingDependencyError(SimsearchError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    http_status = 501
    code = "missing_dependency"


class ServerUnavailableError(SimsearchError, ConnectionError):
    """The client could not connect to the server, or it did not answer in time."""

    http_status = 503
    code = "server_unavailable"


class TextTruncatedWarning(UserWarning):
    """Texts longer than the encoder's token limit were cut: only their start is embedded.

    ``cut`` says how many of the call's ``total`` texts were cut, so a caller that embeds
    in batches can report them once; ``first`` is the position of the first of them among
    the call's texts (``None`` when not known).
    """

    def __init__(
        self, message: str, *, cut: int = 0, total: int = 0, first: int | None = None
    ) -> None:
        super().__init__(message)
        self.cut = cut
        self.total = total
        self.first = first


def _all_subclasses(cls: type[SimsearchError]) -> list[type[SimsearchError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_class_for_code(code: str) -> type[SimsearchError]:
    """The error class whose ``code`` is ``code`` (``SimsearchError`` if none is).

    >>> error_class_for_code("duplicate_id").__name__
    'DuplicateIdError'
    """
    for cls in _all_subclasses(SimsearchError):
        if cls.code == code:
            return cls
    return SimsearchError
