"""Notification fixtures: a runtime whose Telegram talks to the fake Bot API, a clock to move, residents."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.notifications.outbox import OutboxDispatcher
from bot.runtime import Runtime
from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime
from flows.messages import Reply
from flows.texts import Texts
from storage import repositories as repo
from storage.models import Resident
from storage.outbox import get_cursor
from tests.bot.channels.conftest import load_update, serve_telegram_bot, telegram_settings
from tests.support.fake_telegram import FakeTelegram

__all__ = ["serve_telegram_bot"]  # a fixture shared with the channel tests

WIB = ZoneInfo("Asia/Pontianak")
TEXTS = Texts.load()
# Fast and always outside quiet hours unless a test says otherwise.
FAST = {
    "quiet_hours": "",
    "rates": {"telegram_global": 1000, "telegram_per_chat": 1000, "whatsapp": 100},
    "poll_interval_seconds": 0.3,
    "dispatch_interval_seconds": 0.2,
    "backoff_base_seconds": 1.0,
    "claim_lease_seconds": 3.0,
    "leader_retry_seconds": 0.2,
    "max_attempts": 3,
}


class Clock:
    """A clock tests move by hand (aware UTC)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)

    def set_wib(self, hour: int, minute: int = 0) -> None:
        local = self.at.astimezone(WIB).replace(hour=hour, minute=minute, second=0, microsecond=0)
        self.at = local.astimezone(UTC)


@pytest.fixture
def clock() -> Clock:
    """Noon WIB on a weekday."""
    return Clock(datetime(2026, 3, 4, 5, 0, tzinfo=UTC))


def text_update(text: str, *, chat_id: int = 555000111, update_id: int) -> dict[str, Any]:
    """A recorded Telegram text update carrying ``text``."""
    update = load_update("text", update_id=update_id, chat_id=chat_id)
    update = copy.deepcopy(update)
    update["message"]["text"] = text
    update["message"]["message_id"] = update_id
    return update


@dataclass
class Bench:
    """A runtime with Telegram on (fake Bot API) and a dispatcher on a hand-moved clock."""

    rt: Runtime
    fake: FakeTelegram
    clock: Clock
    dispatcher: OutboxDispatcher

    async def resident(
        self, chat_id: str = "555000111", *, channel: str = "telegram", language: str = "id"
    ) -> Resident:
        async with self.rt.db.session() as session:
            return await repo.get_or_create_resident(
                session, channel=channel, external_id=chat_id, language=language
            )

    async def queue(
        self,
        resident: Resident,
        text: str,
        *,
        key: str,
        kind: str = "notification",
        urgent: bool = False,
        **body: Any,
    ) -> None:
        async with self.rt.db.session() as session:
            await repo.enqueue_outbox(
                session,
                resident=resident,
                kind=kind,
                body={**Reply(text).to_dict(), **body},
                idempotency_key=key,
                urgent=urgent,
                not_before=self.clock(),
            )


async def permits_cursor(rt: Runtime) -> bool:
    """True once the scheduler's first permit poll stored where the permit system stands."""
    async with rt.db.session() as session:
        return await get_cursor(session, source="permits") is not None


def notify_settings(base: Settings, fake: FakeTelegram, tmp_path: Path, **notifications: Any) -> Settings:
    """Test settings with Telegram on and the fast notification settings (plus ``notifications``)."""
    return telegram_settings(base, fake, tmp_path=tmp_path, notifications={**FAST, **notifications})


@pytest.fixture
def notifications_overrides() -> dict[str, Any]:
    """Per-test changes to ``notifications`` (parametrize or override the fixture)."""
    return {}


@pytest.fixture
async def bench(
    settings: Settings,
    fake_telegram: FakeTelegram,
    nlu_parser: Any,
    tmp_path: Path,
    clock: Clock,
    notifications_overrides: dict[str, Any],
) -> AsyncIterator[Bench]:
    """A runtime (not started: no scheduler) and an outbox dispatcher driven by the test."""
    bot_settings = notify_settings(settings, fake_telegram, tmp_path, **notifications_overrides)
    rt = await build_runtime(bot_settings, parser=nlu_parser)
    dispatcher = OutboxDispatcher(
        db=rt.db, channels=rt.channels, settings=bot_settings.notifications, clock=clock
    )
    try:
        yield Bench(rt, fake_telegram, clock, dispatcher)
    finally:
        await dispatcher.stop(grace=1)
        await close_runtime(rt)
