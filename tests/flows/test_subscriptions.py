"""Subscribing to updates and stopping them: a resident's conversations over the web chat API."""

from __future__ import annotations

from integrations.base import ComplaintReport, reporter_ref
from storage import repositories as repo
from tests.flows.conftest import one_of, payloads, say, text_of

ANNOUNCEMENTS = '/subscribe_updates{"topic": "announcements"}'


async def _subscriptions(server, session_id: str) -> list[tuple[str, str, str | None]]:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        rows = await repo.subscriptions_of(session, resident_id=conversation.resident_id)
        return [(row.topic, row.ref, row.last_status) for row in rows]


async def _resident_id(server, session_id: str) -> int:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return conversation.resident_id


async def test_subscribe_to_a_permit_after_being_asked_then_stop(chat, live_server) -> None:
    resident = chat("sub-1")

    asked = await resident.say("kabari saya kalau izinnya selesai")
    assert text_of(asked) == say("subscriptions.ask")[0]
    assert payloads(asked) == [ANNOUNCEMENTS]

    wrong = await resident.say("izin saya yang kemarin itu")
    assert text_of(wrong) == say("subscriptions.ask_again")[0]

    done = await resident.say("PBG-2026-00123")
    assert text_of(done) == say("subscriptions.subscribed", item="izin PBG-2026-00123")[0]
    assert await _subscriptions(live_server, "sub-1") == [("permit", "PBG-2026-00123", "survei_lapangan")]

    stopped = await resident.say("BERHENTI")
    assert text_of(stopped) == say("subscriptions.stopped", items="• izin PBG-2026-00123")[0]
    assert await _subscriptions(live_server, "sub-1") == []

    again = await resident.say("STOP")
    assert text_of(again) == say("subscriptions.none_active")[0]


async def test_an_unknown_permit_is_refused_and_announcements_can_be_chosen(chat, live_server) -> None:
    resident = chat("sub-2")

    unknown = await resident.say("kabari saya soal PBG-2026-99999")
    assert say("subscriptions.permit_not_found", ref="PBG-2026-99999")[0] in text_of(unknown)
    assert ANNOUNCEMENTS in payloads(unknown)

    done = await resident.press(ANNOUNCEMENTS)
    assert (
        text_of(done) == say("subscriptions.subscribed_announcements", item="pengumuman Pemkot Pontianak")[0]
    )
    assert await _subscriptions(live_server, "sub-2") == [("announcements", "*", None)]


async def test_the_last_permit_discussed_is_used_without_asking(chat, live_server) -> None:
    resident = chat("sub-3")
    await resident.say("halo")
    async with live_server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id="sub-3")
        conversation.slots = {**(conversation.slots or {}), "last_permit": "PBG-2026-00124"}

    done = await resident.say("kabari saya ya")

    assert text_of(done) == say("subscriptions.subscribed", item="izin PBG-2026-00124")[0]
    assert await _subscriptions(live_server, "sub-3") == [("permit", "PBG-2026-00124", "diterima")]


async def test_only_the_reporter_can_follow_a_complaint(chat, live_server) -> None:
    owner, stranger = chat("sub-4"), chat("sub-5")
    await owner.say("halo")
    await stranger.say("halo")
    filing = await live_server.runtime.dispatcher.complaints.file(
        ComplaintReport(
            category="street_light",
            description="Lampu jalan mati di Jl. Gajah Mada",
            reporter=reporter_ref(await _resident_id(live_server, "sub-4")),
            local_ref="REF-TESTSUB1",
        )
    )
    ticket = filing.ticket
    assert ticket is not None

    await stranger.say("kabari saya")
    refused = await stranger.say(ticket)
    assert say("subscriptions.ticket_not_found", ref=ticket)[0] in text_of(refused)
    assert await _subscriptions(live_server, "sub-5") == []

    await owner.say("kabari saya")
    done = await owner.say(ticket)
    assert text_of(done) == say("subscriptions.subscribed", item=f"laporan {ticket}")[0]
    assert [topic for topic, _, _ in await _subscriptions(live_server, "sub-4")] == ["complaint"]


async def test_two_non_answers_close_the_question_and_cancel_works(chat) -> None:
    resident = chat("sub-6")
    await resident.say("saya mau berlangganan info")
    again = await resident.say("hmm")
    assert text_of(again) == say("subscriptions.ask_again")[0]
    closed = await resident.say("entahlah")
    assert closed[0]["text"] in say("engine.closed", flow=say("flow_title.subscriptions")[0])

    await resident.say("kabari saya")
    cancelled = await resident.say("batal")
    assert text_of(cancelled).startswith(say("cancel.done")[0])


async def _opted_out(server, session_id: str) -> bool:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return bool(conversation.resident.opted_out)


async def test_berhenti_opts_out_in_the_middle_of_a_question_and_the_question_comes_back(
    chat, live_server
) -> None:
    resident = chat("sub-9")
    await resident.press(ANNOUNCEMENTS)
    await resident.say("hapus data saya")  # a question that takes any answer: "really erase?"

    stopped = await resident.say("BERHENTI")

    items = "• " + say("subscriptions.item_announcements")[0]
    assert stopped[0]["text"] == say("subscriptions.stopped", items=items)[0]
    assert one_of("privacy.erase_ask")(stopped[-1]["text"]), "the pending question is asked again"
    assert await _subscriptions(live_server, "sub-9") == []
    assert await _opted_out(live_server, "sub-9") is True


async def test_stop_while_describing_a_complaint_opts_out_and_the_complaint_resumes(
    chat, live_server
) -> None:
    resident = chat("sub-10")
    await resident.say("mau lapor jalan rusak")

    stopped = await resident.say("STOP")

    assert stopped[0]["text"] == say("subscriptions.none_active")[0]
    assert len(stopped) == 2, "then the complaint's question again"
    assert await _opted_out(live_server, "sub-10") is True
