"""Who sent a request: the connection's peer, or the client a trusted proxy names.

A proxy (nginx's ``$proxy_add_x_forwarded_for``) appends the address it received the
request from to ``X-Forwarded-For``; anything to the left of that came from the client
and may be made up. So the header is read only when the peer is one of the trusted
proxies (``MNIST_TRUSTED_PROXIES``), and from the right: each trusted address is a hop
to skip, and the first untrusted one is the client, the last address a proxy we trust
vouched for. This is uvicorn's ``ProxyHeadersMiddleware`` walk, done here because the
rate bound per client is the only reader and uvicorn's setting is BentoML's to pass.

Where the walk cannot go on, it stops at the last address it trusted: an entry that is
not an IP address (``unknown``, ``host:port``, junk) ends it, so a client cannot pick
its own key by writing junk; a header of trusted addresses only, or none at all, leaves
the leftmost one reached. Addresses are returned in one spelling (``ipaddress``'s, IPv4
for an IPv4-mapped IPv6 address), so one client is one key however it is written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, else the rightmost
    untrusted address of ``forwarded_for`` (the X-Forwarded-For header, its lines joined
    by commas). A ``peer`` that is not an IP address (no network peer) is returned as is."""
    hop = _address(peer)
    if hop is None:
        return peer
    if not _trusted(hop, trusted):
        return str(hop)
    for entry in reversed(forwarded_for.split(",") if forwarded_for.strip() else []):
        sender = _address(entry.strip())
        if sender is None:
            break  # unreadable: nothing left of it can be vouched for
        hop = sender
        if not _trusted(hop, trusted):
            break
    return str(hop)


def _address(text: str) -> Address | None:
    """``text`` as an address (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)  # another IP version: False
