"""Per client address limits: one address cannot open web chat sessions or handoffs without end.

* **New web chat sessions**: a token bucket per address (``server.address_new_sessions_per_minute``,
  ``server.address_new_sessions_burst``); over it the web chat answers 429 with ``Retry-After``.
  Sized for a booth: many phones behind one Wi-Fi (or a carrier's NAT) share one address.
* **Handoffs**: counted per address in a sliding window (``server.address_window_minutes``). Beyond
  ``server.address_urgent_handoffs`` urgent ones, a new urgent handoff opens as *not* urgent and
  marked; beyond ``server.address_handoffs`` any handoff is marked. A marked handoff is still a
  handoff (the resident is answered, the emergency numbers are given): staff see it flagged.

The counts live in this process: with several workers each counts its own share, so an address may
reach up to ``workers`` times a limit. That is still a small constant against a flood, keeps a
database round trip off every message, and stores no client address anywhere.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from bot.channels.ratelimit import TokenBucket

if TYPE_CHECKING:
    from bot.settings import ServerSettings

MAX_TRACKED_ADDRESSES = 50_000
_Value = TypeVar("_Value")


class HandoffFlag(StrEnum):
    """Why staff see a handoff marked suspicious."""

    URGENT_FLOOD = "urgent_flood"  # too many urgent handoffs from one address: opened as not urgent
    FLOOD = "flood"  # too many handoffs from one address


class AddressLimiter:
    """Token buckets for new sessions and windows of handoffs, per client address; never waits."""

    def __init__(
        self,
        *,
        new_sessions_per_minute: float,
        new_sessions_burst: int,
        handoffs: int,
        urgent_handoffs: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.session_rate = new_sessions_per_minute / 60
        self.session_burst = float(new_sessions_burst)
        self.handoffs = handoffs
        self.urgent_handoffs = urgent_handoffs
        self.window = window_seconds
        self.clock = clock
        self.max_addresses = max_addresses
        self._sessions: OrderedDict[str, TokenBucket] = OrderedDict()
        self._handoffs: OrderedDict[str, deque[float]] = OrderedDict()
        self._urgent: OrderedDict[str, deque[float]] = OrderedDict()

    @classmethod
    def from_settings(cls, server: ServerSettings) -> AddressLimiter:
        """The limits configured under ``server.address_*``."""
        return cls(
            new_sessions_per_minute=server.address_new_sessions_per_minute,
            new_sessions_burst=server.address_new_sessions_burst,
            handoffs=server.address_handoffs,
            urgent_handoffs=server.address_urgent_handoffs,
            window_seconds=server.address_window_minutes * 60,
        )

    def admit_new_session(self, address: str) -> int:
        """Account for one new session from ``address``: 0 when admitted, else seconds to wait (≥ 1)."""
        bucket = self._sessions.get(address)
        if bucket is None:
            bucket = TokenBucket(self.session_rate, self.session_burst, clock=self.clock)
            _remember(self._sessions, address, bucket, self.max_addresses)
        else:
            self._sessions.move_to_end(address)
        wait = bucket.delay()
        if wait <= 0:
            bucket.consume()
            return 0
        return max(1, math.ceil(wait))

    def flag_handoff(self, address: str, *, urgent: bool, new: bool = True) -> HandoffFlag | None:
        """Account for one handoff from ``address`` (``new=False``: one made urgent) and say whether
        it is marked; a flagged urgent handoff is to be opened as not urgent."""
        now = self.clock()
        flag: HandoffFlag | None = None
        if new and self._count(self._handoffs, address, now) > self.handoffs:
            flag = HandoffFlag.FLOOD
        if urgent and self._count(self._urgent, address, now) > self.urgent_handoffs:
            flag = HandoffFlag.URGENT_FLOOD
        return flag

    def _count(self, windows: OrderedDict[str, deque[float]], address: str, now: float) -> int:
        """Add one event at ``now`` and return how many fall in the window."""
        times = windows.get(address)
        if times is None:
            times = deque()
            _remember(windows, address, times, self.max_addresses)
        else:
            windows.move_to_end(address)
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        return len(times)


def _remember(table: OrderedDict[str, _Value], address: str, value: _Value, limit: int) -> None:
    table[address] = value
    if len(table) > limit:
        table.popitem(last=False)  # the address idle longest starts afresh
