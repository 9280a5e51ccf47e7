"""Residents' rights (UU No. 27/2022): "data saya" shows what is stored, "hapus data saya" erases it.

Conversations run through the real runtime (NLU, engine, dispatcher, database); the commands are
matched before the NLU, so they work from any state, in both languages, by payload or by phrase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from flows.messages import Channel, IncomingMessage, Reply
from flows.privacy import asks_erasure, asks_my_data
from flows.texts import Texts
from integrations.base import reporter_ref
from storage import repositories as repo
from storage.backend_models import ComplaintEvent, ComplaintRecord, ComplaintSupporter
from storage.models import Conversation, Message, OutboxMessage, ProcessedMessage, Resident, Subscription
from tests.factories import incoming

TEXTS = Texts.load()


def said(lang: str, key: str, **params: object) -> str:
    return TEXTS.render(lang, key, **params)


def resumed(reply: Reply) -> bool:
    """True when ``reply`` is the engine's "back to where we were" (any of its wordings)."""
    return any(reply.text.startswith(v) for v in TEXTS.variants("id", "engine.resume"))


def my_data_heading(lang: str) -> str:
    """The first line of the "data saya" answer (it has no parameters)."""
    blanks = dict.fromkeys(TEXTS.placeholders(lang, "privacy.my_data"), "")
    return said(lang, "privacy.my_data", **blanks).split("\n")[0]


@dataclass
class Warga:
    """A resident on the web chat; ``say``/``press`` return the bot's replies."""

    rt: Runtime
    chat: str = "warga-1"
    channel: Channel = Channel.WEBCHAT
    heard: list[Reply] = field(default_factory=list)

    async def say(self, text: str) -> list[Reply]:
        return await self._send(incoming(text, chat_id=self.chat, channel=self.channel))

    async def press(self, payload: str) -> list[Reply]:
        return await self._send(incoming(None, chat_id=self.chat, channel=self.channel, payload=payload))

    async def _send(self, msg: IncomingMessage) -> list[Reply]:
        result = await self.rt.dispatcher.handle(msg)
        self.heard = list(result.replies)
        return self.heard


@pytest.mark.parametrize(
    ("text", "erase", "my_data"),
    [
        ("hapus data saya", True, False),
        ("Hapus data saya!", True, False),
        ("tolong hapus data saya dong", True, False),
        ("hapus akun", True, False),
        ("hapus semua data saya", True, False),
        ("/hapusdata", True, False),
        ("delete my data", True, False),
        ("Please delete my account", True, False),
        ("data saya", False, True),
        ("lihat data saya", False, True),
        ("my data", False, True),
        ("/datasaya", False, True),
        ("What data do you have about me?", False, True),
        ("data saya di KTP salah, gimana?", False, False),
        ("hapus data saya di KK karena pindah", False, False),
        ("syarat bikin KTP", False, False),
        ("", False, False),
    ],
)
def test_phrase_rules_match_only_the_request_itself(text: str, erase: bool, my_data: bool) -> None:
    msg = incoming(text)
    assert (asks_erasure(msg), asks_my_data(msg)) == (erase, my_data)


def test_payloads_are_commands_whatever_the_text() -> None:
    assert asks_erasure(incoming("/hapusdata", payload="/erase_data"))
    assert asks_my_data(incoming(None, payload="/my_data"))
    assert not asks_erasure(incoming("hapus data saya", payload="/affirm"))


async def test_data_saya_lists_what_is_stored(runtime: Runtime) -> None:
    warga = Warga(runtime)
    await warga.say("halo")
    await warga.say("syarat bikin KTP apa saja?")
    async with runtime.db.session() as session:
        resident = await repo.get_or_create_resident(session, channel="webchat", external_id=warga.chat)
        await repo.subscribe(session, resident_id=resident.id, topic="permit", ref="PBG-2026-00123")
        session.add(
            ComplaintRecord(
                local_ref="L-1",
                ticket="ADU-2026-000007",
                backend="local",
                category="road_damage",
                description="jalan berlubang",
                reporter=reporter_ref(resident.id),
                status="open",
            )
        )

    replies = await warga.say("data saya")

    assert len(replies) == 1
    text = replies[0].text
    assert text == said(
        "id",
        "privacy.my_data",
        channel=said("id", "privacy.channel_webchat"),
        language=said("id", "privacy.language_id"),
        source=said("id", "privacy.nothing"),
        consent=said("id", "privacy.consent_none"),
        since=datetime.now(UTC).astimezone(runtime.dispatcher.timezone).date().isoformat(),
        subscriptions="PBG-2026-00123",
        complaints=f"ADU-2026-000007 ({said('id', 'privacy.status_open')})",
        messages=5,  # two questions, two answers, and "data saya" itself
        days=180,
    )
    assert [b.payload for b in replies[0].buttons] == ["/erase_data"]


async def test_my_data_in_english_by_payload(runtime: Runtime) -> None:
    warga = Warga(runtime)
    await warga.say("english please")
    replies = await warga.press("/my_data")
    assert replies[0].text.startswith(my_data_heading("en"))
    assert said("en", "privacy.nothing") in replies[0].text


