"""Bearer-key authentication. Keys are compared in constant time; with no key configured, every
request is let in (the CLI allows that only on loopback unless told otherwise)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from imageapi.errors import InvalidToken


@dataclass(frozen=True)
class Principal:
    key_id: str  # a stable, non-secret name for the key: owner of tasks and rate-limit bucket


ANONYMOUS = Principal(key_id="anonymous")


def key_id_for(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


class BearerAuthenticator:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = [(key.encode(), key_id_for(key)) for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> Principal:
        if not self._keys:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("You didn't provide an API key. You need to provide your API key in an "
                               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        presented = token.strip().encode()
        found = None
        for key, key_id in self._keys:  # no early exit: the time taken does not say which key nearly matched
            if hmac.compare_digest(presented, key):
                found = key_id
        if found is None:
            raise InvalidToken("The specified token is invalid or wrong.")
        return Principal(key_id=found)


async def require_principal(request: Request) -> Principal:
    authenticator: BearerAuthenticator = request.app.state.authenticator
    return authenticator.authenticate(request.headers.get("authorization"))


Authenticated = Annotated[Principal, Depends(require_principal)]
