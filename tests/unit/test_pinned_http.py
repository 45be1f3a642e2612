"""DNS rebinding: image URL fetches and callbacks connect to the address the guard checked, even when a later
resolution of the same name answers differently (loopback origins, --allow-private-urls semantics)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from callback_receiver import CallbackReceiver
from imageapi import netguard, pinned_http
from imageapi.fetch import FetchLimits, fetch_image_bytes
from imageapi.tasks.webhooks import WebhookSender
from support import loopback_http_server

REBINDING_HOST = "images.rebind.test"
BODY = b"\x89PNG pinned"


class Rebinder:
    """A resolver whose first answer for REBINDING_HOST is 127.0.0.1 (the origin) and every later one is
    127.0.0.2 (where nothing listens): a connection that resolves the name again cannot reach the origin."""

    def __init__(self) -> None:
        self.lookups = 0
        self._real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        if host != REBINDING_HOST:
            return self._real(host, port, *args, **kwargs)
        self.lookups += 1
        address = "127.0.0.1" if self.lookups == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]


@pytest.fixture
def rebinder(monkeypatch: pytest.MonkeyPatch) -> Rebinder:
    resolver = Rebinder()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture
def origin():
    seen_hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_hosts.append(self.headers["host"])
            self.send_response(200)
            self.send_header("content-length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http_server(Handler) as server:
        yield server.server_address[1], seen_hosts


def test_the_rebinding_resolver_really_changes_its_answer(rebinder: Rebinder) -> None:
    first = socket.getaddrinfo(REBINDING_HOST, 80)[0][4][0]
    assert (first, socket.getaddrinfo(REBINDING_HOST, 80)[0][4][0]) == ("127.0.0.1", "127.0.0.2")


def test_image_fetch_connects_to_the_checked_address(rebinder: Rebinder, origin) -> None:
    port, seen_hosts = origin
    url = f"http://{REBINDING_HOST}:{port}/img.png"
    data = asyncio.run(fetch_image_bytes(url, "image", FetchLimits(10_000, 5), allow_private=True))
    assert data == BODY
    assert rebinder.lookups == 1  # only the guard resolved the name; httpx connected to its answer
    assert seen_hosts == [f"{REBINDING_HOST}:{port}"]  # the Host header stays the URL's


def test_callback_connects_to_the_checked_address(rebinder: Rebinder) -> None:
    async def deliver(url: str):
        sender = WebhookSender(secret=None, timeout_s=5, allow_private=True)
        try:
            return await sender.send(url, b"{}")
        finally:
            await sender.aclose()

    with CallbackReceiver() as receiver:
        port = receiver.url().rsplit(":", 1)[1].split("/")[0]
        outcome = asyncio.run(deliver(f"http://{REBINDING_HOST}:{port}/hook"))
        assert outcome.delivered, outcome
        assert rebinder.lookups == 1
        assert receiver.at("/hook")[0].headers["host"] == f"{REBINDING_HOST}:{port}"


def _request(url: str, address: str) -> httpx.Request:
    async def build() -> httpx.Request:
        async with httpx.AsyncClient() as client:
            return pinned_http.pinned_request(client, "GET", url, ipaddress.ip_address(address),
                                              headers={"accept": "image/*"})
    return asyncio.run(build())


def test_https_keeps_the_tls_server_name_and_host() -> None:
    request = _request("https://images.example.com/a/b.png?x=1", "93.184.216.34")
    assert str(request.url) == "https://93.184.216.34/a/b.png?x=1"
    assert request.headers["host"] == "images.example.com" and request.headers["accept"] == "image/*"
    assert request.extensions["sni_hostname"] == "images.example.com"


def test_ipv6_addresses_are_bracketed_and_plain_http_has_no_sni() -> None:
    request = _request("http://images.example.com:8080", "2606:2800:220:1::1")
    assert str(request.url) == "http://[2606:2800:220:1::1]:8080/"
    assert request.headers["host"] == "images.example.com:8080"
    assert "sni_hostname" not in request.extensions


def test_international_names_go_out_in_their_ascii_form() -> None:
    request = _request("https://bücher.example:8443/hook", "93.184.216.34")
    assert request.headers["host"] == "xn--bcher-kva.example:8443"
    assert request.extensions["sni_hostname"] == "xn--bcher-kva.example"


def test_a_host_that_is_no_domain_name_is_refused() -> None:
    with pytest.raises(netguard.RefusedURL, match="not a valid domain name"):
        netguard.parse_http_url("http://a..b/x")
