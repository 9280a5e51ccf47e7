"""Migration 0009: platform dedupe records keyed per chat keep the rows they had, both ways."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from storage.db import Database
from storage.migrate import downgrade, upgrade

BEFORE = "0008_merge_heads"
EARLIER = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def run(database_url: str, *statements: tuple[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Run ``statements`` in one transaction; the rows of the last one (if it returns any)."""

    async def go() -> list[tuple[Any, ...]]:
        db = Database(database_url)
        try:
            async with db.engine.begin() as conn:
                result = None
                for sql, params in statements:
                    result = await conn.execute(text(sql), params)
                return [tuple(row) for row in result] if result is not None and result.returns_rows else []
        finally:
            await db.dispose()

    return asyncio.run(go())


PROCESSED = "SELECT channel, chat_id, message_id, conversation_id FROM processed_messages ORDER BY message_id"


def test_existing_rows_get_the_chat_of_their_conversation_and_go_back_one_per_id(database_url: str) -> None:
    downgrade(database_url, BEFORE)
    run(
        database_url,
        (
            "INSERT INTO residents (id, channel, external_id, language, unreachable, opted_out, created_at)"
            " VALUES (1, 'webchat', 'sesi-a', 'id', false, false, :at)",
            {"at": EARLIER},
        ),
        (
            "INSERT INTO conversations"
            " (id, resident_id, slots, status, turns, version, updated_at, created_at)"
            " VALUES (1, 1, '{}', 'bot', 1, 1, :at, :at)",
            {"at": EARLIER},
        ),
        (
            "INSERT INTO processed_messages (channel, message_id, conversation_id, response, created_at)"
            " VALUES ('webchat', 'm-1', 1, '{}', :at), ('webchat', 'm-2', NULL, '{}', :at)",
            {"at": EARLIER},
        ),
    )

    upgrade(database_url)
    migrated = run(database_url, (PROCESSED, {}))
    run(
        database_url,
        (
            "INSERT INTO processed_messages (channel, chat_id, message_id, response, created_at)"
            " VALUES ('webchat', 'sesi-b', 'm-1', '{}', :at)",
            {"at": LATER},
        ),
    )
    downgrade(database_url, BEFORE)
    reverted = run(database_url, ("SELECT channel, message_id, conversation_id FROM processed_messages", {}))
    upgrade(database_url)

    assert migrated == [("webchat", "sesi-a", "m-1", 1), ("webchat", "", "m-2", None)]
    assert sorted(reverted, key=lambda row: row[1]) == [("webchat", "m-1", None), ("webchat", "m-2", None)]
