"""Per-resident flood control: one chat sending too fast cannot take the bot's time from the others.

Every ``(channel, chat)`` has a token bucket (``rate`` messages per second, ``burst`` saved up).
A message within the budget is handled normally. The first one over it gets a single polite
"pelan-pelan ya, Kak" and later ones are dropped silently until the bucket has a token again — but
every message is still **stored** (transcript, dedupe record): nothing accepted is lost, only the
expensive part (NLU, flows, back ends) is skipped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.channels.ratelimit import TokenBucket

MAX_TRACKED_CHATS = 50_000


class FloodVerdict(StrEnum):
    """What to do with one message of a chat."""

    ALLOW = "allow"
    WARN = "warn"  # over the limit for the first time: store it, say "slow down" once
    DROP = "drop"  # still over the limit: store it, say nothing


@dataclass(slots=True)
class _ChatBudget:
    bucket: TokenBucket
    warned: bool = False


class ResidentRateLimiter:
    """Token buckets per (channel, chat); never waits, only judges (the dispatcher decides)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_chats: int = MAX_TRACKED_CHATS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_chats = max_chats
        self._chats: OrderedDict[tuple[str, str], _ChatBudget] = OrderedDict()

    def check(self, channel: str, chat_id: str) -> FloodVerdict:
        """Account for one message of ``(channel, chat_id)`` and say how to treat it."""
        key = (channel, chat_id)
        budget = self._chats.get(key)
        if budget is None:
            budget = _ChatBudget(TokenBucket(self.rate, self.burst, clock=self.clock))
            self._chats[key] = budget
            if len(self._chats) > self.max_chats:
                self._chats.popitem(last=False)  # the chat idle longest starts afresh
        else:
            self._chats.move_to_end(key)
        if budget.bucket.delay() <= 0:
            budget.bucket.consume()
            budget.warned = False
            return FloodVerdict.ALLOW
        if budget.warned:
            return FloodVerdict.DROP
        budget.warned = True
        return FloodVerdict.WARN
