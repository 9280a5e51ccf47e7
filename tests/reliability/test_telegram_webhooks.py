"""Telegram webhooks under stress: replays, a stalled back end, forged secret tokens.

The bot runs in webhook mode over real HTTP (uvicorn on 127.0.0.1) against the fake Bot API server.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from typing import Any

from storage.models import Message, ProcessedMessage, Resident
from tests.bot.channels.conftest import load_update
from tests.reliability.conftest import StallingParser, count
from tests.support import eventually

SECRET = "s3cret-token_for-tests"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


async def test_one_update_replayed_100_times_has_one_effect(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        update = load_update("text", update_id=7001)

        responses = []
        for batch in range(10):  # ten at a time, as a retrying platform and a proxy would
            responses += await asyncio.gather(
                *(bot.client.post("/webhooks/telegram", json=update, headers=HEADERS) for _ in range(10))
            )
        await bot.channel.drain(grace=10)

        assert [r.status_code for r in responses] == [200] * 100
        assert len(bot.fake.sent()) == 1
        assert await count(bot.runtime, ProcessedMessage) == 1
        inbound = [m for m in await _messages(bot) if m.direction == "in"]
        assert len(inbound) == 1


async def test_a_stalled_back_end_does_not_delay_the_acknowledgement(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        stalling = StallingParser(bot.runtime.dispatcher.parser, stall=20.0)
        bot.runtime.dispatcher.parser = stalling

        started = time.monotonic()
        response = await bot.client.post(
            "/webhooks/telegram", json=load_update("text", update_id=7101), headers=HEADERS
        )
        acknowledged = time.monotonic() - started

        assert response.status_code == 200
        assert acknowledged < 2.0
        await eventually(lambda: stalling.calls)  # processing started and is now hanging on the back end
        assert bot.fake.sent() == []
        stalling.release()  # the back end recovers: the message is answered, not lost
        await bot.channel.drain(grace=10)
        assert len(bot.fake.sent()) == 1


def _forgeries() -> list[dict[str, str]]:
    rng = random.Random(12)  # deterministic
    alphabet = string.ascii_letters + string.digits + "_-"
    forged: list[dict[str, str]] = [{}, {"X-Telegram-Bot-Api-Secret-Token": ""}]
    forged += [
        {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
    ]
    forged += [{"X-Telegram-Bot-Api-Secret-Token": SECRET.upper()}, {"X-Wrong-Header": SECRET}]
    while len(forged) < 100:
        length = rng.randint(1, 256)
        forged.append(
            {"X-Telegram-Bot-Api-Secret-Token": "".join(rng.choice(alphabet) for _ in range(length))}
        )
    return forged


async def test_100_forged_secret_tokens_are_refused_and_nothing_is_stored(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        statuses = []
        for index, headers in enumerate(_forgeries()):
            update = load_update("text", update_id=7200 + index)
            response = await bot.client.post("/webhooks/telegram", json=update, headers=headers)
            statuses.append(response.status_code)
        await bot.channel.drain(grace=10)

        assert statuses == [403] * 100
        assert (
            await count(bot.runtime, Message),
            await count(bot.runtime, ProcessedMessage),
            await count(bot.runtime, Resident),
        ) == (0, 0, 0)
        assert bot.fake.sent() == []


async def _messages(bot: Any) -> list[Message]:
    from sqlalchemy import select

    async with bot.runtime.db.session() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())
