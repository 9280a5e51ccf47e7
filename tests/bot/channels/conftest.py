"""Channel fixtures: the fake Bot API server, recorded Telegram updates, the bot served over real HTTP."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.channels.telegram.channel import TelegramChannel
from bot.runtime import Runtime
from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime, start_runtime
from flows.messages import Channel
from tests.conftest import REPO, build_settings
from tests.support import eventually, free_port, serve
from tests.support.fake_telegram import FakeTelegram

FIXTURES = REPO / "tests" / "fixtures" / "telegram"


def load_update(name: str, *, update_id: int | None = None, chat_id: int | None = None) -> dict[str, Any]:
    """A recorded update from tests/fixtures/telegram, optionally with another update id or chat."""
    update = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))
    if update_id is not None:
        update["update_id"] = update_id
    if chat_id is not None:
        for key in ("message", "edited_message"):
            if key in update:
                update[key]["chat"]["id"] = chat_id
                update[key]["from"]["id"] = chat_id
        if "callback_query" in update:
            update["callback_query"]["from"]["id"] = chat_id
            update["callback_query"]["message"]["chat"]["id"] = chat_id
    return update


@dataclass
class TelegramBot:
    """pontibot served over HTTP with Telegram on, talking to the fake Bot API."""

    fake: FakeTelegram
    runtime: Runtime
    channel: TelegramChannel
    client: httpx.AsyncClient
    url: str

    async def settle(self, update_id: int) -> None:
        """Wait until the bot received ``update_id`` (polled and confirmed, or delivered) and handled it."""
        if self.channel.mode == "webhook":
            await eventually(
                lambda: update_id in {uid for uid, _ in self.fake.deliveries},
                what=f"update {update_id} delivered",
            )
        else:
            await eventually(lambda: self.fake.confirmed(update_id), what=f"update {update_id} polled")
        await self.channel.drain(grace=10)


BotFactory = Callable[..., Any]


def telegram_settings(
    base: Settings,
    fake: FakeTelegram,
    *,
    tmp_path: Path,
    telegram: dict[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    """The test settings with Telegram on (token + base URL of the fake), fast rates unless overridden."""
    overrides: dict[str, Any] = {
        "telegram": {"base_url": fake.base_url, "poll_timeout": 1, **(telegram or {})},
        "notifications": {"rates": {"telegram_global": 1000, "telegram_per_chat": 1000, "whatsapp": 1}},
    }
    if "notifications" not in sections and not (telegram or {}).get("staff_group_id"):
        # Channel tests need no scheduler; its job-store thread only slows their shutdown under load.
        overrides["notifications"] = {**overrides["notifications"], "enabled": False}
    overrides.update(sections)
    return build_settings(
        database_url=base.database.url,
        nlu_model_dir=base.nlu.model_dir,
        media_dir=tmp_path / "media",
        environ={"TELEGRAM_BOT_TOKEN": fake.token},
        **overrides,
    )


@pytest.fixture
def serve_telegram_bot(
    settings: Settings, fake_telegram: FakeTelegram, nlu_parser: Any, tmp_path: Path
) -> Callable[..., Any]:
    """``async with serve_telegram_bot(mode="polling"|"webhook", **sections) as bot:`` over real HTTP."""

    @asynccontextmanager
    async def serve_bot(
        *, mode: str = "polling", telegram: dict[str, Any] | None = None, **sections: Any
    ) -> AsyncIterator[TelegramBot]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"  # known before the app: the webhook URL points here
        telegram = dict(telegram or {})
        if mode == "webhook":
            telegram.setdefault("webhook_url", f"{url}/webhooks/telegram")
            telegram.setdefault("webhook_secret", "s3cret-token_for-tests")
        bot_settings = telegram_settings(
            settings, fake_telegram, tmp_path=tmp_path, telegram=telegram, **sections
        )
        rt = await build_runtime(bot_settings, parser=nlu_parser)
        try:
            async with serve(create_app(bot_settings, runtime=rt), port=port):
                await start_runtime(rt)
                channel = rt.channels[Channel.TELEGRAM]
                assert isinstance(channel, TelegramChannel)
                await asyncio.wait_for(channel.ready.wait(), timeout=10)
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    yield TelegramBot(fake_telegram, rt, channel, client, url)
        finally:
            await close_runtime(rt)

    return serve_bot
