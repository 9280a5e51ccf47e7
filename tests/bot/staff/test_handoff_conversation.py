"""Handoff conversations over the web chat API, with staff answering through the JSON API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select

from bot.privacy import mask_text
from flows.handoff import EMERGENCY_STAFF_PAYLOAD, HandoffState, closing_replies, staff_message_text
from flows.messages import Channel
from storage.models import Conversation, OutboxMessage
from storage.staff_models import AuditEntry, Handoff, Rating
from tests.bot.staff.conftest import HOURS_ID, SATURDAY_EVENING, TEXTS, Clock, Resident, texts_of
from tests.conftest import LiveServer
from tests.factories import incoming


async def only_handoff(api: httpx.AsyncClient) -> dict:
    response = await api.get("/api/staff/handoffs")
    assert response.status_code == 200, response.text
    handoffs = response.json()["handoffs"]
    assert len(handoffs) == 1
    return handoffs[0]


async def test_resident_asks_for_staff_gets_a_reply_in_the_web_chat_and_rates_it(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-1")

    told = await warga.say("mau bicara dengan petugas")
    kept = await warga.say("Pak, KTP saya hilang, nomor saya 081234567890")
    handoff = await only_handoff(api)
    sent = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/reply",
        json={
            "text": "Baik Kak, silakan datang ke Disdukcapil dengan surat kehilangan.",
            "idempotency_key": "r1",
        },
    )
    repeated = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/reply",
        json={
            "text": "Baik Kak, silakan datang ke Disdukcapil dengan surat kehilangan.",
            "idempotency_key": "r1",
        },
    )
    staff_events = await warga.new_events()
    closed = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/close", json={"note": "Dijelaskan syaratnya."}
    )
    rating_events = await warga.new_events()
    thanks = await warga.press('/rate{"score": 5}')
    back_to_bot = await warga.say("halo")

    assert texts_of(told) == [TEXTS.render("id", "handoff.connecting_open", hours=HOURS_ID)]
    assert kept == []
    assert handoff["reason"] == "requested"
    assert handoff["last_message"] == mask_text("Pak, KTP saya hilang, nomor saya 081234567890")
    assert "081234567890" not in handoff["last_message"]
    assert sent.status_code == 200 and sent.json()["duplicate"] is False
    assert repeated.json() == {"ok": True, "message_id": None, "duplicate": True}
    assert [(e["kind"], e["text"]) for e in staff_events] == [
        (
            "staff",
            staff_message_text(
                TEXTS,
                "id",
                staff_name="api-token",
                text="Baik Kak, silakan datang ke Disdukcapil dengan surat kehilangan.",
            ),
        )
    ]
    assert closed.status_code == 200
    expected_closing = closing_replies(TEXTS, "id")
    assert [(e["kind"], e["text"]) for e in rating_events] == [("push", r.text) for r in expected_closing]
    assert [b["payload"] for b in rating_events[-1]["buttons"]] == [
        f'/rate{{"score": {n}}}' for n in range(1, 6)
    ]
    assert texts_of(thanks) == [TEXTS.render("id", "handoff.rating_thanks")]
    assert back_to_bot, "the bot answers again once the handoff is over"
    async with live_server.runtime.db.session() as session:
        ratings = (await session.execute(select(Rating.score))).scalars().all()
        outbox = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all()
        stored = (await session.execute(select(Handoff))).scalar_one()
        actions = (await session.execute(select(AuditEntry.who, AuditEntry.what))).all()
    assert ratings == [5]
    assert [(o.kind, o.status, o.idempotency_key) for o in outbox] == [
        ("staff", "sent", f"staff:{handoff['id']}:r1"),
        ("system", "sent", f"handoff:{handoff['id']}:closed:0"),
        ("system", "sent", f"handoff:{handoff['id']}:closed:1"),
    ]
    assert (stored.closed_by, stored.close_note, stored.first_reply_at is not None) == (
        "api-token",
        "Dijelaskan syaratnya.",
        True,
    )
    assert actions == [("api-token", "handoff.reply"), ("api-token", "handoff.close")]


async def test_outside_staff_hours_the_resident_is_told_when_a_person_answers(
    resident: Callable[[str], Resident], clock: Clock
) -> None:
    clock.now = SATURDAY_EVENING
    warga = resident("warga-2")

    told = await warga.say("mau bicara dengan petugas")

    when = TEXTS.render("id", "handoff.when_date", day="Senin", date="23 November", time="07.30")
    assert texts_of(told) == [TEXTS.render("id", "handoff.connecting_closed", hours=HOURS_ID, when=when)]


async def test_on_a_weekday_evening_the_answer_comes_tomorrow(
    resident: Callable[[str], Resident], clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=19)
    warga = resident("warga-3")

    told = await warga.say("mau bicara dengan petugas")

    when = TEXTS.render("id", "handoff.when_tomorrow", time="07.30")
    assert texts_of(told) == [TEXTS.render("id", "handoff.connecting_closed", hours=HOURS_ID, when=when)]


async def test_batal_ends_the_handoff_at_the_residents_request(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-4")
    await warga.say("mau bicara dengan petugas")

    for_staff = [
        await warga.say("tolong bantu saya"),
        await warga.say("saya mau batal pindah alamat, bagaimana pak?"),
    ]
    left = await warga.say("batal")
    answered_again = await warga.say("halo")
    queue = await api.get("/api/staff/handoffs")

    assert for_staff == [[], []], "help-like or long messages are meant for the staff"
    assert texts_of(left)[0].startswith(TEXTS.render("id", "handoff.ended_by_resident"))
    assert answered_again
    assert queue.json() == {"handoffs": []}
    async with live_server.runtime.db.session() as session:
        handoff = (await session.execute(select(Handoff))).scalar_one()
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert (handoff.closed_by, conversation.status) == ("resident", "bot")


async def test_repeated_misunderstanding_offers_a_person_and_yes_hands_off(
    api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-5")

    first = await warga.say("???")
    offered = await warga.say("🤔")
    accepted = await warga.press("/affirm", "🙋 Ya, sambungkan")
    silent = await warga.say("tolong bantu saya")

    assert texts_of(first) != texts_of(offered)
    assert texts_of(offered) == [TEXTS.render("id", "handoff.offer")]
    assert [b["payload"] for b in offered[0]["buttons"]] == ["/affirm", "/deny"]
    assert texts_of(accepted) == [TEXTS.render("id", "handoff.connecting_open", hours=HOURS_ID)]
    assert silent == []
    assert (await only_handoff(api))["reason"] == "fallback"


async def test_declining_the_offer_shows_the_menu(resident: Callable[[str], Resident], clock: Clock) -> None:
    warga = resident("warga-6")
    await warga.say("???")
    await warga.say("🤔")

    declined = await warga.press("/deny", "📋 Tidak, lihat menu")

    assert texts_of(declined)[0].startswith(TEXTS.render("id", "handoff.offer_declined"))
    assert declined[0]["buttons"], "the menu comes with the answer"


async def test_an_emergency_offers_a_person_and_that_handoff_is_urgent(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    clock.now = SATURDAY_EVENING
    warga = resident("warga-7")

    emergency = await warga.say("tolong ada kebakaran di rumah tetangga")
    payloads = [b["payload"] for r in emergency for b in r["buttons"]]
    handed = await warga.press(EMERGENCY_STAFF_PAYLOAD, "🙋 Hubungkan ke petugas")
    again = await warga.say("ada kebakaran, apinya besar")

    assert EMERGENCY_STAFF_PAYLOAD in payloads
    assert "⚠️" in texts_of(handed)[-1], "outside hours an emergency handoff repeats the numbers"
    assert again, "an emergency is answered at once even while a person has the conversation"
    assert "113" in "\n".join(texts_of(again))
    handoff = await only_handoff(api)
    assert (handoff["reason"], handoff["urgent"]) == ("emergency", True)
    async with live_server.runtime.db.session() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert (conversation.status, conversation.state) == ("handoff", HandoffState.ACTIVE)


async def test_a_staff_reply_to_a_telegram_resident_waits_in_the_outbox_once(
    live_server: LiveServer, api: httpx.AsyncClient, clock: Clock
) -> None:
    rt = live_server.runtime
    await rt.dispatcher.handle(
        incoming("mau bicara dengan petugas", chat_id="tg-42", channel=Channel.TELEGRAM)
    )
    silent = await rt.dispatcher.handle(incoming("halo?", chat_id="tg-42", channel=Channel.TELEGRAM))
    handoff = await only_handoff(api)

    for _ in range(2):
        await api.post(
            f"/api/staff/handoffs/{handoff['id']}/reply", json={"text": "Halo Kak!", "idempotency_key": "k-1"}
        )

    assert silent.replies == ()
    async with rt.db.session() as session:
        outbox = (await session.execute(select(OutboxMessage))).scalars().all()
    assert [(o.channel, o.chat_id, o.kind, o.status, o.body["text"]) for o in outbox] == [
        (
            "telegram",
            "tg-42",
            "staff",
            "pending",
            staff_message_text(TEXTS, "id", staff_name="api-token", text="Halo Kak!"),
        )
    ]
