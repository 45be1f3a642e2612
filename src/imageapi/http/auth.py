"""Bearer-key authentication. Two sources of keys: those given by flag or environment (compared with
hmac.compare_digest, no early exit) and those in the key store (looked up by SHA-256, so constant-time by
construction). With no key anywhere, every request is let in (the CLI allows that only on loopback unless
told otherwise).

Store keys are cached in memory: the cache is reloaded (in a thread, never on the event loop) when it is
older than `refresh_s` (2 s), and at most every `miss_refresh_s` (0.25 s) when an unknown key is presented, so
a key created by `imageapi keys create` works on its first request and a revoked key stops working within
~2 seconds.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from imageapi.errors import InvalidToken
from imageapi.keys.store import KeyStore, StoredKey, hash_key, key_id_for_hash


@dataclass(frozen=True)
class Principal:
    key_id: str  # a stable, non-secret name for the key: owner of tasks and rate-limit bucket
    images_per_minute: int | None = None  # this key's own limits; None: the server's defaults
    requests_per_minute: int | None = None


ANONYMOUS = Principal(key_id="anonymous")


def key_id_for(key: str) -> str:
    return key_id_for_hash(hash_key(key))


class BearerAuthenticator:
    def __init__(self, keys: tuple[str, ...], store: KeyStore | None = None, *, refresh_s: float = 2.0,
                 miss_refresh_s: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = [(key.encode(), key_id_for(key)) for key in keys]
        self._store = store
        self._refresh_s = refresh_s
        self._miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._stored: dict[str, StoredKey] = {}
        self._store_used = False
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or self._store_used

    async def refresh(self, older_than_s: float | None = None) -> None:
        """Reloads the store's keys if the cache is older than `older_than_s` (default: refresh_s)."""
        if self._store is None:
            return
        limit = self._refresh_s if older_than_s is None else older_than_s
        async with self._lock:
            if self._clock() - self._loaded_at < limit:
                return
            self._stored, self._store_used = await asyncio.to_thread(self._store.snapshot)
            self._loaded_at = self._clock()

    async def authenticate_request(self, authorization: str | None) -> Principal:
        await self.refresh()
        try:
            return self.authenticate(authorization)
        except InvalidToken:
            if self._store is None:
                raise
        # Perhaps a key created moments ago: reload, but at most every miss_refresh_s (an unknown key waits for
        # the next reload rather than causing one each time, which also slows down guessing).
        wait = self._miss_refresh_s - (self._clock() - self._loaded_at)
        if wait > 0:
            await asyncio.sleep(wait)
        await self.refresh(older_than_s=self._miss_refresh_s)
        return self.authenticate(authorization)

    def authenticate(self, authorization: str | None) -> Principal:
        """Against the flag keys and the cached store keys (no I/O)."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("You didn't provide an API key. You need to provide your API key in an "
                               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        presented = token.strip()
        found = None
        for key, key_id in self._keys:  # no early exit: the time taken does not say which key nearly matched
            if hmac.compare_digest(presented.encode(), key):
                found = Principal(key_id=key_id)
        stored = self._stored.get(hash_key(presented))
        if stored is not None:
            found = Principal(stored.id, stored.images_per_minute, stored.requests_per_minute)
        if found is None:
            raise InvalidToken("The specified token is invalid or wrong.")
        return found


async def require_principal(request: Request) -> Principal:
    authenticator: BearerAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate_request(request.headers.get("authorization"))
    request.state.principal = principal
    return principal


Authenticated = Annotated[Principal, Depends(require_principal)]
