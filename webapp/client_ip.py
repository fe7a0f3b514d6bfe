"""Who the client is: the socket peer, unless that peer is a trusted proxy.

Only then is `X-Forwarded-For` read, right to left, skipping our own proxies;
the first address that is not one of them is the client; and only then does
`X-Forwarded-Proto` say which scheme the client used (a proxy that ends TLS
talks plain HTTP to us). A header sent by anyone else changes nothing.

The limits count an IPv6 client by its network (`limit_key`): one subscriber
line or host usually gets a whole /64, so keying on the full address would
give it 2**64 budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries ("10.0.0.0/8", "127.0.0.1") as networks; a typo fails at start-up."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:1234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A server on "::" sees IPv4 clients as ::ffff:a.b.c.d: one client, one key.
    return getattr(address, "ipv4_mapped", None) or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_ip(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client's address for logs and limits."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    peer_address = _address(peer)
    if not _trusted(peer_address, trusted):
        return str(peer_address) if peer_address else peer
    hops: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage in the chain: trust nothing before it
        if not _trusted(address, trusted):
            return str(address)
    return str(peer_address)


def request_scheme(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The scheme the client used: the socket's, or what a trusted proxy says in X-Forwarded-Proto."""
    scheme = str(scope.get("scheme", "http"))
    client = scope.get("client")
    if not _trusted(_address(client[0]) if client else None, trusted):
        return scheme
    said = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-proto"]
    # The last value is the one our own proxy wrote; it overwrites or appends.
    last = ",".join(said).split(",")[-1].strip().lower() if said else ""
    return last if last in ("http", "https") else scheme


def limit_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The key per-IP counters count `ip` under: an IPv4 address as it is, an IPv6 one as its network."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # "unknown" (no socket peer): all such requests share one key
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address.packed, ipv6_prefix), strict=False))
    return str(address)
