"""The web chat channel over real HTTP against the running ASGI app (DESIGN 3.5)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.channels.webchat import ReplyOut, reply_out
from flows.messages import Button, Reply, Venue
from flows.texts import Texts
from storage import repositories as repo
from storage.models import Message
from tests.conftest import LiveServer
from tests.factories import chat_body

TEXTS = Texts.load()
MENU_PAYLOADS = [
    "/document_requirements",
    "/permit_status",
    "/file_complaint",
    "/complaint_status",
    "/office_hours",
    "/talk_to_staff",
]


async def test_halo_is_answered_with_a_greeting_and_menu_buttons(live_server: LiveServer) -> None:
    response = await live_server.client.post("/api/chat", json={"session_id": "x", "text": "halo"})

    assert response.status_code == 200
    [reply] = response.json()["replies"]
    greeting, menu = reply["text"].split("\n\n")
    assert greeting in TEXTS.variants("id", "greet")
    assert menu == TEXTS.render("id", "menu.intro")
    assert [b["payload"] for b in reply["buttons"]] == MENU_PAYLOADS


async def test_a_button_payload_and_a_retry_with_the_same_message_id(live_server: LiveServer) -> None:
    body = chat_body("Batal", payload="/cancel", message_id="m-1")

    first = await live_server.client.post("/api/chat", json=body)
    again = await live_server.client.post("/api/chat", json=body)

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["replies"][0]["text"].startswith(TEXTS.render("id", "cancel.nothing"))
    async with live_server.runtime.db.session() as session:
        inbound = (
            await session.execute(select(func.count()).select_from(Message).where(Message.direction == "in"))
        ).scalar_one()
    assert inbound == 1


async def test_events_feed_returns_pushed_messages_after_an_id(live_server: LiveServer) -> None:
    await live_server.client.post("/api/chat", json=chat_body("halo", session_id="ev"))
    async with live_server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id="ev")
        assert conversation is not None
        pushed = await repo.add_message(
            session,
            conversation_id=conversation.id,
            direction="out",
            kind="push",
            text="Izin PBG Anda disetujui.",
            data={"buttons": [{"title": "Menu", "payload": "/help"}]},
        )

    everything = await live_server.client.get("/api/chat/ev/events", params={"after": 0})
    nothing_new = await live_server.client.get("/api/chat/ev/events", params={"after": pushed.id})
    unknown = await live_server.client.get("/api/chat/nobody/events")

    assert everything.json() == {
        "events": [
            {
                "id": pushed.id,
                "kind": "push",
                "text": "Izin PBG Anda disetujui.",
                "buttons": [{"title": "Menu", "payload": "/help"}],
            }
        ]
    }
    assert nothing_new.json() == {"events": []}
    assert unknown.json() == {"events": []}


async def test_the_page_and_health(live_server: LiveServer) -> None:
    page = await live_server.client.get("/")
    script = await live_server.client.get("/static/chat.js")
    health = await live_server.client.get("/healthz")

    assert page.status_code == 200 and 'name="viewport"' in page.text
    assert script.status_code == 200
    assert health.json() == {"status": "ok", "database": "up"}


async def test_emoji_only_and_ten_thousand_characters_get_a_helpful_reply(live_server: LiveServer) -> None:
    for text in ["😀🙏🔥", "jalan rusak " * 833]:
        response = await live_server.client.post("/api/chat", json=chat_body(text))
        assert response.status_code == 200
        assert response.json()["replies"][0]["text"]


BAD_BODIES = [
    pytest.param({"text": "halo"}, 422, id="missing-session"),
    pytest.param({"session_id": "s"}, 422, id="nothing-to-say"),
    pytest.param({"session_id": "s", "text": "   "}, 422, id="blank-text"),
    pytest.param({"session_id": 5, "text": "halo"}, 422, id="session-not-a-string"),
    pytest.param({"session_id": "s", "text": ["halo"]}, 422, id="text-a-list"),
    pytest.param({"session_id": "s", "text": "a" * 100_000}, 422, id="100kb-text"),
    pytest.param({"session_id": "s" * 10_000, "text": "halo"}, 422, id="10k-session-id"),
    pytest.param({"session_id": "../etc", "text": "halo"}, 422, id="session-with-slash"),
    pytest.param({"session_id": "s", "location": {"lat": 999, "lon": 0}}, 422, id="bad-latitude"),
    pytest.param({"session_id": "s", "text": "hi", "extra": 1}, 422, id="unknown-field"),
    pytest.param([1, 2, 3], 422, id="json-array"),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
async def test_bad_input_gets_a_4xx_with_a_json_error(
    live_server: LiveServer, body: object, status: int
) -> None:
    response = await live_server.client.post("/api/chat", json=body)

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] and error["message"]


async def test_invalid_json_and_oversized_bodies(live_server: LiveServer) -> None:
    invalid = await live_server.client.post(
        "/api/chat", content=b'{"session_id": "s", "text": ', headers={"Content-Type": "application/json"}
    )
    huge = await live_server.client.post(
        "/api/chat", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}
    )
    events = await live_server.client.get("/api/chat/" + "s" * 10_000 + "/events")
    negative = await live_server.client.get("/api/chat/s/events", params={"after": -1})

    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_json"
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
    assert events.status_code == 422
    assert negative.status_code == 422


async def test_rejected_requests_store_nothing(live_server: LiveServer) -> None:
    for body, _ in [p.values for p in BAD_BODIES]:
        await live_server.client.post("/api/chat", json=body)

    async with live_server.runtime.db.session() as session:
        stored = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    assert stored == 0


def png_bytes(size: int = 8) -> bytes:
    """A real PNG image (what a phone's canvas produces), built with Pillow."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_photo_is_stored_and_answered(live_server: LiveServer) -> None:
    response = await live_server.client.post(
        "/api/chat/photo",
        data={"session_id": "foto", "message_id": "p-1"},
        files={"file": ("jalan.png", png_bytes(), "image/png")},
    )

    assert response.status_code == 200
    assert response.json()["replies"][0]["text"]
    async with live_server.runtime.db.session() as session:
        inbound = (await session.execute(select(Message).where(Message.direction == "in"))).scalar_one()
    [media] = inbound.data["media"]
    assert media["content_type"] == "image/png"
    assert live_server.runtime.media.path(media["key"]).read_bytes() == png_bytes()


async def test_photos_that_are_not_images_or_too_big_are_refused(live_server: LiveServer) -> None:
    not_image = await live_server.client.post(
        "/api/chat/photo", data={"session_id": "foto"}, files={"file": ("x.png", b"<html>", "image/png")}
    )
    too_big = await live_server.client.post(
        "/api/chat/photo",
        data={"session_id": "foto"},
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"0" * 10_100_000, "image/png")},
    )
    no_file = await live_server.client.post("/api/chat/photo", data={"session_id": "foto"})

    assert not_image.status_code == 415 and not_image.json()["error"]["message"]
    assert too_big.status_code == 413
    assert no_file.status_code == 422


