"""Token buckets: one limiter per bot (global) and per chat, shared by direct replies and the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``take`` waits for a token."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)
    paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = self.clock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is available now)."""
        now = self.clock()
        self._refill(now)
        wait = max(0.0, self.paused_until - now)
        if self.tokens < 1:
            wait = max(wait, (1 - self.tokens) / self.rate)
        return wait

    def consume(self) -> None:
        """Take one token (call after ``delay()`` returned 0)."""
        self._refill(self.clock())
        self.tokens -= 1

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` (a 429 ``retry_after``)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.tokens = min(self.tokens, 0.0)


class RateLimiter:
    """A global bucket plus one bucket per key (chat); ``acquire(key)`` waits for both, fairly."""

    def __init__(self, *, global_rate: float, per_key_rate: float | None = None, burst: float = 1.0) -> None:
        self.global_bucket = TokenBucket(global_rate, max(1.0, burst if per_key_rate else global_rate))
        self.per_key_rate = per_key_rate
        self._keys: dict[str, TokenBucket] = {}
        self._lock = asyncio.Lock()

    def _bucket(self, key: str) -> TokenBucket | None:
        if self.per_key_rate is None:
            return None
        bucket = self._keys.get(key)
        if bucket is None:
            if len(self._keys) > 10_000:
                self._evict()
            bucket = self._keys[key] = TokenBucket(self.per_key_rate, 1.0)
        return bucket

    def _evict(self) -> None:
        full = [k for k, b in self._keys.items() if b.delay() == 0 and b.tokens >= b.burst]
        for key in full:
            del self._keys[key]

    @property
    def global_rate(self) -> float:
        """Sends per second for the whole channel."""
        return self.global_bucket.rate

    def ready_in(self, key: str) -> float:
        """Seconds until a send to ``key`` may go (without taking anything)."""
        bucket = self._bucket(key)
        return max(self.global_bucket.delay(), bucket.delay() if bucket else 0.0)

    async def acquire(self, key: str) -> None:
        """Wait until one message to ``key`` may be sent, and account for it."""
        while True:
            async with self._lock:
                bucket = self._bucket(key)
                wait = max(self.global_bucket.delay(), bucket.delay() if bucket else 0.0)
                if wait <= 0:
                    self.global_bucket.consume()
                    if bucket is not None:
                        bucket.consume()
                    return
            await asyncio.sleep(wait)

    def pause(self, seconds: float, key: str | None = None) -> None:
        """Honour a 429: pause one chat (``key``) or, without a key, the whole bot."""
        if key is not None and (bucket := self._bucket(key)) is not None:
            bucket.pause(seconds)
        else:
            self.global_bucket.pause(seconds)
