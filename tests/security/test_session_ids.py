"""Issue 16, finding 5: the web chat session id (the conversation's only credential) is 128 random bits
even on plain-HTTP booth Wi-Fi, weak page-made ids cannot start a session, and access logs mask it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest

from bot.runtime import Runtime
from bot.web import STATIC_DIR
from flows.messages import Channel, IncomingMessage
from storage.models import Resident
from tests.conftest import REPO, LiveServer
from tests.factories import chat_body
from tests.reliability.conftest import count
from tests.support.logs import captured_logs

PAGE_ID = "web-" + "0f" * 16  # what the page makes: prefix and 32 hex digits (128 bits)
OLD_FALLBACK_ID = "web-m3k2x9q1" + "4fz8k2jd0q"  # Date.now().toString(36) + Math.random().toString(36)


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """The production log handler writing into a string, removed afterwards."""
    with captured_logs("INFO") as stream:
        yield stream


async def test_the_access_log_never_shows_a_full_session_id(
    live_server: LiveServer, access_log: io.StringIO
) -> None:
    session_id = "web-" + "5a" * 16
    sent = await live_server.client.post("/api/chat", json=chat_body("halo", session_id=session_id))
    polled = await live_server.client.get(f"/api/chat/{session_id}/events", params={"after": 0})
    assert (sent.status_code, polled.status_code) == (200, 200)

    lines = [line for line in access_log.getvalue().splitlines() if "uvicorn.access" in line]
    events = [line for line in lines if "/events" in line]
    assert len(events) == 1, lines
    assert session_id not in access_log.getvalue()
    assert '"GET /api/chat/…5a5a/events?after=0 HTTP/1.1" 200' in events[0]


def test_the_page_makes_ids_from_get_random_values_never_math_random() -> None:
    script = (STATIC_DIR / "chat.js").read_text(encoding="utf-8")
    assert "crypto.getRandomValues(new Uint8Array(16))" in script
    assert "Math.random" not in script
    assert "Date.now" not in script


@pytest.mark.parametrize("session_id", [OLD_FALLBACK_ID, "cfd-" + "ab" * 15, "web-" + "AB" * 16])
async def test_a_weak_id_of_the_pages_shape_cannot_start_a_session(
    live_server: LiveServer, session_id: str
) -> None:
    refused = await live_server.client.post("/api/chat", json=chat_body("halo", session_id=session_id))

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "weak_session_id"
    assert await count(live_server.runtime, Resident) == 0


@pytest.mark.parametrize("session_id", [PAGE_ID, "cfd-" + "9" * 32, "x", "cfd-abc", "web-someone", "warga-1"])
async def test_strong_page_ids_and_api_clients_ids_start_sessions(
    live_server: LiveServer, session_id: str
) -> None:
    answered = await live_server.client.post("/api/chat", json=chat_body("halo", session_id=session_id))

    assert answered.status_code == 200, answered.text


async def test_a_session_that_exists_keeps_working_whatever_its_id(
    live_server: LiveServer, runtime: Runtime
) -> None:
    # Made by the old page before this rule: the conversation exists, so it is not refused.
    await runtime.dispatcher.handle(
        IncomingMessage(Channel.WEBCHAT, OLD_FALLBACK_ID, OLD_FALLBACK_ID, message_id="m-1", text="halo")
    )

    again = await live_server.client.post("/api/chat", json=chat_body("menu", session_id=OLD_FALLBACK_ID))

    assert again.status_code == 200


def test_the_rule_is_documented_in_the_readme_api_section() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"`web-` or `cfd-`.*32 (lowercase )?hex", readme, re.S)