@pytest.mark.parametrize("lang", ["id", "en"])
async def test_the_page_speaks_both_languages(live_server: LiveServer, lang: str) -> None:
    page = await live_server.client.get("/", params={"lang": lang})

    assert f'<html lang="{lang}">' in page.text
    assert TEXTS.render(lang, "webchat.placeholder") in page.text
    assert "</script><" not in page.text.split('id="texts"')[1].split("</script>")[0]


async def test_booth_sessions_are_tagged_with_their_source(live_server: LiveServer) -> None:
    await live_server.client.post("/api/chat", json=chat_body("halo", session_id="cfd-abc"))

    async with live_server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id="cfd-abc")
        assert conversation is not None
        assert conversation.resident.source == "cfd"


@pytest.mark.parametrize(
    "reply",
    [
        Reply("Halo, Kak!"),
        Reply("Pilih layanan:", (Button("KTP", "/document_requirements"), Button("KK", "/kk"))),
        Reply("Disdukcapil", venue=Venue(-0.03, 109.33, "Disdukcapil", "Jl. Letjen Sutoyo")),
        Reply("Kirim lokasi, Kak.", request_location=True),
    ],
)
def test_the_chat_answer_is_built_exactly_as_its_response_model_would_serialise_it(reply: Reply) -> None:
    assert reply_out(reply) == ReplyOut.model_validate(reply.to_dict()).model_dump(mode="json")