async def test_hapus_data_saya_asks_first_and_no_keeps_everything(runtime: Runtime) -> None:
    warga = Warga(runtime)
    await warga.say("halo")
    asked = await warga.say("hapus data saya")
    assert [r.text for r in asked] == [said("id", "privacy.erase_ask")]
    assert [(b.title, b.payload) for b in asked[0].buttons] == [
        (said("id", "privacy.erase_yes"), "/affirm"),
        (said("id", "privacy.erase_no"), "/deny"),
    ]

    kept = await warga.press("/deny")

    assert [r.text for r in kept] == [said("id", "privacy.erase_kept")]
    async with runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=warga.chat)
        assert conversation is not None
        assert await repo.count_messages(session, conversation_id=conversation.id) == 6


async def test_erasure_deletes_transcript_and_anonymises_the_rest(runtime: Runtime) -> None:
    warga = Warga(runtime)
    await warga.say("halo, NIK saya 6171015508900003, hp 081234567890")
    async with runtime.db.session() as session:
        resident = await repo.get_or_create_resident(session, channel="webchat", external_id=warga.chat)
        resident_id = resident.id
        resident.display_name = "Budi"
        resident.source = "cfd"
        await repo.subscribe(session, resident_id=resident_id, topic="announcements", ref="*")
        await repo.enqueue_outbox(
            session, resident=resident, kind="notification", body={"text": "kabar"}, idempotency_key="k1"
        )
        complaint = ComplaintRecord(
            local_ref="L-9",
            ticket="ADU-2026-000009",
            backend="local",
            category="garbage",
            description="sampah menumpuk, hubungi saya 081234567890 NIK 6171015508900003",
            reporter=reporter_ref(resident_id),
            status="open",
            lat=-0.03,
            lon=109.33,
        )
        session.add(complaint)
        await session.flush()
        session.add(ComplaintEvent(complaint_id=complaint.id, to_status="open", actor="bot"))
        session.add(ComplaintSupporter(complaint_id=complaint.id, reporter=reporter_ref(resident_id)))

    await warga.say("hapus data saya")
    done = await warga.press("/affirm")

    assert [r.text for r in done] == [said("id", "privacy.erased")]
    async with runtime.db.session() as session:
        erased = await session.get(Resident, resident_id)
        assert erased is not None
        assert erased.erased_at is not None
        assert erased.external_id.startswith("erased:") and warga.chat not in erased.external_id
        assert (erased.display_name, erased.source, erased.last_inbound_at) == (None, None, None)
        texts = (await session.execute(select(Message.text))).scalars().all()
        assert texts == [said("id", "privacy.erased")]  # only the goodbye of this very turn
        assert (await session.execute(select(func.count()).select_from(Subscription))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 0
        responses = (await session.execute(select(ProcessedMessage.response))).scalars().all()
        assert all("6171015508900003" not in str(r) for r in responses)
        kept = (await session.execute(select(ComplaintRecord))).scalar_one()
        assert (kept.ticket, kept.category, kept.status, kept.lat, kept.lon) == (
            "ADU-2026-000009",
            "garbage",
            "open",
            -0.03,
            109.33,
        )
        assert kept.reporter is None
        assert "081234567890" not in kept.description and "6171015508900003" not in kept.description
        assert kept.description.startswith("sampah menumpuk")
        assert (await session.execute(select(func.count()).select_from(ComplaintEvent))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(ComplaintSupporter))).scalar_one() == 0
        conversation = (
            await session.execute(select(Conversation).where(Conversation.resident_id == resident_id))
        ).scalar_one()
        assert (conversation.state, conversation.slots) == (None, {})

    # The same chat writing again is a new, empty resident.
    await warga.say("halo")
    async with runtime.db.session() as session:
        again = await repo.get_or_create_resident(session, channel="webchat", external_id=warga.chat)
        assert again.id != resident_id
        assert (
            await repo.count_messages(
                session, conversation_id=(await repo.get_or_create_conversation(session, resident=again)).id
            )
            == 2
        )


async def test_rights_interrupt_a_flow_which_then_resumes(runtime: Runtime) -> None:
    warga = Warga(runtime)
    first = await warga.say("saya mau berlangganan kabar")
    assert first
    async with runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=warga.chat)
        assert conversation is not None
        waiting = conversation.state
    assert waiting == "subscriptions.ask_ref"

    shown = await warga.say("data saya")

    assert shown[0].text.startswith(my_data_heading("id"))
    assert resumed(shown[-1])
    async with runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=warga.chat)
        assert conversation is not None and conversation.state == waiting

    await warga.say("hapus data saya")
    kept = await warga.press("/deny")
    assert kept[0].text == said("id", "privacy.erase_kept")
    assert resumed(kept[-1])


async def test_erasure_command_beats_the_global_cancel(runtime: Runtime) -> None:
    """ "hapus" alone may look like "batal" to a classifier; the command rule decides first."""
    warga = Warga(runtime)
    replies = await warga.say("hapus akun saya")
    assert replies[0].text == said("id", "privacy.erase_ask")
