"""python-telegram-bot over our aiohttp transport: calls, uploads, timeouts and dead servers.

The Bot API calls of the channel tests already go through it against the fake Bot API; these pin
what they do not reach: a multipart upload, and failures turned into python-telegram-bot's errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import BodyPartReader, web
from telegram import Bot, InputFile
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram.transport import AiohttpRequest
from tests.conftest import free_port

TOKEN = "123456789:AAFakeTokenForTransportTests_0123456789"


class TinyBotApi:
    """A Bot API of one route that records each call's fields, and can stall."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stall = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        fields: dict[str, Any] = {}
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                assert isinstance(part, BodyPartReader)
                fields[part.name or ""] = (part.filename, await part.read())
        else:
            fields.update(await request.post())
        self.calls.append((method, fields))
        if self.stall:
            await asyncio.sleep(self.stall)
        message = {"message_id": 7, "date": 1, "chat": {"id": 42, "type": "private"}}
        return web.json_response({"ok": True, "result": message})


@pytest.fixture
async def api() -> AsyncIterator[tuple[TinyBotApi, str]]:
    tiny = TinyBotApi()
    app = web.Application()
    app.router.add_post(f"/bot{TOKEN}/{{method}}", tiny.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield tiny, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def bot_at(base: str, **timeouts: float) -> tuple[Bot, AiohttpRequest]:
    request = AiohttpRequest(connection_pool_size=4, read_timeout=timeouts.pop("read", 5.0), **timeouts)
    return Bot(TOKEN, base_url=f"{base}/bot", request=request, get_updates_request=request), request


async def test_a_message_goes_as_a_form_and_comes_back_as_a_message(api: tuple[TinyBotApi, str]) -> None:
    tiny, base = api
    bot, request = bot_at(base)
    try:
        sent = await bot.send_message(42, "Halo, Kak!")
    finally:
        await request.shutdown()
    assert (sent.message_id, sent.chat.id) == (7, 42)
    assert tiny.calls == [("sendMessage", {"chat_id": "42", "text": "Halo, Kak!"})]


async def test_a_photo_goes_as_multipart_with_its_file(api: tuple[TinyBotApi, str]) -> None:
    tiny, base = api
    bot, request = bot_at(base)
    photo = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    try:
        await bot.send_photo(42, InputFile(photo, filename="lubang.png"), caption="Jalan berlubang")
    finally:
        await request.shutdown()
    [(method, fields)] = tiny.calls
    assert method == "sendPhoto"
    assert fields["chat_id"] == (None, b"42") and fields["caption"] == (None, b"Jalan berlubang")
    assert [value for value in fields.values() if value[0] == "lubang.png"] == [("lubang.png", photo)]


async def test_an_answer_slower_than_the_read_timeout_is_timed_out(api: tuple[TinyBotApi, str]) -> None:
    tiny, base = api
    tiny.stall = 2.0
    bot, request = bot_at(base, read=0.3)
    try:
        with pytest.raises(TimedOut):
            await bot.send_message(42, "Halo")
    finally:
        await request.shutdown()


async def test_a_server_that_is_not_there_is_a_network_error() -> None:
    bot, request = bot_at(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(42, "Halo")
    finally:
        await request.shutdown()
    assert not isinstance(raised.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in str(raised.value)
