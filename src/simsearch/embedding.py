"""Texts into the space a collection's index holds: its encoder, or during a model upgrade
the old encoder, the new one's mapped vectors, or a blend of the two.

:class:`Embedder` keeps the collection's encoder (the one given at open, the
saved one, or the default) and embeds passages for writes and queries for
searches. During an upgrade to a new encoder (a
:class:`~simsearch.upgrade.compat.Migration`), a passage gets its exact
old-space vector from the old encoder and its new vector for the backfill to
keep, and a query is the old encoder's vector blended with the new encoder's
mapped one (``migration.blend``). Where the old encoder cannot be loaded here,
the mapped vectors stand in for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np

from simsearch.config import CollectionConfig, EncoderSpec
from simsearch.encoders import (
    DEFAULT_ENCODER,
    Encoder,
    ProgressCallback,
    TokenEncoder,
    get_encoder,
)
from simsearch.encoders.text_tokens import TOKEN_ENCODER
from simsearch.errors import (
    ConfigMismatchError,
    DimensionMismatchError,
    InvalidArgumentError,
    MissingDependencyError,
)
from simsearch.index.flat import normalize
from simsearch.types import FloatArray
from simsearch.upgrade.compat import Migration, migration_encoder

__all__ = [
    "AUTO_PROGRESS_MIN",
    "Embedder",
    "Progress",
    "check_compatible",
    "resolve_encoder",
    "spec",
]

Progress = bool | ProgressCallback
T = TypeVar("T")
#: Show a bar on its own (progress=None) when embedding at least this many texts.
AUTO_PROGRESS_MIN = 256


def resolve_encoder(encoder: str | Encoder | None) -> Encoder | None:
    """The encoder named or given, checked; ``None`` stays ``None``."""
    if encoder is None:
        return None
    if isinstance(encoder, str):
        return get_encoder(encoder)
    if not isinstance(encoder, Encoder):
        raise InvalidArgumentError(
            "encoder must be a registered name or an object with name, version, dim and encode()"
        )
    return encoder


def spec(encoder: Encoder) -> EncoderSpec:
    return EncoderSpec(name=encoder.name, version=encoder.version, dim=int(encoder.dim))


def check_compatible(config: CollectionConfig, encoder_spec: EncoderSpec) -> None:
    """Raise unless vectors from ``encoder_spec`` may live in a collection with ``config``."""
    if config.encoder is not None and config.encoder != encoder_spec:
        raise ConfigMismatchError(
            f"the collection was embedded with {config.encoder.name} "
            f"(version {config.encoder.version}, {config.encoder.dim}-d); it cannot take "
            f"{encoder_spec.name} (version {encoder_spec.version}, {encoder_spec.dim}-d)"
        )
    dim = config.token_dim
    if dim is not None and dim != encoder_spec.dim and config.encoder is None:
        raise DimensionMismatchError(
            f"the collection holds {dim}-d vectors of your own and has no encoder; texts "
            f"would be embedded by {encoder_spec.name}, which makes {encoder_spec.dim}-d "
            f"ones: pass vectors, or open the collection with a {dim}-d encoder (encoder=)"
        )
    if dim is not None and dim != encoder_spec.dim:
        raise DimensionMismatchError(
            f"the collection holds {dim}-d vectors but encoder {encoder_spec.name} "
            f"makes {encoder_spec.dim}-d ones; pass vectors, or use a {dim}-d encoder"
        )


def blend(old: FloatArray, mapped: FloatArray, weight: float) -> FloatArray:
    """Row-wise ``(1 - weight) * old + weight * mapped`` of unit vectors, at the old norm."""
    old_norm = np.linalg.norm(old, axis=1, keepdims=True)
    mix = (1.0 - weight) * normalize(old) + weight * normalize(mapped)
    mix_norm = np.maximum(np.linalg.norm(mix, axis=1, keepdims=True), 1e-12)
    return np.asarray(mix * (old_norm / mix_norm), dtype=np.float32)


def encode(
    encoder: Encoder,
    texts: list[str],
    kind: Literal["query", "passage"],
    progress: Progress | None,
) -> FloatArray:
    """``encoder`` over ``texts``, with a bar for large batches (``progress=None``), a bar
    or none as asked, or a callback."""
    return with_progress(
        len(texts), encoder.name, progress, lambda p: encoder.encode(texts, kind=kind, progress=p)
    )


def encode_sets(
    encoder: TokenEncoder,
    texts: list[str],
    kind: Literal["query", "passage"],
    progress: Progress | None,
) -> list[FloatArray]:
    """``encoder``'s token sets of ``texts``, with a bar or callback as :func:`encode`'s."""
    return with_progress(
        len(texts),
        encoder.name,
        progress,
        lambda p: encoder.encode_tokens(texts, kind=kind, progress=p),
    )


def with_progress(
    n: int, name: str, progress: Progress | None, run: Callable[[ProgressCallback | None], T]
) -> T:
    """``run(callback)`` over ``n`` texts: a bar for large batches (``progress=None``), a
    bar or none as asked, or the caller's callback."""
    show = progress if progress is not None else n >= AUTO_PROGRESS_MIN
    if callable(show):
        return run(show)
    if show:
        from simsearch.progress import progress_bar  # rich loads only when a bar is drawn

        with progress_bar(n, f"Embedding with {name}") as advance:
            return run(advance)
    return run(None)


