"""Secrets at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256) before they are stored.

The key comes from ``Settings.secrets_key`` (``PAUSEPOINT_SECRETS_KEY``) or, when
that is unset, from a key file created once beside the SQLite database with
mode 0600. Whoever can read the key can read the secrets: keep it apart from
database backups.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from pausepoint.errors import PausepointError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A key of its own for ``purpose`` (signing links, say), from the same secret."""
        return hmac.new(self._key, f"pausepoint:{purpose}".encode(), hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, configured: str | None, key_file: Path) -> SecretBox:
        if configured:
            return cls(configured.encode())
        if key_file.exists():
            return cls(key_file.read_bytes().strip())
        key = Fernet.generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return cls(key)

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise PausepointError(
                "a stored secret cannot be decrypted with this server's secrets key"
            ) from None
