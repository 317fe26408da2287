"""API keys: who may read, write or manage which collections.

The key file is JSON::

    {"keys": [
      {"name": "ops",    "key": "…", "admin": true},
      {"name": "webapp", "key": "…", "collections": {"docs": "write", "faq": "read"}},
      {"name": "viewer", "key": "…", "collections": {"*": "read"}}
    ]}

An admin key manages collections (create, delete) and may read and write all
of them. ``write`` implies ``read``; ``"*"`` stands for every collection.
Keys are compared in constant time through their SHA-256 digests and never
logged or echoed. The file is checked strictly when the server starts: ``admin``
must be a JSON boolean, ``name`` a string, ``key`` a string of 8 characters or
more, ``collections`` an object of collection names (or ``"*"``) to ``"read"`` or
``"write"``; an unknown field, a repeated name or a repeated secret is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from simsearch.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError
from simsearch.server.schemas import NAME_CHARS

LOG = logging.getLogger("simsearch.server")

__all__ = ["ApiKey", "KeyRing", "Right"]


class Right(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One key's name and scopes (the secret itself is kept only as a digest)."""

    name: str
    digest: bytes = field(repr=False)
    admin: bool = False
    collections: dict[str, Right] = field(default_factory=dict)

    def right_on(self, collection: str) -> Right | None:
        if self.admin:
            return Right.ADMIN
        return self.collections.get(collection, self.collections.get("*"))

    def require(self, collection: str | None, right: Right) -> None:
        """Raise :class:`PermissionDeniedError` unless this key holds ``right``."""
        if collection is None:
            if right is Right.ADMIN and not self.admin:
                raise PermissionDeniedError(f"key {self.name!r} is not an admin key")
            return
        held = self.right_on(collection)
        if held is None or held < right:
            raise PermissionDeniedError(
                f"key {self.name!r} may not {right.name.lower()} collection {collection!r}"
            )


class KeyRing:
    """The server's API keys."""

    def __init__(self, keys: list[ApiKey]) -> None:
        if not keys:
            raise InvalidArgumentError("the key file holds no keys")
        self._keys = keys

    @staticmethod
    def from_dict(data: Any) -> KeyRing:
        """Keys from the parsed key file, checked strictly: a typo (``"admin": "false"``, an
        unknown field) must fail loudly at startup rather than grant or drop a right."""
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise InvalidArgumentError('the key file must be a JSON object {"keys": [...]}')
        for field_name in data:
            if field_name != "keys":
                raise InvalidArgumentError(
                    f"the key file has an unknown field {_show(field_name)}; it holds only 'keys'"
                )
        keys: list[ApiKey] = []
        names: set[str] = set()
        for i, entry in enumerate(data["keys"]):
            key = _parse_entry(i, entry)
            if key.name in names:
                raise InvalidArgumentError(
                    f"keys[{i}]: the name {_show(key.name)} is used by another key"
                )
            if any(hmac.compare_digest(key.digest, other.digest) for other in keys):
                raise InvalidArgumentError(
                    f"keys[{i}] ({_show(key.name)}): the same secret is given to another key"
                )
            names.add(key.name)
            keys.append(key)
        return KeyRing(keys)

    @staticmethod
    def from_file(path: str | Path) -> KeyRing:
        try:
            text = Path(path).read_text(encoding="utf-8")
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the key file {path}: {exc.strerror}") from None
        try:
            data = json.loads(text, object_pairs_hook=_unique_fields)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(
                f"the key file {path} is not valid JSON: {exc.msg}"
            ) from None
        ring = KeyRing.from_dict(data)
        if os.name == "posix" and mode & 0o077:
            LOG.warning(
                "the key file %s can be read by other users of this machine (mode %o): "
                "chmod 600 %s",
                path,
                mode & 0o777,
                path,
            )
        return ring

    def authenticate(self, presented: str | None) -> ApiKey:
        """The key matching ``presented``; every stored key is compared, match or not."""
        if not presented:
            raise AuthenticationError("an API key is required (Authorization: Bearer KEY)")
        digest = _digest(presented)
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise AuthenticationError("the API key is not valid")
        return found


_FIELDS = ("name", "key", "admin", "collections")
_RIGHTS = {"read": Right.READ, "write": Right.WRITE}
#: A scope names a collection the way the server does, or ``"*"`` for all of them.
_SCOPE_NAME = re.compile(rf"\*|{NAME_CHARS}")


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of the key file, refused if it names a field twice: JSON parsers keep
    the last one, so ``"admin": false, "admin": true`` would read as false to a person and
    grant admin to the server."""
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise InvalidArgumentError(
                f"the key file names the field {_show(name)} twice in one object; give it once"
            )
        seen[name] = value
    return seen


def _show(value: object) -> str:
    """A value for an error message, cut short so a huge or odd field cannot flood the log."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_entry(i: int, entry: Any) -> ApiKey:
    where = f"keys[{i}]"
    if not isinstance(entry, dict):
        raise InvalidArgumentError(f"{where} must be an object")
    name = entry.get("name", f"key-{i}")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{where}.name must be a non-empty string")
    where = f"{where} ({_show(name)})"
    for field_name in entry:
        if field_name not in _FIELDS:
            raise InvalidArgumentError(
                f"{where} has an unknown field {_show(field_name)}; a key has {', '.join(_FIELDS)}"
            )
    secret = entry.get("key")
    if not isinstance(secret, str) or len(secret) < 8:
        raise InvalidArgumentError(f"{where}.key must be a string of 8 characters or more")
    if not (secret.isascii() and secret.isprintable()) or secret != secret.strip():
        # An HTTP header carries the key: other characters or spaces at its ends never
        # arrive as written, so such a key could never be used.
        raise InvalidArgumentError(
            f"{where}.key must be printable ASCII with no space at either end"
        )
    admin = entry.get("admin", False)
    if not isinstance(admin, bool):
        # bool("false") is True: only a JSON true or false says what was meant.
        raise InvalidArgumentError(f"{where}.admin must be true or false, not {_show(admin)}")
    scopes = entry.get("collections", {})
    if not isinstance(scopes, dict):
        raise InvalidArgumentError(f"{where}.collections must map names to 'read' or 'write'")
    rights: dict[str, Right] = {}
    for collection, right in scopes.items():
        if not _SCOPE_NAME.fullmatch(collection):
            raise InvalidArgumentError(
                f"{where}.collections names {_show(collection)}, which is not a collection "
                "name (1-64 letters, digits, '_', '-' or '.') nor '*'"
            )
        if not isinstance(right, str) or right not in _RIGHTS:
            raise InvalidArgumentError(
                f"{where}.collections.{collection} is {_show(right)}; use 'read' or 'write'"
            )
        rights[collection] = _RIGHTS[right]
    return ApiKey(name, _digest(secret), admin, rights)
