"""Encoders turn items into vectors; each is registered under a name.

Importing this package registers the built-in encoders without loading any
model or runtime: those load when an encoder is first used.
"""

from simsearch.encoders import text_onnx, text_small, text_st, text_tokens
from simsearch.encoders.base import (
    DEFAULT_ENCODER,
    Encoder,
    ProgressCallback,
    TextKind,
    TokenEncoder,
    available_encoders,
    get_encoder,
    register_encoder,
)

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "ProgressCallback",
    "TextKind",
    "TokenEncoder",
    "available_encoders",
    "get_encoder",
    "register_encoder",
    "text_onnx",
    "text_small",
    "text_st",
    "text_tokens",
]
