"""The refusal of work that needs one vector per item, on a collection of sets."""

from __future__ import annotations

from simsearch.config import CollectionConfig
from simsearch.errors import InvalidArgumentError

__all__ = ["refuse_multivector"]


def refuse_multivector(config: CollectionConfig, what: str) -> None:
    """Raise where ``what`` works on one vector per item and the collection holds sets."""
    if config.multivector is not None:
        raise InvalidArgumentError(
            f"{what} works on collections of one vector per item; this one holds sets of "
            "vectors (multivector=True)"
        )
