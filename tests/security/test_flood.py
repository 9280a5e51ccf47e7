"""Per-resident flood control: a chat over its budget is stored but not understood, told once to slow
down, and cannot take the bot's time from other residents."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.conversation.flood import FloodVerdict, ResidentRateLimiter
from bot.runtime import Runtime
from flows.texts import Texts
from storage.models import Message, ProcessedMessage
from tests.factories import incoming

TEXTS = Texts.load()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_per_chat_warns_once_then_drops_until_refilled() -> None:
    clock = FakeClock()
    limiter = ResidentRateLimiter(rate=0.5, burst=3, clock=clock)

    verdicts = [limiter.check("telegram", "1") for _ in range(6)]

    assert verdicts == [
        FloodVerdict.ALLOW,
        FloodVerdict.ALLOW,
        FloodVerdict.ALLOW,
        FloodVerdict.WARN,
        FloodVerdict.DROP,
        FloodVerdict.DROP,
    ]
    assert limiter.check("telegram", "2") is FloodVerdict.ALLOW  # another chat has its own budget
    assert limiter.check("whatsapp", "1") is FloodVerdict.ALLOW  # same id, other channel: other budget
    clock.now += 2.0  # one token back
    assert limiter.check("telegram", "1") is FloodVerdict.ALLOW
    assert limiter.check("telegram", "1") is FloodVerdict.WARN  # a new flood is warned about again


def test_memory_is_bounded() -> None:
    limiter = ResidentRateLimiter(rate=1, burst=1, max_chats=100)
    for chat in range(1000):
        limiter.check("webchat", str(chat))
    assert len(limiter._chats) == 100


async def test_a_flooding_chat_is_stored_whole_warned_once_and_others_are_served(runtime: Runtime) -> None:
    runtime.dispatcher.flood = ResidentRateLimiter(rate=0.001, burst=5)
    flood = [incoming(f"spam {i}", chat_id="flooder") for i in range(40)]

    results = await asyncio.gather(
        *(runtime.dispatcher.handle(m) for m in flood),
        runtime.dispatcher.handle(incoming("halo", chat_id="tetangga")),
    )

    *flooded, neighbour = results
    slow_down = TEXTS.render("id", "ratelimit.slow_down")
    warned = [r for r in flooded if [x.text for x in r.replies] == [slow_down]]
    silent = [r for r in flooded if not r.replies]
    assert (len(warned), len(silent)) == (1, 34)  # 5 answered normally, one told to slow down
    assert neighbour.replies and neighbour.replies[0].text != slow_down
    async with runtime.db.session() as session:
        stored = (
            (
                await session.execute(
                    select(Message.text).where(Message.direction == "in", Message.text.like("spam %"))
                )
            )
            .scalars()
            .all()
        )
        assert sorted(stored) == sorted(m.text for m in flood)  # nothing accepted is lost
        claimed = (await session.execute(select(func.count()).select_from(ProcessedMessage))).scalar_one()
        assert claimed == 41

    # A platform retry of a dropped message is still answered as a duplicate, not stored twice.
    again = await runtime.dispatcher.handle(flood[-1])
    assert again.duplicate


async def test_the_default_budget_lets_a_person_type_normally(runtime: Runtime) -> None:
    limiter = runtime.dispatcher.flood
    assert limiter is not None
    assert (limiter.rate, limiter.burst) == (0.5, 20)  # 30 per minute, 20 in a burst
