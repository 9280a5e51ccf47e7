"""Pacing of the outbox: quiet hours, backoff, and send windows that keep to each platform's rate limits."""

from __future__ import annotations

import asyncio
import logging
import random
import time as clock
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.channels.base import SendLimits
from bot.settings import NotificationsSettings

logger = logging.getLogger(__name__)

PACE_EARLY_SECONDS = 0.003  # wake this much before a token is due, then yield until it is
PACE_POLL_SECONDS = 0.002
MAX_CHAT_WINDOWS = 10_000


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window (local time, may cross midnight) in which non-urgent notifications wait."""

    start: time
    end: time
    zone: ZoneInfo

    def active(self, at: datetime) -> bool:
        """True when ``at`` falls inside the window."""
        local = at.astimezone(self.zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, at: datetime) -> datetime:
        """When the window that holds ``at`` ends (``at`` itself outside the window)."""
        if not self.active(at):
            return at
        local = at.astimezone(self.zone)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(UTC)


def quiet_hours_of(settings: NotificationsSettings, timezone: str) -> QuietHours | None:
    """The configured quiet hours, or None when switched off (``quiet_hours: ""``)."""
    window = settings.quiet_window()
    if window is None:
        return None
    return QuietHours(window[0], window[1], ZoneInfo(timezone))


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half of ``base * 2**(attempts-1)`` (capped) plus a random half."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


class SendWindow:
    """At most ``limit`` sends per ``width`` seconds as the platform sees them, whatever the latency.

    A send counts from the moment it starts until ``width`` seconds after its answer came back. The
    platform received it somewhere in between, so no two sends more than ``limit`` apart can land
    inside one ``width``-second window on its side: a token bucket's spacing does not hold there once
    requests take different times to arrive.
    """

    def __init__(self, rate: float) -> None:
        self.limit = max(1, int(rate))
        self.width = self.limit / rate
        self.in_flight = 0
        self.done: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds until one more send may start (a short poll while only sends in flight block)."""
        while self.done and self.done[0] + self.width <= now:
            self.done.popleft()
        if self.in_flight + len(self.done) < self.limit:
            return 0.0
        return self.done[0] + self.width - now if self.done else PACE_POLL_SECONDS

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing within the window (the window may be forgotten)."""
        return self.in_flight == 0 and not self.done


class Pacer:
    """Paces one channel's outbox sends: its token buckets (shared with direct replies) and send windows.

    The channel's own limiter (:class:`~bot.channels.base.SendLimits`) is consulted (not consumed: the
    channel's send takes the token) so replies and notifications share one budget; the windows add
    what a token bucket cannot promise on the platform's side (no window above the limit however the
    latency varies).
    Waiting for the global budget is done by one sender at a time (``turn``), waking a moment early
    and yielding until the bucket is ready: sleeping to the millisecond loses a little of the rate on
    every send, and at 30 messages a second that is several percent.
    """

    def __init__(self, limiter: SendLimits | None) -> None:
        self.limiter = limiter
        self.global_window = SendWindow(limiter.global_rate) if limiter is not None else None
        self.per_chat_rate = limiter.per_key_rate if limiter is not None else None
        self.chat_windows: dict[str, SendWindow] = {}
        self.turn = asyncio.Lock()

    def _chat_window(self, chat_id: str) -> SendWindow | None:
        if self.per_chat_rate is None:
            return None
        window = self.chat_windows.get(chat_id)
        if window is None:
            window = self.chat_windows[chat_id] = SendWindow(self.per_chat_rate)
        return window

    async def wait_chat(self, chat_id: str) -> None:
        """Wait until this chat may get its next message (others are not held up meanwhile)."""
        window = self._chat_window(chat_id)
        while window is not None and (wait := window.delay(clock.monotonic())) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    async def wait_global(self, chat_id: str) -> None:
        """Wait (holding ``turn``) until the channel's budget and window allow one more send."""
        if self.limiter is None or self.global_window is None:
            return
        while True:
            wait = max(self.global_window.delay(clock.monotonic()), self.limiter.ready_in(chat_id))
            if wait <= 0:
                return
            await asyncio.sleep(wait - PACE_EARLY_SECONDS if wait > PACE_EARLY_SECONDS else 0)

    def begin(self, chat_id: str) -> None:
        """A send starts (call right after the waits, with no await in between)."""
        for window in (self.global_window, self._chat_window(chat_id)):
            if window is not None:
                window.in_flight += 1

    def end(self, chat_id: str) -> None:
        """The platform answered (or the send failed)."""
        now = clock.monotonic()
        for window in (self.global_window, self.chat_windows.get(chat_id)):
            if window is not None:
                window.in_flight -= 1
                window.done.append(now)
        if len(self.chat_windows) > MAX_CHAT_WINDOWS:
            for key in [k for k, w in self.chat_windows.items() if w.delay(now) == 0 and w.idle]:
                del self.chat_windows[key]
