"""Outgoing requests to client-given URLs (callbacks, image URLs) that connect to the address the guard checked.

`checked_request` resolves the URL's host and checks every address with `netguard.check_url` (in a thread:
DNS blocks), then builds a request whose connection goes to the first checked address: the URL's host is
replaced by that IP literal, while the Host header and the TLS server name (SNI and certificate check, via
httpcore's `sni_hostname` extension) stay the URL's. httpx therefore never resolves the name again, so a
DNS server that answers differently after the check (DNS rebinding) cannot slip a refused address in.

Callers send the request with `follow_redirects=False` clients and check every redirect hop again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from imageapi import netguard

URLCheck = Callable[..., Sequence[netguard.IPAddress]]


def pinned_request(client: httpx.AsyncClient, method: str, url: str, address: netguard.IPAddress, *,
                   headers: dict[str, str] | None = None, content: bytes | None = None) -> httpx.Request:
    """A request for `url` that connects to `address`; Host and TLS server name stay the URL's."""
    scheme, host, _ = netguard.parse_http_url(url)
    parts = urlsplit(url)
    literal = str(address)
    netloc = f"[{literal}]" if ":" in literal else literal
    if parts.port:
        netloc += f":{parts.port}"
    target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return client.build_request(method, target, content=content, headers={**(headers or {}), "host": host_header},
                                extensions={"sni_hostname": host} if scheme == "https" else {})


async def checked_request(client: httpx.AsyncClient, method: str, url: str, *, allow_private: bool,
                          check: URLCheck = netguard.check_url, headers: dict[str, str] | None = None,
                          content: bytes | None = None) -> httpx.Request:
    """Checks `url` (netguard.RefusedURL when refused) and returns a request pinned to a checked address."""
    addresses = await asyncio.to_thread(check, url, allow_private=allow_private)
    if not addresses:
        raise netguard.RefusedURL(f"the host '{netguard.parse_http_url(url)[1]}' has no address")
    return pinned_request(client, method, url, addresses[0], headers=headers, content=content)
