"""Acceptance (issue 6): a whole complaint with photo and location over Telegram, polling and webhook.

pontibot runs for real (uvicorn, python-telegram-bot) against the fake Bot API server; the resident's
updates are the recorded fixtures of tests/fixtures/telegram.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from flows.texts import Texts
from storage.backend_models import ComplaintRecord
from storage.models import Subscription
from tests.bot.channels.conftest import TelegramBot, load_update

TEXTS = Texts.load()
RINA = 555000111
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40
SEND = '/file_complaint{"choice": "send"}'
EDIT = '/file_complaint{"choice": "edit"}'
CAPTION = "jalan berlubang depan pasar"  # the caption of tests/fixtures/telegram/photo.json
PIN = (-0.02633, 109.342504)  # tests/fixtures/telegram/location.json
TICKET = re.compile(r"ADU-\d{4}-\d{6}")


def keyboard(call: Any) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def pressed(data: str, *, update_id: int, query_id: str) -> dict[str, Any]:
    update = load_update("callback_query", update_id=update_id)
    update["callback_query"]["data"] = data
    update["callback_query"]["id"] = query_id
    return update


async def turn(bot: TelegramBot, update: dict[str, Any]) -> list[Any]:
    """Push one update and return what the bot sent in answer to it."""
    before = len(bot.fake.sent(RINA))
    bot.fake.push_update(update)
    await bot.settle(int(update["update_id"]))
    return bot.fake.sent(RINA)[before:]


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_whole_complaint_with_photo_and_location(serve_telegram_bot: Any, mode: str) -> None:
    async with serve_telegram_bot(mode=mode) as bot:
        bot.fake.add_file("AgACAgUAAxkBAAIBlarge", JPEG)

        # A photo with a caption that says what is wrong: the bot only needs the place.
        [ask_location] = await turn(bot, load_update("photo", update_id=710000001))
        assert ask_location.params["text"] == TEXTS.render("id", "complaints.ask_location")
        assert ask_location.params["reply_markup"]["keyboard"] == [
            [{"text": TEXTS.render("id", "telegram.location_button"), "request_location": True}]
        ]

        [summary] = await turn(bot, load_update("location", update_id=710000002))
        assert summary.params["text"] == TEXTS.render(
            "id",
            "complaints.summary",
            category=TEXTS.render("id", "complaints.category.road_damage"),
            description=CAPTION,
            location=TEXTS.render("id", "complaints.location_pin", lat=f"{PIN[0]:.5f}", lon=f"{PIN[1]:.5f}"),
            photo=TEXTS.render("id", "complaints.summary_photos", count=1),
        )
        assert keyboard(summary) == [SEND, EDIT, "/cancel"]

        [filed] = await turn(bot, pressed(SEND, update_id=710000003, query_id="q-send-1"))
        ticket = TICKET.search(filed.params["text"])
        assert ticket is not None
        assert filed.params["text"].startswith(TEXTS.render("id", "complaints.filed", ticket=ticket.group(0)))
        assert [c.params["callback_query_id"] for c in bot.fake.calls("answerCallbackQuery")] == ["q-send-1"]

        async with bot.runtime.db.session() as session:
            row = (await session.execute(select(ComplaintRecord))).scalar_one()
            followed = (await session.execute(select(Subscription))).scalar_one()
        assert (row.ticket, row.category, row.description, row.lat, row.lon) == (
            ticket.group(0),
            "road_damage",
            CAPTION,
            *PIN,
        )
        [photo_key] = row.media_keys
        assert bot.runtime.media.path(photo_key).read_bytes() == JPEG
        assert (followed.topic, followed.ref) == ("complaint", ticket.group(0))
