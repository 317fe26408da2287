"""The encoder protocol and the registry that names encoders.

An encoder turns texts into float32 vectors. Collections save an encoder's
``name``, ``version`` and ``dim`` and refuse to reopen with another, so vectors
from different models are never mixed silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

from simsearch.errors import InvalidArgumentError, MissingDependencyError
from simsearch.types import FloatArray

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "ProgressCallback",
    "TextKind",
    "TokenEncoder",
    "available_encoders",
    "get_encoder",
    "register_encoder",
    "require",
]

#: Called with the number of texts just finished.
ProgressCallback = Callable[[int], None]
#: Some models embed queries and passages differently (E5's prefixes); most ignore it.
TextKind = Literal["query", "passage"]

DEFAULT_ENCODER = "minilm-l6-v2-int8"


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts: a registry name, a version and a fixed dimension."""

    name: str
    version: str
    dim: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> FloatArray:
        """Embed ``texts`` into a ``(len(texts), dim)`` float32 array."""
        ...


@runtime_checkable
class TokenEncoder(Encoder, Protocol):
    """An encoder that also embeds each text as a set of token vectors (for multi-vector
    collections, scored by MaxSim); ``dim`` is the dimension of one token vector."""

    def encode_tokens(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "passage",
        progress: ProgressCallback | None = None,
    ) -> list[FloatArray]:
        """One ``(n_tokens, dim)`` float32 array per text."""
        ...


EncoderFactory = Callable[[], Encoder]
_REGISTRY: dict[str, EncoderFactory] = {}
_INSTANCES: dict[str, Encoder] = {}


def register_encoder(name: str, factory: EncoderFactory) -> None:
    """Make an encoder available under ``name``; ``factory`` runs on first use."""
    _REGISTRY[name] = factory
    _INSTANCES.pop(name, None)


def available_encoders() -> list[str]:
    """Names of the registered encoders.

    >>> "minilm-l6-v2-int8" in available_encoders()
    True
    """
    return sorted(_REGISTRY)


def get_encoder(name: str) -> Encoder:
    """The encoder registered under ``name``, built once and then shared."""
    if name not in _REGISTRY:
        valid = ", ".join(available_encoders())
        raise InvalidArgumentError(f"unknown encoder {name!r}; registered encoders are: {valid}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


def require(module: str, extra: str) -> object:
    """Import an optional dependency, or raise an error naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install 'simsearch[{extra}]'"
        ) from None
