"""Result files behind signed, expiring URLs: the single-node blob store (files in the data dir).

A stored name embeds its expiry time, and the URL carries an HMAC-SHA256 of the name, so neither can
be changed without the server's secret. Expired files are refused and swept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(?P<expires>\d{10,12})-(?P<id>[0-9a-f]{32})\.(?P<ext>png|jpeg|webp)$")


class BlobRefused(Exception):
    """The name or signature is wrong, or the file has expired: the URL must not be served."""


@dataclass(frozen=True)
class StoredBlob:
    name: str
    signature: str
    expires_at: int


def load_or_create_secret(path: Path) -> bytes:
    """The signing key lives beside the data, readable by the owner only, and survives restarts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex())
        return key


class LocalBlobStore:
    def __init__(self, folder: Path, secret: bytes, ttl_seconds: int) -> None:
        self.folder = folder
        self.ttl_seconds = ttl_seconds
        self._secret = secret
        folder.mkdir(parents=True, exist_ok=True)

    def sign(self, name: str) -> str:
        return hmac.new(self._secret, name.encode(), hashlib.sha256).hexdigest()

    def put(self, data: bytes, extension: str, ttl_seconds: int | None = None) -> StoredBlob:
        expires_at = int(time.time()) + (ttl_seconds or self.ttl_seconds)
        name = f"{expires_at}-{uuid.uuid4().hex}.{extension}"
        self.folder.mkdir(parents=True, exist_ok=True)  # recreated if someone removed it while we run
        temporary = self.folder / f".{name}.partial"
        temporary.write_bytes(data)
        temporary.replace(self.folder / name)
        return StoredBlob(name=name, signature=self.sign(name), expires_at=expires_at)

    def open_path(self, name: str, signature: str, now: float | None = None) -> Path:
        """The file behind a URL, after checking the name's form, its signature and its expiry."""
        match = _NAME.match(name)
        if not match or not hmac.compare_digest(self.sign(name), signature):
            raise BlobRefused("bad name or signature")
        if int(match["expires"]) <= (time.time() if now is None else now):
            raise BlobRefused("expired")
        path = self.folder / name
        if not path.is_file():
            raise BlobRefused("gone")
        return path

    def sweep(self, now: float | None = None) -> int:
        """Deletes expired results; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        if not self.folder.is_dir():
            return 0
        for path in self.folder.iterdir():
            match = _NAME.match(path.name)
            if match and int(match["expires"]) <= now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
