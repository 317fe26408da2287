"""The saved configuration of a collection.

It is written beside the data the first time it is known and never edited in
place: a change (the dimension fixed by the first write, the encoder bound by
the first text) produces a new frozen object that is saved in the same
transaction as the write that caused it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from simsearch.errors import NotACollectionError
from simsearch.types import Metric

__all__ = ["FORMAT_VERSION", "CollectionConfig", "EncoderSpec"]

#: Bumped whenever the on-disk layout changes incompatibly.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder made a collection's vectors: its registry name, version and dimension."""

    name: str
    version: str
    dim: int


@dataclass(frozen=True)
class CollectionConfig:
    """Metric, dimension and encoder of one collection.

    ``dim`` is ``None`` until the first vectors fix it; ``encoder`` is ``None``
    for a collection that has only ever been given vectors.

    >>> c = CollectionConfig(metric=Metric.COSINE, dim=3)
    >>> CollectionConfig.from_json(c.to_json()) == c
    True
    """

    metric: Metric
    dim: int | None = None
    encoder: EncoderSpec | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["metric"] = self.metric.value
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CollectionConfig:
        try:
            data = json.loads(text)
            encoder = data.get("encoder")
            config = CollectionConfig(
                metric=Metric.parse(data["metric"]),
                dim=data.get("dim"),
                encoder=EncoderSpec(**encoder) if encoder else None,
                format_version=int(data["format_version"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise NotACollectionError(f"the saved collection config is unreadable: {exc}") from None
        if config.format_version > FORMAT_VERSION:
            raise NotACollectionError(
                f"the collection was written by a newer simsearch (format {config.format_version}, "
                f"this one reads up to {FORMAT_VERSION}); upgrade simsearch"
            )
        return config
