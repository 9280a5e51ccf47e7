"""The booth screen: live counters without personal data, a QR code, a staff-only permit control."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime
from flows.texts import Texts
from tests.conftest import LiveServer, serve_runtime
from tests.factories import chat_body

TEXTS = Texts.load()
TOKEN = "booth-test-token-0123456789abcdef"


async def test_counters_count_todays_booth_visitors_conversations_and_questions(
    live_server: LiveServer,
) -> None:
    client = live_server.client
    await client.post("/api/chat", json=chat_body("halo", session_id="cfd-visitor-1"))
    await client.post("/api/chat", json=chat_body("syarat bikin ktp apa aja", session_id="cfd-visitor-1"))
    await client.post("/api/chat", json=chat_body("syarat bikin kk", session_id="cfd-visitor-2"))
    await client.post("/api/chat", json=chat_body("halo", session_id="web-someone"))

    stats = (await client.get("/booth/stats")).json()

    assert stats["visitors"] == 2
    assert stats["conversations"] == 3
    assert stats["complaints"] == 0
    assert stats["top_questions"][0] == {
        "intent": "document_requirements",
        "label": TEXTS.render("id", "booth.intent.document_requirements"),
        "count": 2,
    }


async def test_screen_shows_the_qr_and_no_staff_control_to_the_public(live_server: LiveServer) -> None:
    page = await live_server.client.get("/booth")

    assert page.status_code == 200
    assert "<svg" in page.text and "?source=cfd" in page.text
    assert TEXTS.render("id", "booth.staff_login") in page.text
    assert 'action="/booth/advance"' not in page.text
    refused = await live_server.client.post("/booth/advance", data={"number": "PBG-2026-00124"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/staff/login")


@pytest.fixture
def staff_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(environ={"PONTIBOT_STAFF__API_TOKEN": TOKEN})


@pytest.fixture
async def staff_server(staff_settings: Settings, nlu_parser: object) -> AsyncIterator[LiveServer]:

    runtime = await build_runtime(staff_settings, parser=nlu_parser)  # type: ignore[arg-type]
    async with serve_runtime(staff_settings, runtime) as server:
        yield server
    await close_runtime(runtime)


async def test_staff_advance_a_demo_permit_from_the_booth(staff_server: LiveServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    page = await staff_server.client.get("/booth", headers=auth)
    assert 'action="/booth/advance"' in page.text and "PBG-2026-00124" in page.text

    moved = await staff_server.client.post("/booth/advance", data={"number": "PBG-2026-00124"}, headers=auth)

    assert moved.status_code == 303
    permit = await staff_server.runtime.backends.demo_permits.get("PBG-2026-00124")  # type: ignore[union-attr]
    assert permit is not None and permit.stage.value == "verifikasi_berkas"
    shown = await staff_server.client.get(moved.headers["location"], headers=auth)
    assert (
        TEXTS.render("id", "booth.advance_done", number="PBG-2026-00124", stage="verifikasi_berkas")
        in shown.text
    )


async def test_the_screen_shows_only_known_messages_never_text_from_the_address(
    live_server: LiveServer,
) -> None:
    planted = "Hadiah! Kirim NIK ke 0812-0000-0000"

    free_text = await live_server.client.get("/booth", params={"flash": planted})
    unknown_key = await live_server.client.get("/booth", params={"flash": "booth.headline"})
    planted_number = await live_server.client.get(
        "/booth", params={"flash": "advance_done", "number": planted}
    )
    known = await live_server.client.get(
        "/booth", params={"flash": "advance_done", "number": "PBG-2026-00124"}
    )

    assert planted not in free_text.text and 'class="flash"' not in free_text.text
    assert 'class="flash"' not in unknown_key.text
    assert planted not in planted_number.text and 'class="flash"' not in planted_number.text
    assert TEXTS.render("id", "booth.advance_done", number="PBG-2026-00124", stage="diterima") in known.text
    failed = await live_server.client.get(
        "/booth", params={"flash": "advance_failed", "number": "pbg-2026-00124"}
    )
    assert (
        TEXTS.render("id", "booth.advance_failed", number="PBG-2026-00124", stage="diterima") in failed.text
    )
