"""Permit status: a resident's conversations over the web chat API, against the seeded demo permits."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.base import Permit
from storage import repositories as repo
from tests.conftest import LiveServer, free_port
from tests.flows.conftest import TEXTS, WIB, one_of, payloads, say, text_of

SUBSCRIBE_125 = '/subscribe_updates{"permit_number": "PBG-2026-00125"}'


async def permit(server: LiveServer, number: str) -> Permit:
    found = await server.runtime.dispatcher.permits.get(number)
    assert found is not None
    return found


def updated(found: Permit, lang: str = "id") -> str:
    """The "last update" line as the flow writes it: weekday, date and time in WIB."""
    local = found.updated_at.astimezone(WIB)
    day = TEXTS.render(lang, "permits.days").split(",")[local.weekday()]
    month = TEXTS.render(lang, "permits.months").split(",")[local.month - 1]
    date = f"{day}, {local.day} {month} {local.year}"
    return TEXTS.render(lang, "permits.at", date=date, time=f"{local.hour:02d}.{local.minute:02d}")


def card(found: Permit, *, type_key: str, status_key: str, note: bool = True, step: str) -> str:
    lines = [
        say(
            "permits.status",
            type=say(f"permits.type.{type_key}")[0],
            number=found.number,
            stage=say(f"permits.stage.{found.stage.value}")[0],
            status=say(f"permits.{status_key}")[0],
            updated=updated(found),
        )[0]
    ]
    if note:
        lines.append(say("permits.note", note=found.note)[0])
    lines.append(say("permits.next_step", step=step)[0])
    return "\n\n".join(lines)


async def slots_of(server: LiveServer, session_id: str) -> dict[str, Any]:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return dict(conversation.slots or {})


async def test_a_permit_waiting_for_payment_says_how_to_pay_and_offers_updates(chat, live_server) -> None:
    resident = chat("permit-1")
    found = await permit(live_server, "PBG-2026-00125")

    status, offer = await resident.say("cek status izin PBG-2026-00125")

    assert status["text"] == card(
        found,
        type_key="pbg",
        status_key="status_waiting_you",
        step=say("permits.step.menunggu_pembayaran")[0],
    )
    assert offer["text"] == say("permits.offer_subscribe")[0]
    assert payloads([offer]) == [SUBSCRIBE_125, "/permit_status"]
    assert (await slots_of(live_server, "permit-1"))["last_permit"] == "PBG-2026-00125"

    subscribed = await resident.press(SUBSCRIBE_125)
    assert text_of(subscribed) == say("subscriptions.subscribed", item="izin PBG-2026-00125")[0]


async def test_the_number_is_asked_a_non_answer_re_asked_and_the_second_closes_the_question(chat) -> None:
    resident = chat("permit-2")

    asked = await resident.say("status izin PBG saya sudah sampai mana")
    assert text_of(asked) == say("permits.ask_number")[0]

    first = await resident.say("lupa saya")
    assert text_of(first) == say("permits.ask_number_again")[0]
    closed = await resident.say("hmm")
    assert closed[0]["text"] in say("engine.closed", flow=say("flow_title.permit_status")[0])
    assert say("permits.ask_number")[0] not in text_of(closed)


async def test_an_unknown_number_is_said_kindly_and_a_rejection_gives_its_reason(chat, live_server) -> None:
    resident = chat("permit-3")
    await resident.say("cek izin")

    unknown = await resident.say("PBG-2026-99999")
    assert [r["text"] for r in unknown] == [
        say("permits.not_found", number="PBG-2026-99999")[0],
        say("permits.ask_number")[0],
    ]

    rejected, _offer = await resident.say("nib 2026 00311")
    found = await permit(live_server, "NIB-2026-00311")
    assert rejected["text"] == card(
        found,
        type_key="nib",
        status_key="status_rejected",
        note=False,
        step=say("permits.step.ditolak", reason=found.note)[0],
    )


async def test_the_last_permit_is_offered_when_asking_again(chat) -> None:
    resident = chat("permit-4")
    await resident.say("PBG-2026-00126")

    asked = await resident.say("cek izin")

    assert text_of(asked) == say("permits.ask_number")[0]
    assert payloads(asked) == ['/permit_status{"permit_number": "PBG-2026-00126"}']
    done, _offer = await resident.press(payloads(asked)[0])
    assert say("permits.step.selesai")[0] in done["text"]


async def test_office_hours_mid_question_are_answered_and_the_question_resumes(chat) -> None:
    resident = chat("permit-5")
    await resident.say("cek status izin")

    side = await resident.say("disdukcapil buka jam berapa")

    assert one_of("engine.resume")(side[-1]["text"])
    assert side[-1]["text"].endswith(say("permits.ask_number")[0])
    status, _offer = await resident.say("SLF-2026-00046")
    assert say("permits.step.disetujui")[0] in status["text"]


async def test_another_journey_asks_to_leave_and_batal_cancels(chat) -> None:
    resident = chat("permit-6")
    await resident.say("cek status izin")

    switch = await resident.say("mau lapor lampu jalan mati")
    assert payloads(switch) == ["/affirm", "/deny"]
    stay = await resident.press("/deny")
    assert stay[-1]["text"].endswith(say("permits.ask_number")[0])

    cancelled = await resident.say("batal")
    assert text_of(cancelled).startswith(say("cancel.done")[0])


async def test_english_residents_read_the_same_card_in_english(chat, live_server) -> None:
    resident = chat("permit-7")
    await resident.say("english please")

    status, offer = await resident.say("SLF-2026-00045")

    found = await permit(live_server, "SLF-2026-00045")
    assert status["text"].startswith(
        TEXTS.render(
            "en",
            "permits.status",
            type=TEXTS.render("en", "permits.type.slf"),
            number="SLF-2026-00045",
            stage=TEXTS.render("en", "permits.stage.verifikasi_berkas"),
            status=TEXTS.render("en", "permits.status_in_progress"),
            updated=updated(found, "en"),
        )
    )
    assert offer["text"] == TEXTS.render("en", "permits.offer_subscribe")


@pytest.mark.parametrize(
    "settings_overrides",
    [{"permits": {"backend": "http", "http": {"base_url": f"http://127.0.0.1:{free_port()}", "timeout": 1}}}],
)
async def test_the_licensing_system_down_is_said_plainly(chat) -> None:
    resident = chat("permit-8")

    down = await resident.say("cek izin PBG-2026-00123")

    assert text_of(down) == say("backend.permits_down")[0]
