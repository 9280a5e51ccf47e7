"""Reliability fixtures: the Telegram channel served over real HTTP against the fake Bot API, and
helpers shared by the webhook tests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import func, select

from bot.runtime import Runtime
from nlu.result import ParseResult
from tests.bot.channels.conftest import serve_telegram_bot  # noqa: F401  (fixture)


async def count(rt: Runtime, model: Any) -> int:
    """How many rows ``model``'s table has."""
    async with rt.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


class StallingParser:
    """The NLU as a back end that hangs: every parse waits until ``release()`` (at most ``stall`` s)."""

    def __init__(self, real: Any, stall: float = 20.0) -> None:
        self.real = real
        self.stall = stall
        self.released = asyncio.Event()
        self.calls = 0

    async def parse(self, text: str) -> ParseResult:
        self.calls += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), timeout=self.stall)
        result: ParseResult = await self.real.parse(text)
        return result

    def release(self) -> None:
        self.released.set()

    async def aclose(self) -> None:
        return None
