"""Complaints: filing one and checking it, as residents do it over the web chat API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.notifications.jobs import ticket_notifier
from bot.settings import Settings
from bot.wiring.backends import build_backends
from flows.complaint import working_days_between
from flows.complaint_text import CITY_BOUNDS
from flows.knowledge import load_offices
from integrations.base import Complaint, reporter_ref
from storage import repositories as repo
from storage.backend_models import ComplaintRecord
from storage.db import Database
from tests.conftest import LiveServer
from tests.flows.conftest import TEXTS, WIB, one_of, payloads, say, text_of
from tests.support.fake_open311 import API_KEY, SERVICE_CODES, FakeOpen311

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
SEND = '/file_complaint{"choice": "send"}'
EDIT = '/file_complaint{"choice": "edit"}'
SKIP_PHOTO = '/file_complaint{"choice": "skip_photo"}'
SUPPORT = '/file_complaint{"choice": "support"}'
NEW = '/file_complaint{"choice": "new"}'
STREET_LIGHT = '/file_complaint{"complaint_category": "street_light"}'
PONTIANAK_SELATAN = '/file_complaint{"location": "61.71.01"}'
TICKET = re.compile(r"ADU-\d{4}-\d{6}")
# Jl. Tanjungpura, Benua Melayu Darat, and a spot about 60 m further along the road.
TANJUNGPURA = (-0.0335, 109.3356)
NEAR_TANJUNGPURA = (-0.0338, 109.3361)
SUPADIO_AIRPORT = (-0.1506, 109.4039)  # Kubu Raya, outside the city


@pytest.fixture
def open311(request: pytest.FixtureRequest) -> Iterator[FakeOpen311 | None]:
    """A running fake Open311 server when a test asks for one (``indirect`` param "running"), else None."""
    if getattr(request, "param", None) != "running":
        yield None
        return
    fake = FakeOpen311().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings_overrides(open311: FakeOpen311 | None) -> dict[str, Any]:
    """The repository's config; complaints go to the fake Open311 server when a test starts one."""
    complaints: dict[str, Any] = {}
    if open311 is not None:
        complaints = {
            "backend": "open311",
            "open311": {
                "base_url": open311.url,
                "api_key": API_KEY,
                "service_codes": SERVICE_CODES,
                "timeout": 2,
            },
        }
    return {"complaints": complaints}


