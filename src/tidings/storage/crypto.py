"""Channel secrets are encrypted at rest with a key derived from TIDINGS_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        # HKDF would be the textbook choice; a domain-separated SHA-256 of a high-entropy
        # secret is equivalent here and keeps the key stable across versions.
        digest = hashlib.sha256(b"tidings/secretbox/v1\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, value: dict[str, Any] | str) -> str:
        raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
        return self._fernet.encrypt(raw).decode()

    def decrypt_json(self, token: str) -> dict[str, Any]:
        data = orjson.loads(self._decrypt(token))
        if not isinstance(data, dict):
            raise ValueError("encrypted value is not an object")
        return data

    def decrypt_str(self, token: str) -> str:
        return self._decrypt(token).decode()

    def _decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: TIDINGS_SECRET_KEY changed?") from exc
