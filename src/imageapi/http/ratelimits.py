"""Rate limits at the HTTP edge: an images route depends on `RateLimited` (authenticate, then take one
request token), takes the request's image count once its body is validated, and every answer to it, errors
included, carries the `x-ratelimit-*` headers (added by `RequestIdMiddleware` from request state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request

from imageapi.errors import ImageAPIError, TooManyRequests
from imageapi.http.auth import Principal, require_principal
from imageapi.http.middleware import EXTRA_HEADERS_STATE
from imageapi.ratelimit import Decision, RateLimiter, limit_headers
from imageapi.service.profiles import PROFILES

MAX_N = max(profile.max_n for profile in PROFILES.values())


def _limits(request: Request, principal: Principal) -> tuple[int, int]:
    settings = request.app.state.settings
    return (principal.requests_per_minute or settings.requests_per_minute,
            principal.images_per_minute or settings.images_per_minute)


def _set_headers(request: Request, headers: dict[str, str]) -> None:
    setattr(request.state, EXTRA_HEADERS_STATE, headers)


def _apply(request: Request, principal: Principal, decision: Decision) -> None:
    _set_headers(request, limit_headers(decision.requests, decision.images))
    if decision.allowed:
        return
    requests_limit, images_limit = _limits(request, principal)
    kind, limit = ("requests", requests_limit) if decision.exceeded == "requests" else ("images", images_limit)
    if decision.never:
        raise TooManyRequests(f"This request needs more {kind} than the limit of {limit} {kind} per minute for "
                              "this API key allows; ask for fewer images.", retry_after_s=0,
                              headers={"x-should-retry": "false"})
    raise TooManyRequests(f"Rate limit exceeded for {kind} per minute for this API key. Limit: {limit}/1min. "
                          f"Please try again in {decision.retry_after_s:.1f}s.",
                          retry_after_s=decision.retry_after_s)


def _limiter(request: Request) -> RateLimiter:
    return request.app.state.ratelimiter


async def require_rate_limited_principal(request: Request) -> Principal:
    principal = await require_principal(request)
    requests_limit, images_limit = _limits(request, principal)
    decision = _limiter(request).acquire(principal.key_id, requests_limit=requests_limit,
                                         images_limit=images_limit, requests=1, images=0)
    _apply(request, principal, decision)
    return principal


RateLimited = Annotated[Principal, Depends(require_rate_limited_principal)]


def image_cost(n: object) -> int:
    """Images a request will make; an out-of-range n is refused by validation, so it costs 1 meanwhile."""
    return n if isinstance(n, int) and 1 <= n <= MAX_N else 1


@asynccontextmanager
async def images_charged(request: Request, principal: Principal, n: object) -> AsyncIterator[None]:
    """Takes the images before the work; gives them back if the request is refused before any image was made
    (bad input, unknown model, prompt policy, a full queue, models loading), not after (a failed batch, a
    blocked result)."""
    cost = image_cost(n)
    requests_limit, images_limit = _limits(request, principal)
    limiter = _limiter(request)
    _apply(request, principal, limiter.acquire(principal.key_id, requests_limit=requests_limit,
                                               images_limit=images_limit, requests=0, images=cost))
    try:
        yield
    except ImageAPIError as refused:
        if not refused.images_made:
            limiter.refund_images(principal.key_id, cost)
            _set_headers(request, limit_headers(*limiter.peek(
                principal.key_id, requests_limit=requests_limit, images_limit=images_limit)))
        raise
