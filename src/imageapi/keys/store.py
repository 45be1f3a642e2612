"""API keys kept in SQLite in the data dir: only a SHA-256 of each key is stored, with a short prefix for
display. A key is shown once, when it is created.

Lookup is by hash, so finding a key takes the same time whatever the presented bytes share with a real key
(an attacker learns nothing from timing short of a SHA-256 preimage). WAL mode lets the CLI create or
revoke keys while the server reads them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "sk-imageapi-"
DISPLAY_CHARS = len(KEY_PREFIX) + 6
DB_NAME = "keys.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    images_per_minute INTEGER,
    requests_per_minute INTEGER,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


class KeyNotFound(LookupError):
    """No key, or more than one, matches the id or prefix given."""


@dataclass(frozen=True)
class StoredKey:
    id: str  # non-secret, stable: "key_" + the first 16 hex digits of the hash
    prefix: str  # the key's first characters, for telling keys apart in lists
    key_hash: str
    name: str | None
    images_per_minute: int | None  # None: the server's default
    requests_per_minute: int | None
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_for_hash(key_hash: str) -> str:
    return "key_" + key_hash[:16]


class KeyStore:
    """Every method is blocking (SQLite): call from a thread when on the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / DB_NAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # hashes only, but still nobody else's business: owner-only, like the URL key
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        connection = sqlite3.connect(self.path, timeout=5.0)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            with connection:
                yield connection
        finally:
            connection.close()

    def create(self, name: str | None = None, images_per_minute: int | None = None,
               requests_per_minute: int | None = None) -> tuple[StoredKey, str]:
        """A new key: the record, and the secret itself (not kept anywhere)."""
        for limit in (images_per_minute, requests_per_minute):
            if limit is not None and limit < 1:
                raise ValueError("limits must be at least 1")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_hash = hash_key(secret)
        record = StoredKey(id=key_id_for_hash(key_hash), prefix=secret[:DISPLAY_CHARS], key_hash=key_hash,
                           name=name, images_per_minute=images_per_minute,
                           requests_per_minute=requests_per_minute, created_at=time.time(), revoked_at=None)
        with self._connect() as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (record.id, record.prefix, record.key_hash, record.name, record.images_per_minute,
                        record.requests_per_minute, record.created_at, record.revoked_at))
        return record, secret

    def list(self) -> list[StoredKey]:
        """Every key ever created, revoked ones included, oldest first."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT * FROM api_keys ORDER BY created_at").fetchall()
        return [StoredKey(*row) for row in rows]

    def revoke(self, id_or_prefix: str) -> StoredKey:
        """Revokes the one key whose id is, or whose prefix starts with, the text given."""
        if not id_or_prefix:
            raise KeyNotFound("give a key id or prefix")
        matches = [key for key in self.list()
                   if key.id == id_or_prefix or (key.prefix.startswith(id_or_prefix) and len(id_or_prefix) >= 8)]
        if len(matches) != 1:
            raise KeyNotFound(f"{len(matches)} keys match {id_or_prefix!r}; give the key id (key_...)")
        key = matches[0]
        if key.revoked_at is not None:
            return key
        revoked_at = time.time()
        with self._connect() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (revoked_at, key.id))
        return StoredKey(**{**key.__dict__, "revoked_at": revoked_at})

    def snapshot(self) -> tuple[dict[str, StoredKey], bool]:
        """(active keys by hash, whether any key was ever created): what the authenticator caches."""
        keys = self.list()
        return {key.key_hash: key for key in keys if key.active}, bool(keys)
