"""Staff views show no NIK, phone number, e-mail or profile name in clear, however the numbers are
written, and no bidi control; the audit-logged reveal shows them (the name too).

(Masked detail views, the audit-logged reveal for the assigned agent or an admin, CSRF and login
throttling are proven in tests/bot/staff/test_console_auth.py.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import update

from bot.runtime import Runtime
from bot.staff.web.common import StaffJSONResponse, templates
from storage.models import Resident as ResidentRow
from tests.bot.channels.conftest import load_update
from tests.bot.staff.conftest import Clock, Console, Resident, add_staff
from tests.support import eventually
from tests.support.fake_telegram import FakeTelegram

NIK = "6171015508900003"
PHONE = "081234567890"
EMAIL = "budi.santoso@gmail.com"


async def test_queue_and_list_mask_personal_data_in_names_and_messages(
    runtime: Runtime, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-views")
    await warga.say("mau bicara dengan petugas")
    await warga.say(f"NIK {NIK}, hp {PHONE}, email {EMAIL}")
    async with runtime.db.session() as session:
        await session.execute(
            update(ResidentRow)
            .where(ResidentRow.external_id == "warga-views")
            .values(display_name=f"Budi {PHONE}")
        )

    listed = await api.get("/api/staff/handoffs")
    page = await api.get("/staff")
    detail = await api.get("/api/staff/handoffs/1")

    assert listed.status_code == 200, listed.text
    for body in (listed.text, page.text, detail.text):
        assert NIK not in body and PHONE not in body and EMAIL not in body
    assert "0812****7890" in listed.json()["handoffs"][0]["resident"]


# A resident's words holding every way of writing a NIK and a phone number that masking must see
# through, and a right-to-left override that would make the line read backwards.
VARIANTS = {
    "dotted NIK": "6171.0101.0101.0003",
    "NIK with zero-width spaces": "6171\u200b0101\u200b0101\u200b0003",
    "phone with dashes": "0812-5678-0003",
    "phone with country code and spaces": "+62 812 5678 0003",
}
RLO = "\u202e"
NAME = "Budi Santoso"


async def _budi_asks_for_staff(
    runtime: Runtime, resident: Callable[[str], Resident], session_id: str
) -> None:
    warga = resident(session_id)
    await warga.say("mau bicara dengan petugas")
    await warga.say("data saya: " + ", ".join(VARIANTS.values()) + f" {RLO}halo petugas")
    async with runtime.db.session() as session:
        await session.execute(
            update(ResidentRow).where(ResidentRow.external_id == session_id).values(display_name=NAME)
        )


def _shows_nothing_in_full(body: str) -> None:
    for variant in [NAME, "Budi", "Santoso", *VARIANTS.values(), RLO]:
        assert variant not in body, variant
    assert "[U+202E]halo petugas" in body


async def test_names_and_every_way_of_writing_numbers_are_masked_until_revealed(
    runtime: Runtime,
    api: httpx.AsyncClient,
    console: Callable[[], Awaitable[Console]],
    resident: Callable[[str], Resident],
    clock: Clock,
) -> None:
    await _budi_asks_for_staff(runtime, resident, "warga-budi")
    await add_staff(runtime, "kepala", "admin")
    admin = await console()
    await admin.login("kepala")

    queue_page = await admin.client.get("/staff")
    handoff_page = await admin.client.get("/staff/handoffs/1")
    listed = await api.get("/api/staff/handoffs")
    detail = await api.get("/api/staff/handoffs/1")
    revealed_page = await admin.client.get("/staff/handoffs/1?reveal=1")
    revealed = await api.get("/api/staff/handoffs/1", params={"reveal": "1"})

    for response in (queue_page, handoff_page, listed, detail):
        assert response.status_code == 200, response.text
        _shows_nothing_in_full(response.text)
    assert listed.json()["handoffs"][0]["resident"] == "B*** S***"
    assert (detail.json()["resident"], detail.json()["display_name"]) == ("B*** S***", "B*** S***")
    assert "B*** S***" in queue_page.text and "B*** S***" in handoff_page.text
    assert revealed_page.status_code == 200 and NAME in revealed_page.text
    assert revealed.json()["display_name"] == NAME
    [words] = [line["text"] for line in revealed.json()["transcript"] if line["text"].startswith("data saya")]
    assert words == "data saya: " + ", ".join(VARIANTS.values()) + " [U+202E]halo petugas"
    assert RLO not in revealed_page.text and RLO not in revealed.text


async def test_the_telegram_staff_group_shows_initials_and_masked_numbers(
    serve_telegram_bot: Any, fake_telegram: FakeTelegram
) -> None:
    group = -1001234567890
    async with serve_telegram_bot(telegram={"staff_group_id": group}) as bot:
        await bot.settle(fake_telegram.push_update(telegram_text("mau bicara dengan petugas", 1)))
        [created] = await fake_telegram.wait_for("createForumTopic")
        words = "data saya: " + ", ".join(VARIANTS.values()) + f" {RLO}halo petugas"
        await bot.settle(fake_telegram.push_update(telegram_text(words, 2)))
        posts = await eventually(
            lambda: [
                c.params["text"]
                for c in fake_telegram.sent(group)
                if "halo petugas" in c.params.get("text", "")
            ]
        )

    assert created.params["name"].endswith("· R*** (Telegram)")
    for variant in ["Rina", *VARIANTS.values(), RLO]:
        assert variant not in created.params["name"] and variant not in posts[-1], variant
    assert "[U+202E]halo petugas" in posts[-1]


def telegram_text(text: str, update_id: int) -> dict[str, Any]:
    """A private message of Rina (first name in the fixture) to the bot."""
    update = load_update("text", update_id=update_id)
    update["message"]["text"] = text
    update["message"]["message_id"] = update_id
    return update


def test_every_console_value_and_staff_json_string_shows_bidi_controls_as_marks() -> None:
    page = templates.env.from_string("<p title='{{ note }}'>{{ note }}</p>").render(note=f"catatan {RLO}abc")
    body = StaffJSONResponse({"close_note": f"catatan {RLO}abc", "n": 1}).body

    assert page == "<p title='catatan [U+202E]abc'>catatan [U+202E]abc</p>"
    assert json.loads(body) == {"close_note": "catatan [U+202E]abc", "n": 1}
