"""Callback delivery: one signed POST per attempt, a retry schedule, and the URL guard at every attempt.

The schedule spreads `max_attempts` attempts over `window_s`: the gaps double (exponential backoff) and the
first gap is chosen so that they add up to the window; each gap is shortened by a random jitter of up to a
quarter, so receivers that failed together are not hit together again, and the last attempt never comes
later than the window.

Before each attempt the host is resolved and checked with `netguard.check_url`, and the connection goes to
that checked address (`pinned_http`: the Host header and TLS name stay the URL's), so a DNS answer that
changes between the check and the connection cannot reach a refused address. Redirects are never followed:
a 3xx is a failed attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from dataclasses import dataclass

import httpx

from imageapi import netguard, pinned_http

SIGNATURE_HEADER = "x-imageapi-signature"
TIMESTAMP_HEADER = "x-imageapi-timestamp"
JITTER = 0.25


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of `{timestamp}.{raw body}` under the webhook secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    window_s: float

    def base_delay(self) -> float:
        gaps = self.max_attempts - 1
        return self.window_s / (2**gaps - 1) if gaps > 0 else 0.0

    def delay_after(self, attempt: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based), or None: give up."""
        if attempt >= self.max_attempts:
            return None
        nominal = self.base_delay() * 2 ** (attempt - 1)
        return nominal * (1 - JITTER * (rng or random).random())


@dataclass(frozen=True)
class AttemptOutcome:
    delivered: bool
    status_code: int | None
    error: str | None


class WebhookSender:
    def __init__(self, *, secret: str | None, timeout_s: float, allow_private: bool,
                 client: httpx.AsyncClient | None = None) -> None:
        self._secret = secret
        self._allow_private = allow_private
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def headers(self, body: bytes, now: float | None = None) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "imageapi-webhooks/1"}
        if self._secret:
            timestamp = str(int(time.time() if now is None else now))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        return headers

    async def send(self, url: str, body: bytes) -> AttemptOutcome:
        try:
            request = await pinned_http.checked_request(self._client, "POST", url, allow_private=self._allow_private,
                                                        headers=self.headers(body), content=body)
        except netguard.RefusedURL as refused:
            return AttemptOutcome(False, None, f"refused: {refused}")
        try:
            response = await self._client.send(request)
            await response.aclose()
        except httpx.TimeoutException:
            return AttemptOutcome(False, None, "timed out")
        except httpx.HTTPError as error:
            return AttemptOutcome(False, None, f"connection failed: {type(error).__name__}")
        if 200 <= response.status_code < 300:
            return AttemptOutcome(True, response.status_code, None)
        if response.is_redirect:
            return AttemptOutcome(False, response.status_code, "redirect not followed")
        return AttemptOutcome(False, response.status_code, f"HTTP {response.status_code}")