async def send_photo(server: LiveServer, session_id: str, data: bytes = JPEG) -> list[dict[str, Any]]:
    response = await server.client.post(
        "/api/chat/photo", data={"session_id": session_id}, files={"file": ("jalan.jpg", data, "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()["replies"]
    return replies


async def resident_id(server: LiveServer, session_id: str) -> int:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return conversation.resident_id


async def slots_of(server: LiveServer, session_id: str) -> dict[str, Any]:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return dict(conversation.slots or {})


async def subscriptions(server: LiveServer, session_id: str) -> list[tuple[str, str, str | None]]:
    rid = await resident_id(server, session_id)
    async with server.runtime.db.session() as session:
        return [
            (s.topic, s.ref, s.last_status) for s in await repo.subscriptions_of(session, resident_id=rid)
        ]


async def complaint(server: LiveServer, ticket: str) -> Complaint:
    found = await server.runtime.dispatcher.complaints.get(ticket)
    assert found is not None
    return found


def summary(*, category: str, description: str, location: str, photo: str) -> str:
    return say(
        "complaints.summary",
        category=say(f"complaints.category.{category}")[0],
        description=description,
        location=location,
        photo=photo,
    )[0]


def pin(lat: float, lon: float) -> str:
    return say("complaints.location_pin", lat=f"{lat:.5f}", lon=f"{lon:.5f}")[0]


def filed_text(found: Complaint) -> str:
    """The filing confirmation: ticket, the office when already assigned, working days to the due date."""
    today = datetime.now(WIB).date()
    assert found.due_at is not None
    due = found.due_at.astimezone(WIB)
    day = TEXTS.render("id", "permits.days").split(",")[due.weekday()]
    month = TEXTS.render("id", "permits.months").split(",")[due.month - 1]
    lines = [say("complaints.filed", ticket=found.ticket)[0]]
    if found.agency:
        lines.append(say("complaints.filed_agency", agency=found.agency)[0])
    days = working_days_between(today, due.date())
    lines.append(say("complaints.filed_due", days=days, due=f"{day}, {due.day} {month} {due.year}")[0])
    return "\n".join(lines) + "\n\n" + say("complaints.filed_follow")[0]


def format_date_id(moment: datetime | None) -> str:
    assert moment is not None
    local = moment.astimezone(WIB)
    day = TEXTS.render("id", "permits.days").split(",")[local.weekday()]
    month = TEXTS.render("id", "permits.months").split(",")[local.month - 1]
    return f"{day}, {local.day} {month} {local.year}"


async def file_at(chat, session_id: str, point: tuple[float, float], text: str) -> str:
    """A resident files a complaint with a pin and no photo; returns its ticket."""
    resident = chat(session_id)
    await resident.say(text)
    await resident.share_location(*point)
    await resident.press(SKIP_PHOTO)
    filed = await resident.press(SEND)
    match = TICKET.search(text_of(filed))
    assert match is not None, text_of(filed)
    return match.group(0)


async def test_a_describing_first_message_needs_only_a_pin_and_a_confirmation(chat, live_server) -> None:
    resident = chat("warga-1")

    asked = await resident.say("jalan berlubang di jl. tanjungpura depan SD 14")
    assert text_of(asked) == say("complaints.ask_location")[0]
    assert asked[0]["request_location"] is True

    photo = await resident.share_location(*TANJUNGPURA)
    assert text_of(photo) == say("complaints.ask_photo")[0]
    assert payloads(photo) == [SKIP_PHOTO]

    shown = await resident.say("lewati")
    assert text_of(shown) == summary(
        category="road_damage",
        description="jalan berlubang di jl. tanjungpura depan SD 14",
        location=pin(*TANJUNGPURA),
        photo=say("complaints.summary_no_photo")[0],
    )
    assert payloads(shown) == [SEND, EDIT, "/cancel"]

    filed = await resident.press(SEND)

    ticket = TICKET.search(text_of(filed))
    assert ticket is not None
    found = await complaint(live_server, ticket.group(0))
    assert text_of(filed) == filed_text(found)
    assert (found.category, found.description, found.reporter, found.lat, found.lon) == (
        "road_damage",
        "jalan berlubang di jl. tanjungpura depan SD 14",
        reporter_ref(await resident_id(live_server, "warga-1")),
        *TANJUNGPURA,
    )
    assert await subscriptions(live_server, "warga-1") == [("complaint", found.ticket, "open")]
    slots = await slots_of(live_server, "warga-1")
    assert slots["last_ticket"] == found.ticket
    assert not [key for key in slots if key.startswith("complaint.")]


async def test_a_wrong_answer_at_each_step_gets_a_helpful_re_ask(chat, live_server) -> None:
    resident = chat("warga-2")

    assert text_of(await resident.say("mau lapor")) == say("complaints.ask_category")[0]
    again = await resident.say("hmm")
    assert text_of(again) == say("complaints.ask_category_again")[0]
    assert STREET_LIGHT in payloads(again)

    assert text_of(await resident.press(STREET_LIGHT)) == say("complaints.ask_description")[0]
    assert text_of(await resident.say("rusak")) == say("complaints.ask_description_again")[0]

    described = await resident.say("Lampu jalan mati tiga tiang, sudah lima hari gelap")
    assert text_of(described) == say("complaints.ask_location")[0]
    assert text_of(await resident.say("di situ")) == say("complaints.ask_location_again")[0]
    outside = await resident.share_location(*SUPADIO_AIRPORT)
    assert (
        text_of(outside)
        == say("complaints.outside_city", lapor_url=live_server.runtime.settings.contact.lapor_url)[0]
    )
    assert text_of(await resident.say("di Kubu Raya")).startswith(
        say("complaints.outside_city", lapor_url=live_server.runtime.settings.contact.lapor_url)[0]
    )

    street = await resident.say("Jl. Gajah Mada depan toko emas")
    assert text_of(street) == say("complaints.ask_kelurahan", address="Jl. Gajah Mada depan toko emas")[0]
    assert PONTIANAK_SELATAN in payloads(street)
    assert say("complaints.ask_kelurahan", address="Jl. Gajah Mada depan toko emas")[0] in text_of(
        await resident.say("entah")
    )
    assert text_of(await resident.press(PONTIANAK_SELATAN)) == say("complaints.ask_photo")[0]

    assert text_of(await resident.say("fotonya di hp lain")) == say("complaints.ask_photo_again")[0]
    with_photo = await send_photo(live_server, "warga-2")
    location = (
        "Jl. Gajah Mada depan toko emas · " + say("complaints.place_kecamatan", name="Pontianak Selatan")[0]
    )
    assert [r["text"] for r in with_photo] == [
        say("complaints.photo_received")[0],
        summary(
            category="street_light",
            description="Lampu jalan mati tiga tiang, sudah lima hari gelap",
            location=location,
            photo=say("complaints.summary_photos", count=1)[0],
        ),
    ]

    assert text_of(await resident.say("hmm")) == say("complaints.confirm_again")[0]
    assert text_of(await resident.press(EDIT)) == say("complaints.ask_edit")[0]
    assert text_of(await resident.say("yang mana ya")) == say("complaints.ask_edit")[0]
    assert (
        text_of(await resident.press('/file_complaint{"choice": "edit_location"}'))
        == say("complaints.ask_location")[0]
    )
    changed = await resident.say("Sungai Jawi")
    assert "• Lokasi: Kel. Sungaijawi, Kec. Pontianak Kota\n" in text_of(changed)

    filed = await resident.press(SEND)
    ticket = TICKET.search(text_of(filed))
    assert ticket is not None
    found = await complaint(live_server, ticket.group(0))
    assert (found.category, found.kelurahan_code, len(found.media_keys), found.lat) == (
        "street_light",
        "61.71.05.1005",
        1,
        None,
    )
    assert live_server.runtime.media.path(found.media_keys[0]).read_bytes() == JPEG


async def test_a_third_attempt_that_does_not_do_offers_a_person_beside_the_question(chat) -> None:
    resident = chat("warga-3")
    await resident.say("saya mau melapor")
    await resident.press(STREET_LIGHT)
    await resident.say("mati")
    await resident.say("gelap")

    third = await resident.say("rusak")

    assert one_of("complaints.ask_description_again")(text_of(third))
    assert one_of("complaints.more_help")(text_of(third))
    assert "/talk_to_staff" in payloads(third)


async def test_office_hours_mid_complaint_resume_it_another_journey_asks_to_leave_and_batal_cancels(
    chat, live_server
) -> None:
    resident = chat("warga-4")
    await resident.say("sampah menumpuk di pinggir jalan dekat pasar")

    side = await resident.say("disdukcapil buka jam berapa")
    assert one_of("engine.resume")(side[-1]["text"])
    assert side[-1]["text"].endswith(say("complaints.ask_location")[0])
    assert text_of(await resident.say("depan kantor camat pontianak kota")) == say("complaints.ask_photo")[0]

    switch = await resident.say("cek izin PBG-2026-00123")
    assert payloads(switch) == ["/affirm", "/deny"]
    back = await resident.press("/deny")
    assert back[-1]["text"].endswith(say("complaints.ask_photo")[0])

    cancelled = await resident.say("batal")
    assert text_of(cancelled).startswith(say("cancel.done")[0])
    assert not [key for key in await slots_of(live_server, "warga-4") if key.startswith("complaint.")]
    async with live_server.runtime.db.session() as session:
        assert (await session.execute(select(ComplaintRecord))).scalars().all() == []


async def test_leaving_for_another_journey_drops_the_draft(chat, live_server) -> None:
    resident = chat("warga-5")
    await resident.say("ada pohon tumbang menutup jalan di gang mawar")

    await resident.say("cek status izin PBG-2026-00124")
    status, _offer = await resident.press("/affirm")

    assert say("permits.step.diterima")[0] in status["text"]
    assert not [key for key in await slots_of(live_server, "warga-5") if key.startswith("complaint.")]


async def test_an_open_complaint_nearby_is_offered_for_support_instead(chat, live_server) -> None:
    first = await file_at(chat, "warga-6", TANJUNGPURA, "jalan berlubang di jl. tanjungpura depan SD 14")
    neighbour = chat("warga-7")
    await neighbour.say("jalan rusak parah berlubang dekat SD 14")

    offered = await neighbour.share_location(*NEAR_TANJUNGPURA)

    assert (
        text_of(offered)
        == say(
            "complaints.duplicate_found",
            category=say("complaints.category.road_damage")[0],
            distance=60,
            ticket=first,
            status=say("complaints.status.open")[0],
            supporters=1,
        )[0]
    )
    assert "tanjungpura depan SD 14" not in text_of(offered)  # never another resident's words
    assert payloads(offered) == [SUPPORT, NEW]
    assert text_of(await neighbour.say("gimana ya")) == say("complaints.duplicate_again")[0]

    supported = await neighbour.press(SUPPORT)

    assert text_of(supported) == say("complaints.supported", ticket=first, supporters=2)[0]
    assert (await complaint(live_server, first)).supporters == 1
    assert await subscriptions(live_server, "warga-7") == [("complaint", first, "open")]
    async with live_server.runtime.db.session() as session:
        assert len((await session.execute(select(ComplaintRecord))).scalars().all()) == 1


async def test_a_resident_may_still_file_a_new_report_near_an_open_one(chat, live_server) -> None:
    await file_at(chat, "warga-8", TANJUNGPURA, "jalan berlubang di jl. tanjungpura depan SD 14")
    neighbour = chat("warga-9")
    await neighbour.say("jalan rusak parah berlubang dekat SD 14")
    await neighbour.share_location(*NEAR_TANJUNGPURA)

    asked = await neighbour.press(NEW)

    assert text_of(asked) == say("complaints.ask_photo")[0]
    await neighbour.press(SKIP_PHOTO)
    edit = await neighbour.press(EDIT)
    assert text_of(edit) == say("complaints.ask_edit")[0]
    await neighbour.press('/file_complaint{"choice": "edit_location"}')
    again = await neighbour.share_location(*NEAR_TANJUNGPURA)
    assert text_of(again).startswith("Mohon cek laporan Kakak")  # the declined one is not offered twice
    filed = await neighbour.press(SEND)
    assert TICKET.search(text_of(filed)) is not None


async def test_a_resident_sees_only_the_status_of_another_residents_complaint(chat, live_server) -> None:
    ticket = await file_at(chat, "warga-10", TANJUNGPURA, "lampu jalan mati di depan rumah saya no 12")
    stranger = chat("warga-11")

    seen = await stranger.say(f"cek laporan {ticket}")

    assert (
        text_of(seen)
        == say("complaints.other_resident", ticket=ticket, status=say("complaints.status.open")[0])[0]
    )
    assert "rumah saya" not in text_of(seen)
    assert "last_ticket" not in await slots_of(live_server, "warga-11")
    mine = await stranger.say("laporan saya")
    assert text_of(mine) == say("complaints.mine_none")[0]


async def test_laporan_saya_lists_own_complaints_and_shows_their_details(chat, live_server) -> None:
    ticket = await file_at(chat, "warga-12", TANJUNGPURA, "lampu jalan mati di depan rumah saya no 12")
    owner = chat("warga-12")

    listed = await owner.say("laporan saya")

    found = await complaint(live_server, ticket)
    assert listed[0]["text"].startswith(say("complaints.mine_intro")[0])
    assert f"• {ticket} · {say('complaints.category.street_light')[0]}" in listed[0]["text"]
    assert payloads(listed) == [f'/complaint_status{{"ticket_number": "{ticket}"}}']

    detail = await owner.press(payloads(listed)[0])

    text = text_of(detail)
    assert text.startswith(f"🎫 {ticket} · {say('complaints.category.street_light')[0]}")
    assert "lampu jalan mati di depan rumah saya no 12" in text
    assert say("complaints.detail_due", due=format_date_id(found.due_at))[0] in text
    assert (await slots_of(live_server, "warga-12"))["last_ticket"] == ticket


async def test_an_unknown_ticket_is_re_asked_then_a_person_offered(chat) -> None:
    resident = chat("warga-13")
    await resident.say("cek laporan saya")

    unknown = await resident.say("ADU-2026-999999")
    assert [r["text"] for r in unknown] == [
        say("complaints.ticket_not_found", ticket="ADU-2026-999999")[0],
        say("complaints.ask_ticket")[0],
    ]
    assert text_of(await resident.say("nomornya hilang")) == say("complaints.ask_ticket_again")[0]
    gave_up = await resident.say("entah")
    assert text_of(gave_up) == say("complaints.give_up")[0]
    assert payloads(gave_up) == ["/talk_to_staff"]


def test_the_city_box_holds_every_office_and_the_equator_monument_but_not_the_neighbours() -> None:
    for office in load_offices().offices.values():
        assert CITY_BOUNDS.contains(office.lat, office.lon), office.key
    assert CITY_BOUNDS.contains(0.0, 109.3220)  # Tugu Khatulistiwa, Pontianak Utara (north of -0.10..0.00)
    assert CITY_BOUNDS.contains(0.0300, 109.3350)  # Siantan Hulu / Batu Layang, north of the equator
    assert not CITY_BOUNDS.contains(*SUPADIO_AIRPORT)  # Kubu Raya
    assert not CITY_BOUNDS.contains(0.3600, 108.9600)  # Mempawah


@pytest.mark.parametrize("open311", [pytest.param("running", id="open311")], indirect=True)
async def test_back_end_down_keeps_the_complaint_and_pushes_the_ticket_later(
    chat, live_server, open311: FakeOpen311, settings: Settings
) -> None:
    resident = chat("warga-14")
    await resident.say("jalan berlubang di jl. tanjungpura depan SD 14")
    await resident.share_location(*TANJUNGPURA)
    await resident.press(SKIP_PHOTO)
    open311.stop()

    told = await resident.press(SEND)

    async with live_server.runtime.db.session() as session:
        row = (await session.execute(select(ComplaintRecord))).scalar_one()
    assert (row.status, row.ticket) == ("pending", None)
    assert text_of(told) == say("backend.complaint_pending", ref=row.local_ref)[0]
    assert await subscriptions(live_server, "warga-14") == [("complaint", row.local_ref, "pending")]
    mine = await resident.say("laporan saya")
    assert f"{row.local_ref} · " in mine[0]["text"]
    assert say("complaints.status.pending")[0] in mine[0]["text"]

    # The server comes back; the job (an hour later, past its backoff) files it and tells the resident.
    open311.start()
    db = Database(settings.database_url)
    backends = build_backends(settings, db, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    try:
        [done] = await backends.complaints.submit_pending(on_ticket=ticket_notifier(TEXTS))
    finally:
        await backends.aclose()
        await db.dispose()

    assert done.ticket is not None
    pushed = (await live_server.client.get("/api/chat/warga-14/events", params={"after": 0})).json()["events"]
    assert [e["text"] for e in pushed] == [
        say("backend.ticket_assigned", ticket=done.ticket, ref=row.local_ref)[0]
    ]
    assert await subscriptions(live_server, "warga-14") == [("complaint", done.ticket, "pending")]
    assert [r.form["description"] for r in open311.requests_to("POST", "requests.json")] == [
        "jalan berlubang di jl. tanjungpura depan SD 14"
    ]
