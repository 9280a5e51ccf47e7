"""The turn's statements on the driver connection store exactly what the ORM reads back.

Run on SQLite and, in CI, on PostgreSQL (where a turn's writes go as one statement each phase).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage import repositories as repo
from storage.db import Database
from storage.models import Conversation, Message, ProcessedMessage, Resident
from storage.turn_store import Statement, TurnStore, combined, insert_messages, message_params

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def line(conversation_id: int, direction: str, text: str, **data: object) -> dict[str, object]:
    return repo.message_row(
        conversation_id=conversation_id,
        direction=direction,
        kind="message" if direction == "in" else "reply",
        text=text,
        data=dict(data),
        created_at=NOW,
    )


async def test_a_whole_turn_is_stored_and_read_back_through_the_orm(db: Database) -> None:
    sent_at = NOW - timedelta(seconds=3)
    async with db.session() as session:
        store = await TurnStore.open(session, lock=("webchat", "warga-1"), now=NOW)
        record, seen = await store.load_conversation(
            channel="webchat", external_id="warga-1", display_name="Warga", message_id="m-1"
        )
        await store.store_inbound(
            line(record.conversation_id, "in", "syarat ktp", entities=[{"entity": "document_type"}]),
            resident_id=record.resident_id,
            at=sent_at,
        )
        replies = [{"text": "Syarat KTP-el:", "buttons": []}, {"text": "Ada lagi, Kak?", "buttons": []}]
        await store.finish(
            conversation_id=record.conversation_id,
            advance=("documents.answered", {"last_document": "ktp_el", "ö": "ü"}),
            rows=[line(record.conversation_id, "out", reply["text"]) for reply in replies],
            response=("webchat", "m-1", replies),
        )
    async with db.session() as session:
        store = await TurnStore.open(session, lock=("webchat", "warga-1"), now=NOW)
        again, seen_again = await store.load_conversation(
            channel="webchat", external_id="warga-1", message_id="m-1"
        )
        resident = await session.get(Resident, record.resident_id)
        conversation = await session.get(Conversation, record.conversation_id)
        lines = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
        processed = await session.get(ProcessedMessage, ("webchat", "warga-1", "m-1"))

    assert (record.display_name, record.state, record.slots, record.turns, seen) == (
        "Warga",
        None,
        {},
        0,
        False,
    )
    assert (again.state, again.slots, again.turns, seen_again) == (
        "documents.answered",
        {"last_document": "ktp_el", "ö": "ü"},
        1,
        True,
    )
    assert resident is not None and resident.last_inbound_at == sent_at and not resident.unreachable
    assert conversation is not None and (conversation.version, conversation.updated_at) == (1, NOW)
    assert [(m.direction, m.text, m.created_at) for m in lines] == [
        ("in", "syarat ktp", NOW),
        ("out", "Syarat KTP-el:", NOW),
        ("out", "Ada lagi, Kak?", NOW),
    ]
    assert lines[0].data == {"entities": [{"entity": "document_type"}]}
    assert processed is not None and processed.response == {"replies": replies}
    assert processed.conversation_id == record.conversation_id


async def test_a_failed_statement_is_sqlalchemys_error_and_rolls_the_turn_back(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            store = await TurnStore.open(session, lock=("webchat", "warga-2"), now=NOW)
            record, _ = await store.load_conversation(channel="webchat", external_id="warga-2")
            await store.store_inbound(
                line(record.conversation_id + 1000, "in", "halo"),  # no such conversation
                resident_id=record.resident_id,
                at=NOW,
            )
    async with db.session() as session:
        residents = (await session.execute(select(Resident))).scalars().all()
    assert residents == []


def test_statements_of_one_phase_go_as_one_with_their_parameters_kept_apart() -> None:
    first = Statement("UPDATE a SET x = :x WHERE id = :id", {}, {})
    both = combined([first, insert_messages(2)])

    assert both.sql.startswith("WITH s0 AS (UPDATE a SET x = :s0_x WHERE id = :s0_id) INSERT INTO messages")
    assert ":s1_text_0" in both.sql and ":s1_text_1" in both.sql
    assert set(both.binds) == {"s1_data_0", "s1_created_at_0", "s1_data_1", "s1_created_at_1"}
    assert combined([first, insert_messages(2)]) is both  # built once
    rows = [line(7, "out", "a"), line(7, "out", "b")]
    assert message_params(rows)["text_1"] == "b" and message_params(rows)["conversation_id_0"] == 7
