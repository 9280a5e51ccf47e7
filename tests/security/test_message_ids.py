"""Platform message ids are unique per chat, not per channel: a retry is recognised only in its own chat.

Found by the security review (issue 16): a web chat session posting another session's ``message_id``
got that session's stored replies, and could claim ids in advance so the other session's messages
were dropped. Telegram and WhatsApp ids count per chat too.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from flows.messages import Channel
from storage import repositories as repo
from storage.models import Message
from tests.conftest import LiveServer
from tests.factories import incoming


async def post(server: LiveServer, session_id: str, text: str, message_id: str) -> list[dict[str, Any]]:
    response = await server.client.post(
        "/api/chat", json={"session_id": session_id, "text": text, "message_id": message_id}
    )
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()["replies"]
    return replies


async def inbound_texts(rt: Runtime, channel: str, chat_id: str) -> list[str | None]:
    async with rt.db.session() as session:
        conversation = await repo.find_conversation(session, channel=channel, external_id=chat_id)
        if conversation is None:
            return []
        rows = await session.execute(
            select(Message.text)
            .where(Message.conversation_id == conversation.id, Message.direction == "in")
            .order_by(Message.id)
        )
        return list(rows.scalars().all())


async def test_another_sessions_message_id_gets_this_sessions_own_replies(live_server: LiveServer) -> None:
    rt = live_server.runtime
    a_replies = await post(live_server, "sesi-a", "mau lapor jalan rusak", "m-1")
    expected = await post(live_server, "sesi-c", "syarat bikin ktp", "m-77")

    b_replies = await post(live_server, "sesi-b", "syarat bikin ktp", "m-1")

    assert b_replies == expected
    assert b_replies != a_replies
    assert await inbound_texts(rt, "webchat", "sesi-b") == ["syarat bikin ktp"]


async def test_an_id_used_first_by_another_session_does_not_drop_this_sessions_message(
    live_server: LiveServer,
) -> None:
    rt = live_server.runtime
    await post(live_server, "sesi-b", "halo", "m-9")  # B claims the id A will use next

    a_replies = await post(live_server, "sesi-a", "syarat bikin ktp", "m-9")

    assert a_replies == await post(live_server, "sesi-c", "syarat bikin ktp", "m-10")
    assert await inbound_texts(rt, "webchat", "sesi-a") == ["syarat bikin ktp"]


async def test_a_retry_in_the_same_session_is_answered_once_with_the_same_replies(
    live_server: LiveServer,
) -> None:
    rt = live_server.runtime
    first = await post(live_server, "sesi-a", "syarat bikin ktp", "m-1")
    await post(live_server, "sesi-b", "halo", "m-1")

    again = await post(live_server, "sesi-a", "syarat bikin ktp", "m-1")

    assert again == first
    assert await inbound_texts(rt, "webchat", "sesi-a") == ["syarat bikin ktp"]
    async with rt.db.session() as session:
        replies = (
            await session.execute(select(func.count()).select_from(Message).where(Message.direction == "out"))
        ).scalar_one()
    assert replies == len(first) + 1  # A's replies once, B's one greeting


@pytest.mark.parametrize("channel", list(Channel))
async def test_the_same_message_id_in_two_chats_is_two_messages_on_every_channel(
    runtime: Runtime, channel: Channel
) -> None:
    first = await runtime.dispatcher.handle(incoming("halo", chat_id="100", channel=channel, message_id="42"))
    second = await runtime.dispatcher.handle(
        incoming("syarat bikin ktp", chat_id="200", channel=channel, message_id="42")
    )
    retry = await runtime.dispatcher.handle(
        incoming("syarat bikin ktp", chat_id="200", channel=channel, message_id="42")
    )

    assert (first.duplicate, second.duplicate, retry.duplicate) == (False, False, True)
    assert retry.replies == second.replies != first.replies
    assert await inbound_texts(runtime, channel.value, "100") == ["halo"]
    assert await inbound_texts(runtime, channel.value, "200") == ["syarat bikin ktp"]
