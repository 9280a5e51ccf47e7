"""Acceptance: a resident subscribes, `pontibot demo advance` moves the permit, exactly one message arrives.

Telegram: the whole way through the bot — the resident subscribes in the Telegram conversation (fake Bot
API), the CLI advances the demo permit in a subprocess, the running server's scheduler notices and its
dispatcher sends. WhatsApp (fake Twilio): the resident last wrote 25 hours ago, so the approved template
goes out; that resident is subscribed through the repository (the WhatsApp conversation itself is
covered by the channel's tests). "BERHENTI" alone opts out end to end.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.notifications.changes import permit_notice
from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime, start_runtime
from integrations.base import PermitStage
from storage import repositories as repo
from storage.models import OutboxMessage, Resident, Subscription
from tests.bot.notifications.conftest import FAST, TEXTS, permits_cursor, text_update
from tests.conftest import REPO
from tests.support import eventually, nothing_arrives
from tests.support.fake_twilio import SANDBOX_FROM, FakeTwilio

PERMIT = "PBG-2026-00124"
CHAT = 555000111
PERMIT_TEMPLATE = "HX" + "c3" * 16
WHATSAPP_RESIDENT = "whatsapp:+6281298765432"


async def demo_advance(database_url: str, number: str) -> str:
    """`pontibot demo advance NUMBER` in a subprocess on the test's database."""
    env = {**os.environ, "PONTIBOT_DATABASE__URL": database_url}
    env.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pontibot"),
        "demo",
        "advance",
        number,
        "--config",
        str(REPO / "config.yml"),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_telegram_resident_subscribes_and_gets_exactly_one_message_then_berhenti_stops_them(
    serve_telegram_bot: Any, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        # In the fresh-clone full SQLite suite only, the loop's teardown after a scheduler running the
        # fast jobs hung on a job's connection close (see test_scheduler.py); CI runs it on PostgreSQL.
        pytest.skip(
            "scheduler teardown hang on SQLite under investigation: runs on PostgreSQL (make test-pg)"
        )
    async with serve_telegram_bot(notifications=FAST) as bot:
        said = bot.fake.push_update(
            text_update("kabari saya kalau izin PBG-2026-00124 ada perkembangan", update_id=9001)
        )
        await bot.settle(said)
        confirmation = [c.params["text"] for c in bot.fake.sent(CHAT)]

        moved = await demo_advance(database_url, PERMIT)
        permit = await bot.runtime.backends.permits.get(PERMIT)
        assert permit is not None
        expected = permit_notice(TEXTS, "id", permit)
        assert expected is not None
        await bot.fake.wait_sent(len(confirmation) + 1, chat_id=CHAT, timeout=15)
        await nothing_arrives(  # several more polls and outbox sweeps: nothing else may come
            lambda: bot.fake.sent(CHAT)[len(confirmation) + 1 :], within=1.0
        )
        after_advance = [c.params["text"] for c in bot.fake.sent(CHAT)][len(confirmation) :]

        stop = bot.fake.push_update(text_update("BERHENTI", update_id=9002))
        await bot.settle(stop)
        stopped_reply = [c.params["text"] for c in bot.fake.sent(CHAT)][len(confirmation) + 1 :]
        async with bot.runtime.db.session() as session:
            resident = (await session.execute(select(Resident))).scalar_one()
            active = (await session.execute(select(Subscription.active))).scalars().all()
        await bot.runtime.backends.demo_permits.advance(PERMIT)
        await nothing_arrives(
            lambda: bot.fake.sent(CHAT)[len(confirmation) + 1 + len(stopped_reply) :], within=1.0
        )
        after_stop = [c.params["text"] for c in bot.fake.sent(CHAT)][
            len(confirmation) + 1 + len(stopped_reply) :
        ]

    assert any(PERMIT in text for text in confirmation)
    assert moved == f"{PERMIT}: diterima -> verifikasi_berkas"
    assert after_advance == [expected.reply.text]
    [sent] = [c for c in bot.fake.sent(CHAT) if c.params["text"] == expected.reply.text]
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["text"] == TEXTS.render(
        "id", "notify.button_details"
    )
    assert stopped_reply and (resident.opted_out, active) == (True, [False])
    assert after_stop == []


def whatsapp_settings(make_settings: Callable[..., Settings], fake: FakeTwilio) -> Settings:
    return make_settings(
        environ={"TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token},
        twilio={
            "whatsapp_from": SANDBOX_FROM,
            "api_base_url": fake.base_url,
            "webhook_url": "https://pontibot.example/webhooks/whatsapp",
            "templates": {"permit_update": PERMIT_TEMPLATE},
            "messages_per_second": 100,
            "retry_backoff_seconds": 0.01,
        },
        notifications=FAST,
    )


async def test_whatsapp_resident_outside_the_24_hour_window_gets_the_approved_template(
    make_settings: Callable[..., Settings], fake_twilio: FakeTwilio, nlu_parser: Any
) -> None:
    rt = await build_runtime(whatsapp_settings(make_settings, fake_twilio), parser=nlu_parser)
    try:
        async with rt.db.session() as session:
            resident = await repo.get_or_create_resident(
                session, channel="whatsapp", external_id=WHATSAPP_RESIDENT
            )
            resident.last_inbound_at = datetime.now(UTC) - timedelta(hours=25)
            await repo.subscribe(
                session, resident_id=resident.id, topic="permit", ref=PERMIT, last_status="diterima"
            )
        await start_runtime(rt)
        assert rt.notifications is not None
        await asyncio.wait_for(rt.notifications.leading.wait(), timeout=10)
        await eventually(
            lambda: permits_cursor(rt), what="the first poll stores where the permit system stands"
        )

        await rt.backends.demo_permits.advance(PERMIT)  # type: ignore[union-attr]
        await fake_twilio.wait_sent(1, timeout=15)
        await nothing_arrives(lambda: fake_twilio.sent()[1:], within=1.0)
        sent = fake_twilio.sent()
        async with rt.db.session() as session:
            [row] = (await session.execute(select(OutboxMessage))).scalars().all()
    finally:
        await close_runtime(rt)

    [message] = sent
    assert (message.to, message.body, message.content_sid) == (WHATSAPP_RESIDENT, None, PERMIT_TEMPLATE)
    assert message.content_variables == {
        "1": PERMIT,
        "2": TEXTS.render("id", "notify.stage_label.verifikasi_berkas"),
    }
    assert (row.status, row.provider_message_id) == ("sent", message.sid)
    assert row.body["status"] == PermitStage.DOCUMENT_CHECK.value
