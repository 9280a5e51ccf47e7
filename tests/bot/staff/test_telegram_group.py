"""The Telegram staff group against the fake Bot API: a resident on Telegram asks for a person, a forum
topic opens with the conversation, the resident's next message is mirrored into it, a linked staff member
answers in the topic and the resident reads it, an unknown member is ignored, ``/selesai`` closes the
handoff (the resident is asked for a rating) and the topic."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from sqlalchemy import select

from flows.handoff import closing_replies, staff_message_text
from storage import staff_group_repository as staff_group_repo
from storage.staff_models import AuditEntry, Handoff, StaffGroupTopic
from tests.bot.channels.conftest import load_update
from tests.bot.staff.conftest import TEXTS, add_staff
from tests.support import eventually
from tests.support.fake_telegram import ApiCall, FakeTelegram

GROUP = -1001234567890
RESIDENT = 555000111
SARI_TG = 7001
STRANGER_TG = 7999


def resident_says(text: str, update_id: int) -> dict[str, Any]:
    update = load_update("text", update_id=update_id, chat_id=RESIDENT)
    update["message"]["text"] = text
    update["message"]["message_id"] = update_id
    return update


def in_topic(text: str, *, thread_id: int, user_id: int, update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 50_000 + update_id,
            "date": int(time.time()),
            "chat": {"id": GROUP, "type": "supergroup", "title": "Petugas Ponti", "is_forum": True},
            "from": {"id": user_id, "is_bot": False, "first_name": "Staf"},
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "text": text,
        },
    }


def topic_posts(fake: FakeTelegram, thread_id: int) -> list[str]:
    return [c.params["text"] for c in fake.sent(GROUP) if c.params.get("message_thread_id") == thread_id]


def to_resident(fake: FakeTelegram) -> list[str]:
    return [c.params["text"] for c in fake.sent(RESIDENT)]


async def test_a_handoff_is_worked_from_its_forum_topic(
    serve_telegram_bot: Any, fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = fake_telegram
    async with serve_telegram_bot(telegram={"staff_group_id": GROUP}) as bot:
        rt = bot.runtime
        await add_staff(rt, "sari", "agent", "Sari")
        async with rt.db.session() as session:
            await staff_group_repo.link_telegram(session, username="sari", telegram_user_id=str(SARI_TG))

        await bot.settle(fake.push_update(resident_says("mau bicara dengan petugas", 1)))
        [created] = await fake.wait_for("createForumTopic")
        thread = fake.topics(GROUP)[0]["message_thread_id"]
        header = (await eventually(lambda: topic_posts(fake, thread)))[0]

        await bot.settle(fake.push_update(resident_says("KTP saya hilang waktu banjir", 2)))
        await eventually(lambda: "👤 Warga: KTP saya hilang waktu banjir" in topic_posts(fake, thread))
        before = len(to_resident(fake))

        await bot.settle(
            fake.push_update(
                in_topic("Saya bukan petugas", thread_id=thread, user_id=STRANGER_TG, update_id=3)
            )
        )
        reply = "Halo Kak, surat kehilangan dari polisi dibawa ke Disdukcapil ya."
        await bot.settle(fake.push_update(in_topic(reply, thread_id=thread, user_id=SARI_TG, update_id=4)))
        shown = staff_message_text(TEXTS, "id", staff_name="Sari", text=reply)
        await eventually(lambda: shown in to_resident(fake))

        await bot.settle(
            fake.push_update(
                in_topic(
                    "/selesai dijelaskan syarat cetak ulang", thread_id=thread, user_id=SARI_TG, update_id=5
                )
            )
        )
        rating_question = closing_replies(TEXTS, "id")[-1].text
        await eventually(lambda: rating_question in to_resident(fake))
        await fake.wait_for("closeForumTopic")
        await eventually(lambda: any("ditutup oleh sari" in t for t in topic_posts(fake, thread)))

        async with rt.db.session() as session:
            handoff = (await session.execute(select(Handoff))).scalar_one()
            topic = (await session.execute(select(StaffGroupTopic))).scalar_one()
            audit = (
                await session.execute(select(AuditEntry.who, AuditEntry.what).order_by(AuditEntry.id))
            ).all()

    assert created.params["chat_id"] == GROUP and created.params["name"].startswith(
        f"#{handoff.id} Diminta warga"
    )
    assert f"/staff/handoffs/{handoff.id}" in header and "mau bicara dengan petugas" in header
    assert to_resident(fake)[before:] == [shown, *[r.text for r in closing_replies(TEXTS, "id")]]
    assert "Saya bukan petugas" not in " ".join(to_resident(fake))
    assert [r.getMessage() for r in caplog.records if "unlinked member" in r.getMessage()] == [
        "staff group: message from unlinked member … ignored (pontibot staff link-telegram)"
    ]
    assert (handoff.closed_by, handoff.close_note) == ("sari", "dijelaskan syarat cetak ulang")
    assert topic.closed_at is not None and topic.thread_id == thread
    assert ("sari", "handoff.reply") in audit and ("sari", "handoff.close") in audit
    assert not any(p.startswith("🧑‍💼") for p in topic_posts(fake, thread))  # her own words not echoed back


def test_the_fake_still_answers_private_sends_as_before(fake_telegram: FakeTelegram) -> None:
    """The forum additions keep the old shape of private messages (chat type, no thread)."""
    status, body = fake_telegram.handle("sendMessage", {"chat_id": RESIDENT, "text": "halo"})
    assert status == 200 and body["result"]["chat"] == {"id": RESIDENT, "type": "private"}
    assert "message_thread_id" not in body["result"]
    assert isinstance(fake_telegram.calls(), list) and ApiCall
