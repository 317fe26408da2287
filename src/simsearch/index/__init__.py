"""Vector indexes: derived, rebuildable views of the store that answer top-k queries."""

from simsearch.index import flat
from simsearch.index.base import VectorIndex, index_factory, register_index
from simsearch.index.flat import FlatIndex

__all__ = ["FlatIndex", "VectorIndex", "flat", "index_factory", "register_index"]
