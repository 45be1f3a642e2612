"""Fetching input images given by URL (JSON edits, and URL text fields in multipart): `data:` URLs are
decoded; http(s) URLs are fetched with bounded size (streamed, stopped at the limit: 413), total time and
redirects. Every hop is checked with `netguard.check_url` (in a thread: DNS blocks), so a public URL cannot
redirect to loopback, private, link-local or metadata addresses unless the operator allows private URLs.
Each hop connects to the address that was checked (`pinned_http`), never to a second DNS answer, so a
rebinding DNS server cannot slip a refused address in between the check and the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urljoin

import httpx

from imageapi import netguard, pinned_http
from imageapi.errors import InvalidRequest, PayloadTooLarge

MAX_URL_CHARS = 20_971_520  # OpenAI's image_url maxLength (data: URLs are long)
REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_s: float = 15.0
    max_redirects: int = 3


def shown(url: str) -> str:
    return url if len(url) <= 120 else url[:100] + "..."


def _refused(url: str, param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Could not fetch the image at '{shown(url)}': {why}.", param=param,
                          code="invalid_image_url")


def _too_large(url: str, param: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The image at '{shown(url)}' is larger than the {limit} bytes this server accepts.",
                           param=param, code="image_too_large")


def decode_data_url(url: str, param: str, max_bytes: int) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise _refused(url, param, "a data: URL needs a comma before its data")
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise _too_large(url, param, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") \
            else unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise _refused(url, param, "the data: URL's base64 is invalid") from None
    if len(data) > max_bytes:
        raise _too_large(url, param, max_bytes)
    return data


async def fetch_image_bytes(url: str, param: str, limits: FetchLimits, *, allow_private: bool,
                            check: pinned_http.URLCheck = netguard.check_url,
                            transport: httpx.AsyncBaseTransport | None = None) -> bytes:
    """The bytes at `url`, or a 400 naming it (413 past the size limit). Never raises anything else."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest("An image URL must be a non-empty string.", param=param)
    if len(url) > MAX_URL_CHARS:
        raise _refused(url, param, f"the URL is longer than {MAX_URL_CHARS} characters")
    if url[:5].lower() == "data:":
        return decode_data_url(url, param, limits.max_bytes)
    try:
        async with asyncio.timeout(limits.timeout_s), \
                httpx.AsyncClient(follow_redirects=False, transport=transport, trust_env=False) as client:
            return await _follow(client, url, param, limits, allow_private, check)
    except TimeoutError:
        raise _refused(url, param, f"it did not answer within {limits.timeout_s:g} seconds") from None
    except httpx.HTTPError as error:
        raise _refused(url, param, f"the connection failed ({type(error).__name__})") from None


async def _follow(client: httpx.AsyncClient, url: str, param: str, limits: FetchLimits, allow_private: bool,
                  check: pinned_http.URLCheck) -> bytes:
    current = url
    for _ in range(limits.max_redirects + 1):
        try:
            request = await pinned_http.checked_request(client, "GET", current, allow_private=allow_private,
                                                        check=check, headers={"accept": "image/*"})
        except netguard.RefusedURL as refusal:
            raise _refused(url, param, str(refusal) if current == url else
                           f"it redirects to '{shown(current)}', and {refusal}") from None
        async with contextlib.aclosing(await client.send(request, stream=True)) as response:
            if response.status_code in REDIRECT_CODES and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                continue
            if response.status_code != 200:
                raise _refused(url, param, f"the server answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise _too_large(url, param, limits.max_bytes)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise _too_large(url, param, limits.max_bytes)
            return bytes(body)
    raise _refused(url, param, f"it redirects more than {limits.max_redirects} times")
