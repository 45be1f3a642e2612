"""Per-key rate limits: pure logic with an injected clock (no I/O, no asyncio).

Each key has two token buckets, one counted in requests and one in images (a request for n=4 takes 4).
A bucket holds at most `limit` tokens and refills at `limit / window` per second, so a key may burst up to
its limit and then continue at the steady rate. `reset` is the time until the bucket is full again, which
is what OpenAI's `x-ratelimit-reset-*` headers mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketState:
    limit: int
    remaining: int
    reset_s: float  # until full again


@dataclass(frozen=True)
class Decision:
    allowed: bool
    requests: BucketState
    images: BucketState
    retry_after_s: float  # 0 when allowed
    exceeded: str | None  # "requests" | "images" when refused
    never: bool = False  # the cost is larger than the limit itself: waiting cannot help


class TokenBucket:
    def __init__(self, limit: int, window_s: float, now: float) -> None:
        self.limit = limit
        self.rate = limit / window_s
        self.tokens = float(limit)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.limit, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: int, now: float) -> float:
        """Seconds until `cost` tokens are there (0: now); inf if cost exceeds the limit."""
        self._refill(now)
        if cost > self.limit:
            return math.inf
        return max(0.0, (cost - self.tokens) / self.rate)

    def take(self, cost: int, now: float) -> None:
        self._refill(now)
        self.tokens -= cost

    def give_back(self, cost: int, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.limit, self.tokens + cost)

    def state(self, now: float) -> BucketState:
        self._refill(now)
        remaining = max(0, math.floor(self.tokens + 1e-9))
        return BucketState(self.limit, remaining, (self.limit - self.tokens) / self.rate)


class RateLimiter:
    """Buckets per key id; a key's limits may change (the bucket is rebuilt when they do)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def _bucket(self, key_id: str, kind: str, limit: int) -> TokenBucket:
        bucket = self._buckets.get((key_id, kind))
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[(key_id, kind)] = TokenBucket(limit, self.window_s, self._clock())
        return bucket

    def acquire(self, key_id: str, *, requests_limit: int, images_limit: int, requests: int = 1,
                images: int = 0) -> Decision:
        """Takes `requests` and `images` tokens if both buckets have them; otherwise takes nothing."""
        now = self._clock()
        request_bucket = self._bucket(key_id, "requests", requests_limit)
        image_bucket = self._bucket(key_id, "images", images_limit)
        request_wait = request_bucket.wait_for(requests, now)
        image_wait = image_bucket.wait_for(images, now)
        allowed = request_wait == 0 and image_wait == 0
        if allowed:
            request_bucket.take(requests, now)
            image_bucket.take(images, now)
        exceeded = None if allowed else ("requests" if request_wait >= image_wait else "images")
        wait = max(request_wait, image_wait)
        return Decision(allowed, request_bucket.state(now), image_bucket.state(now),
                        retry_after_s=0.0 if allowed or math.isinf(wait) else wait, exceeded=exceeded,
                        never=math.isinf(wait))

    def refund_images(self, key_id: str, images: int) -> None:
        """Gives back images a request took but did not make (it failed validation before any GPU work)."""
        bucket = self._buckets.get((key_id, "images"))
        if bucket is not None and images > 0:
            bucket.give_back(images, self._clock())

    def peek(self, key_id: str, *, requests_limit: int, images_limit: int) -> tuple[BucketState, BucketState]:
        now = self._clock()
        return (self._bucket(key_id, "requests", requests_limit).state(now),
                self._bucket(key_id, "images", images_limit).state(now))


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() at millisecond precision: 12ms, 1.5s, 6m0s, 1h0m0s (OpenAI's reset format)."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def limit_headers(requests: BucketState, images: BucketState) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, state in (("requests", requests), ("images", images)):
        headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = go_duration(state.reset_s)
    return headers
