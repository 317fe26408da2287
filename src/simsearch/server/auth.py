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
logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from simsearch.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError

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
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise InvalidArgumentError('the key file must be a JSON object {"keys": [...]}')
        keys = []
        for i, entry in enumerate(data["keys"]):
            where = f"keys[{i}]"
            if not isinstance(entry, dict):
                raise InvalidArgumentError(f"{where} must be an object")
            secret, name = entry.get("key"), entry.get("name", f"key-{i}")
            if not isinstance(secret, str) or len(secret) < 8:
                raise InvalidArgumentError(f"{where}.key must be a string of 8 characters or more")
            scopes = entry.get("collections", {})
            if not isinstance(scopes, dict):
                raise InvalidArgumentError(f"{where}.collections must map names to read/write")
            rights: dict[str, Right] = {}
            for collection, right in scopes.items():
                if right not in ("read", "write"):
                    raise InvalidArgumentError(
                        f"{where}.collections.{collection} is {right!r}; use 'read' or 'write'"
                    )
                rights[collection] = Right.READ if right == "read" else Right.WRITE
            keys.append(ApiKey(str(name), _digest(secret), bool(entry.get("admin")), rights))
        return KeyRing(keys)

    @staticmethod
    def from_file(path: str | Path) -> KeyRing:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the key file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(
                f"the key file {path} is not valid JSON: {exc.msg}"
            ) from None
        return KeyRing.from_dict(data)

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
