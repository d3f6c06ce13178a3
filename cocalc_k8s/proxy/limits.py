"""What the content port grants a client connection before it has sent a request head.

A connection waits for a head after it opens and after each response (keep-alive). While
it waits it costs a socket and, once a head starts to arrive, the head's bytes: a client
that opens many connections and sends nothing, or a byte now and then (slow-loris),
must not use up the hub. So a waiting connection is closed

- when it has been idle (no byte of a head) for `idle_timeout`, quietly: a browser opens
  a new one when it needs it;
- when a head started to arrive and is not complete after `head_timeout` (408);
- when its head grows past `max_head` bytes (431, in `protocol`);
- when more than `max_waiting` connections wait at once, or more than
  `max_waiting_per_address` from one client address: then the one that has waited the
  longest is closed (408 if part of its head had come). New connections are never turned
  away, so a flood cannot lock anyone out: a browser's head comes in one packet and is
  answered at once, and what the flood pushes out first are idle keep-alive connections
  and the oldest of its own. Idle connections being closed under pressure is what nginx
  does too.

Client addresses mean nothing on loopback: behind `kubectl port-forward`, or on the
one-command run, every client is 127.0.0.1, so loopback clients share only the total
bound. Behind a load balancer that hides addresses, set the per-address bound to 0 (the
policy above keeps even a shared address from locking others out; it only shares one
address's allowance among them).

Timeouts are checked by one timer per listener, ticking while anything waits, so a
request costs two dict operations and no timer of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ClientLimits:
    max_head: int = 64 * 1024  # bytes of request line and headers
    head_timeout: float = 30.0  # seconds from a head's first byte to its end
    idle_timeout: float = 60.0  # seconds a keep-alive connection may wait for a request
    max_waiting: int = 4096  # connections waiting for a head at once, in total
    max_waiting_per_address: int = 256  # the same from one client address; 0: no bound


class Waiter(Protocol):
    """What the waiting room needs of a client connection."""

    address_key: str | None  # its client address, when that address is bounded
    head_bytes: int  # bytes of a head received so far (0: idle)
    waiting_since: float  # the room's clock when it began to wait (or its head began)

    def abandon(self) -> None:
        """Close, with 408 when part of a head has arrived."""


def bounded_address(address: str, limits: ClientLimits) -> str | None:
    """The key a client address is counted under, or None: not counted per address."""
    if not limits.max_waiting_per_address or not address:
        return None
    try:
        if ipaddress.ip_address(address.split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        return None  # not an IP address (a Unix socket): nothing to tell clients apart
    return address


class WaitingRoom:
    """The connections of one listener that are waiting for a request head."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self.now = 0.0  # the loop's time at the last tick: what `waiting_since` is set to
        self._tick = min(1.0, max(0.01, min(limits.head_timeout, limits.idle_timeout) / 10))
        self._all: dict[Waiter, None] = {}  # ordered: the longest waiting first
        self._by_address: dict[str, dict[Waiter, None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._all)

    def enter(self, waiter: Waiter) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self.now = loop.time()
            self._timer = loop.call_at(self.now + self._tick, self._sweep)
        waiter.waiting_since = self.now
        waiting = self._all
        waiting[waiter] = None
        if len(waiting) > self.limits.max_waiting:
            self._evict(next(iter(waiting)))
        key = waiter.address_key
        if key is not None:
            same = self._by_address.setdefault(key, {})
            same[waiter] = None
            if len(same) > self.limits.max_waiting_per_address:
                self._evict(next(iter(same)))

    def leave(self, waiter: Waiter) -> None:
        if waiter not in self._all:
            return
        del self._all[waiter]
        key = waiter.address_key
        if key is not None:
            same = self._by_address[key]
            del same[waiter]
            if not same:
                del self._by_address[key]

    def _evict(self, waiter: Waiter) -> None:
        self.leave(waiter)
        waiter.abandon()

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self.now = now = loop.time()
        head, idle = self.limits.head_timeout, self.limits.idle_timeout
        late = [
            waiter
            for waiter in self._all
            if now - waiter.waiting_since > (head if waiter.head_bytes else idle)
        ]
        for waiter in late:
            self._evict(waiter)
        self._timer = loop.call_at(now + self._tick, self._sweep) if self._all else None
