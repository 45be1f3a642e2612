"""Callback retry schedule, signatures, and the URL guard applied at every delivery attempt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from callback_receiver import CallbackReceiver
from imageapi.tasks.webhooks import JITTER, SIGNATURE_HEADER, TIMESTAMP_HEADER, RetryPolicy, WebhookSender, signature


def test_default_schedule_is_ten_attempts_over_an_hour() -> None:
    policy = RetryPolicy(max_attempts=10, window_s=3600)
    nominal = [policy.base_delay() * 2 ** index for index in range(9)]
    assert sum(nominal) == pytest.approx(3600)
    assert nominal[0] == pytest.approx(3600 / 511)
    assert policy.delay_after(10) is None  # the tenth failure is the last


@pytest.mark.parametrize("seed", range(5))
def test_jittered_delays_double_and_stay_inside_the_window(seed: int) -> None:
    policy = RetryPolicy(max_attempts=6, window_s=31.0)  # nominal gaps 1, 2, 4, 8, 16
    rng = random.Random(seed)
    delays = [policy.delay_after(attempt, rng) for attempt in range(1, 6)]
    for attempt, delay in enumerate(delays, start=1):
        nominal = 2 ** (attempt - 1)
        assert delay is not None and nominal * (1 - JITTER) <= delay <= nominal
    assert sum(delays) <= 31.0  # type: ignore[arg-type]
    assert policy.delay_after(6, rng) is None


def test_single_attempt_policy_never_retries() -> None:
    assert RetryPolicy(max_attempts=1, window_s=60).delay_after(1) is None


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"success":true}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", "1700000000", body) == f"sha256={expected}"


def test_headers_carry_timestamp_and_signature_only_with_a_secret() -> None:
    async def scenario() -> None:
        signed = WebhookSender(secret="s3cret", timeout_s=5, allow_private=True)
        plain = WebhookSender(secret=None, timeout_s=5, allow_private=True)
        headers = signed.headers(b"{}", now=1700000000.7)
        assert headers[TIMESTAMP_HEADER] == "1700000000"
        assert headers[SIGNATURE_HEADER] == signature("s3cret", "1700000000", b"{}")
        assert SIGNATURE_HEADER not in plain.headers(b"{}")
        await signed.aclose()
        await plain.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(("allow_private", "fail_status", "delivered", "error"), [
    (False, 500, False, "refused"),  # loopback refused by the guard: no request is sent
    (True, 500, False, "HTTP 500"),
    (True, 302, False, "redirect not followed"),
    (True, 200, True, None),
])
def test_send_outcomes_against_a_real_receiver(allow_private: bool, fail_status: int, delivered: bool,
                                               error: str | None) -> None:
    async def scenario(url: str) -> None:
        sender = WebhookSender(secret=None, timeout_s=5, allow_private=allow_private)
        try:
            outcome = await sender.send(url, b'{"a":1}')
        finally:
            await sender.aclose()
        assert outcome.delivered is delivered
        assert (outcome.error or "").startswith(error or "")
        assert (outcome.error is None) is (error is None)

    with CallbackReceiver(fail_first=1, fail_status=fail_status) as receiver:
        asyncio.run(scenario(receiver.url("/x")))
        sent = receiver.at("/x")
        assert len(sent) == (0 if not allow_private else 1)
        if sent:
            assert sent[0].body == b'{"a":1}' and sent[0].headers["content-type"] == "application/json"
        assert all(item.path == "/x" for item in receiver.received)  # the redirect was not followed


def test_unreachable_receiver_is_a_failed_attempt() -> None:
    async def scenario() -> None:
        sender = WebhookSender(secret=None, timeout_s=2, allow_private=True)
        try:
            outcome = await sender.send("http://127.0.0.1:9/hook", b"{}")
        finally:
            await sender.aclose()
        assert not outcome.delivered and outcome.error and outcome.error.startswith("connection failed")

    asyncio.run(scenario())
