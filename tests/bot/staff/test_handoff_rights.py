"""A resident's rights work while a person has the conversation: opt-out and erasure are no conversation.

Found by the security review (issue 16): "BERHENTI" during a handoff was kept for the staff and the
bot stayed silent, so the resident kept getting notifications; "hapus data saya" was swallowed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select

from flows.handoff import HandoffState
from storage import repositories as repo
from storage.models import Conversation
from storage.models import Resident as ResidentRow
from tests.bot.staff.conftest import TEXTS, Clock, Resident, resident_id_of_session, texts_of
from tests.conftest import LiveServer

ANNOUNCEMENTS = '/subscribe_updates{"topic": "announcements"}'


def back_to_staff(text: str) -> bool:
    """True for the "back to where we were" line telling the resident a person still has the chat."""
    still = TEXTS.render("id", "handoff.still_connected")
    return any(text == f"{lead}\n\n{still}" for lead in TEXTS.variants("id", "engine.resume"))


async def handed_off(warga: Resident, api: httpx.AsyncClient) -> int:
    """Hand the resident's conversation to a person; the handoff's id."""
    await warga.say("mau bicara dengan petugas")
    response = await api.get("/api/staff/handoffs")
    (handoff,) = response.json()["handoffs"]
    return int(handoff["id"])


async def test_berhenti_during_a_handoff_opts_out_is_confirmed_and_staff_see_it(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    rt = live_server.runtime
    warga = resident("warga-h1")
    await warga.press(ANNOUNCEMENTS)
    handoff_id = await handed_off(warga, api)

    stopped = await warga.say("BERHENTI")
    for_staff = await warga.say("Pak, KTP saya hilang")

    items = "• " + TEXTS.render("id", "subscriptions.item_announcements")
    assert texts_of(stopped)[0] == TEXTS.render("id", "subscriptions.stopped", items=items)
    assert back_to_staff(texts_of(stopped)[1]) and len(stopped) == 2
    assert for_staff == [], "the bot is silent again: a person still has the conversation"
    resident_id = await resident_id_of_session(rt, "warga-h1")
    async with rt.db.session() as session:
        opted_out = (await session.get(ResidentRow, resident_id)).opted_out  # type: ignore[union-attr]
        active = await repo.subscriptions_of(session, resident_id=resident_id)
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert (opted_out, active) == (True, [])
    assert (conversation.status, conversation.state) == ("handoff", HandoffState.ACTIVE)
    detail = (await api.get(f"/api/staff/handoffs/{handoff_id}")).json()
    assert detail["closed_by"] is None
    lines = [(line["direction"], line["text"]) for line in detail["transcript"]]
    assert ("in", "BERHENTI") in lines
    assert ("out", texts_of(stopped)[0]) in lines


async def test_the_stop_button_and_stop_work_during_a_handoff(
    api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-h2")
    await handed_off(warga, api)

    pressed = await warga.press("/unsubscribe", "🔕 Berhenti")
    typed = await warga.say("stop")

    for replies in (pressed, typed):
        assert texts_of(replies)[0] == TEXTS.render("id", "subscriptions.none_active")
        assert back_to_staff(texts_of(replies)[1]) and len(replies) == 2


async def test_erasure_during_a_handoff_is_asked_and_done(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    rt = live_server.runtime
    warga = resident("warga-h3")
    await handed_off(warga, api)
    resident_id = await resident_id_of_session(rt, "warga-h3")

    asked = await warga.say("hapus data saya")
    done = await warga.press("/affirm", "Ya, hapus")

    assert texts_of(asked) == [TEXTS.render("id", "privacy.erase_ask")]
    assert texts_of(done) == [TEXTS.render("id", "privacy.erased")]
    async with rt.db.session() as session:
        erased = await session.get(ResidentRow, resident_id)
    assert erased is not None and erased.erased_at is not None


async def test_keeping_the_data_during_a_handoff_goes_back_to_the_staff(
    api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-h4")
    await handed_off(warga, api)

    await warga.say("hapus data saya")
    kept = await warga.press("/deny", "Tidak")
    for_staff = await warga.say("Pak, KTP saya hilang")

    assert texts_of(kept)[0] == TEXTS.render("id", "privacy.erase_kept")
    assert back_to_staff(texts_of(kept)[1]) and len(kept) == 2
    assert for_staff == []