class Embedder:
    """A collection's way from texts to vectors (see the module docs)."""

    def __init__(self, encoder: Encoder | None) -> None:
        self._encoder = encoder

    def text_encoder(self, config: CollectionConfig) -> Encoder:
        """The encoder for texts: the one given, the saved one, or the default."""
        saved = config.encoder
        if self._encoder is not None and saved is not None and spec(self._encoder) != saved:
            self._encoder = None  # a model upgrade has finished since: follow the saved encoder
        if self._encoder is None:
            default = TOKEN_ENCODER if config.multivector is not None else DEFAULT_ENCODER
            encoder = get_encoder(saved.name if saved else default)
            check_compatible(config, spec(encoder))
            self._encoder = encoder
        return self._encoder

    def token_encoder(self, config: CollectionConfig) -> TokenEncoder:
        """The encoder of texts into token sets, for a multi-vector collection."""
        encoder = self.text_encoder(config)
        if not isinstance(encoder, TokenEncoder):
            raise InvalidArgumentError(
                f"encoder {encoder.name} makes one vector per text; a multi-vector collection "
                f"needs a token encoder such as {TOKEN_ENCODER!r}"
            )
        return encoder

    def forget(self) -> None:
        """Follow the saved encoder from now on (a model upgrade finished)."""
        self._encoder = None

    def old_encoder(self, config: CollectionConfig) -> Encoder | None:
        """The collection's own encoder during a model upgrade, or None where it cannot be
        loaded here (an encoder from a missing extra, or one no longer registered)."""
        try:
            return self.text_encoder(config)
        except (InvalidArgumentError, MissingDependencyError, ConfigMismatchError):
            return None

    def embed(
        self,
        config: CollectionConfig,
        migration: Migration | None,
        texts: list[str],
        kind: Literal["query", "passage"],
        progress: Progress | None,
    ) -> tuple[FloatArray, FloatArray | None]:
        """``texts`` in the space the index holds, and, during an upgrade to a new encoder
        (``migration``), the new encoder's vectors too, for the backfill to keep."""
        if migration is None or migration.to is None:
            # No upgrade, or one from the user's vectors: the collection's encoder still
            # embeds into the space the index holds.
            encoder = self.text_encoder(config)
            check_compatible(config, spec(encoder))
            return encode(encoder, texts, kind, progress), None
        new_encoder = migration_encoder(migration)
        old_encoder = self.old_encoder(config)
        if old_encoder is not None and kind == "query" and migration.blend <= 0.0:
            return encode(old_encoder, texts, kind, progress), None
        fresh = encode(new_encoder, texts, kind, progress)
        if old_encoder is None or (kind == "query" and migration.blend >= 1.0):
            return migration.mapping(fresh), fresh
        old = encode(old_encoder, texts, kind, progress)
        if kind == "passage":
            return old, fresh
        return blend(old, migration.mapping(fresh), migration.blend), fresh
