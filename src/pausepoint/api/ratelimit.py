"""Refusing clients that keep failing to authenticate (HTTP 429).

A client is its remote address: the socket peer, unless that peer is one of
``Settings.trusted_proxies``, in which case it is the right-most address of
``X-Forwarded-For`` that is not itself a trusted proxy (the one a trusted
proxy saw). IPv6 clients count per /64, the block one host usually holds.

After ``auth_failure_limit`` failed authentications within
``auth_failure_window`` seconds of its first failure, a client is refused with
429 and ``Retry-After`` until that window ends — **whatever it sends**, a
valid API key or token included. Checking comes before any key is hashed or
looked up and before any JWT signature is verified, so a client hammering the
server with guesses also stops costing it CPU and database reads. The price:
a legitimate caller that shares an address with the guesser (one NAT, or a
proxy not listed in ``trusted_proxies``) is locked out with it until the
window ends; letting valid credentials through would mean verifying every
guess again. Refused requests do not extend the window. Successful
authentications neither count nor reset the count.

Memory is bounded: at most ``auth_failure_clients`` clients are tracked; past
that, the one whose last failure is oldest is forgotten.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN_CLIENT = "unknown"
_MAX_ADDRESS_CHARS = 64


class TooManyAuthFailures(HTTPException):
    """429: this client failed to authenticate too often; ``Retry-After`` says for how long."""

    def __init__(self, client: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            429,
            detail=f"too many failed authentications from {client}: "
            f"its requests are refused for {seconds} more seconds, valid credentials included",
            headers={"Retry-After": str(seconds)},
        )


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``values`` (addresses or CIDR blocks, checked by Settings) as networks."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    parsed = _address(address)
    return parsed is not None and any(parsed in network for network in proxies)


def client_key(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client a request counts against (see the module docstring)."""
    client = peer or UNKNOWN_CLIENT
    if forwarded_for and proxies and _trusted(client, proxies):
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        untrusted = [hop for hop in hops if not _trusted(hop, proxies)]
        # Every hop trusted: the request came from one of our own proxies.
        client = untrusted[-1] if untrusted else (hops[0] if hops else client)
    address = _address(client)
    if address is None:
        return client[:_MAX_ADDRESS_CHARS]
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Window:
    opened: float
    failures: int


class AuthFailureLimiter:
    """Counts failed authentications per client and says when a client must wait.

    ``limit`` 0 turns limiting off. Single-threaded (one event loop): no locks.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def check(self, client: str) -> None:
        """Raise :class:`TooManyAuthFailures` if ``client`` must wait before trying again."""
        if self.limit <= 0:
            return
        window = self._clients.get(client)
        if window is None:
            return
        remaining = window.opened + self.window - self.clock()
        if remaining <= 0:
            del self._clients[client]
        elif window.failures >= self.limit:
            raise TooManyAuthFailures(client, remaining)

    def record_failure(self, client: str) -> None:
        """Count one failed authentication by ``client``."""
        if self.limit <= 0:
            return
        now = self.clock()
        window = self._clients.get(client)
        if window is None or now >= window.opened + self.window:
            window = _Window(now, 0)
        window.failures += 1
        self._clients[client] = window
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
