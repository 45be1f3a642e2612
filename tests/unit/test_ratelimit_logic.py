import math

import pytest

from imageapi.ratelimit import RateLimiter, go_duration, limit_headers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_images_counted_by_n_and_refilled_steadily():
    clock = Clock()
    limiter = RateLimiter(60.0, clock)
    first = limiter.acquire("k", requests_limit=100, images_limit=10, images=4)
    assert first.allowed and first.images.remaining == 6 and first.requests.remaining == 99
    assert limiter.acquire("k", requests_limit=100, images_limit=10, images=6).allowed
    refused = limiter.acquire("k", requests_limit=100, images_limit=10, images=2)
    assert not refused.allowed and refused.exceeded == "images" and not refused.never
    assert refused.retry_after_s == pytest.approx(12.0)  # 10 per 60 s: one image every 6 s, two needed
    assert refused.images.reset_s == pytest.approx(60.0)
    clock.now += 12.0
    assert limiter.acquire("k", requests_limit=100, images_limit=10, images=2).allowed


def test_refusal_takes_nothing_from_either_bucket():
    limiter = RateLimiter(60.0, Clock())
    limiter.acquire("k", requests_limit=1, images_limit=10, requests=1)
    refused = limiter.acquire("k", requests_limit=1, images_limit=10, requests=1, images=3)
    assert not refused.allowed and refused.exceeded == "requests"
    assert refused.images.remaining == 10


def test_keys_have_separate_buckets_and_new_limits_rebuild():
    limiter = RateLimiter(60.0, Clock())
    assert limiter.acquire("a", requests_limit=1, images_limit=5).allowed
    assert not limiter.acquire("a", requests_limit=1, images_limit=5).allowed
    assert limiter.acquire("b", requests_limit=1, images_limit=5).allowed
    assert limiter.acquire("a", requests_limit=2, images_limit=5).allowed  # the limit changed: a fresh bucket


def test_more_than_the_limit_can_never_pass():
    decision = RateLimiter(60.0, Clock()).acquire("k", requests_limit=5, images_limit=3, images=4)
    assert not decision.allowed and decision.never and decision.retry_after_s == 0
    assert not math.isinf(decision.images.reset_s)


def test_refund_gives_images_back_up_to_the_limit():
    limiter = RateLimiter(60.0, Clock())
    limiter.acquire("k", requests_limit=5, images_limit=3, images=3)
    limiter.refund_images("k", 3)
    limiter.refund_images("k", 3)
    _, images = limiter.peek("k", requests_limit=5, images_limit=3)
    assert images.remaining == 3 and images.reset_s == 0


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (0.012, "12ms"), (0.9994, "999ms"), (1, "1s"),
                                               (1.5, "1.5s"), (59.999, "59.999s"), (360, "6m0s"),
                                               (61.25, "1m1.25s"), (3600, "1h0m0s")])
def test_go_durations(seconds, text):
    assert go_duration(seconds) == text


def test_headers_name_both_kinds():
    limiter = RateLimiter(60.0, Clock())
    decision = limiter.acquire("k", requests_limit=5, images_limit=50, images=2)
    headers = limit_headers(decision.requests, decision.images)
    assert headers == {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4",
                       "x-ratelimit-reset-requests": "12s", "x-ratelimit-limit-images": "50",
                       "x-ratelimit-remaining-images": "48", "x-ratelimit-reset-images": "2.4s"}
