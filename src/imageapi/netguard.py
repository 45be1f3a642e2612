"""Which outside addresses the server may reach for a client (callbacks, image URLs).

By default only public unicast addresses: loopback, private, link-local (cloud metadata lives there),
shared (CGNAT), multicast, reserved and unspecified ranges are refused, for every address a name
resolves to. `--allow-private-urls` lifts this for operators whose targets are on their own network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class RefusedURL(ValueError):
    """The URL may not be fetched or posted to; the message says why, without internal detail."""


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return False
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def parse_http_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or RefusedURL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedURL("the URL could not be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedURL("only http and https URLs are allowed")
    if not parts.hostname:
        raise RefusedURL("the URL has no host")
    if parts.username or parts.password:
        raise RefusedURL("URLs with credentials are not allowed")
    try:  # international names in their ASCII (IDNA) form, as DNS, Host headers and TLS want them
        host = parts.hostname if ":" in parts.hostname else parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise RefusedURL("the host name is not a valid domain name") from None
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Blocking DNS lookup: call it from a worker thread."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise RefusedURL(f"the host '{host}' could not be resolved") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def check_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Checks the URL's form and every address its host resolves to; returns the addresses.

    Blocking (DNS): call it from a worker thread. Check again right before each connection, since
    DNS answers change.
    """
    _, host, port = parse_http_url(url)
    addresses = resolve(host, port)
    if not allow_private:
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            raise RefusedURL(f"the host '{host}' resolves to a private, loopback, link-local or otherwise "
                             "non-public address; the operator can allow such targets with --allow-private-urls")
    return addresses
