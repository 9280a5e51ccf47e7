"""Erasure ("hapus data saya") reaches every column that can hold a resident's words or identifiers.

Two guards: the schema test lists every text and JSON column of every table and fails when one is
neither erased nor exempted with a reason next to the erasure code (a column added later must be
decided on); the end-to-end test fills every place a resident's NIK, phone and chat id travel to
(transcript, complaint, its history, staff replies and notes, notifications, the audit log, the
conversation's memory), erases, and searches every text and JSON column of every table for them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, LargeBinary, String, select

from bot.runtime import Runtime
from storage import erasure_coverage as coverage
from storage import privacy_repository as privacy
from storage.db import Database
from storage.models import Conversation, Resident
from storage.schema import metadata
from tests.bot.staff.conftest import TEXTS, Clock, file_complaint, resident_id_of_session, texts_of
from tests.bot.staff.conftest import Resident as WebResident
from tests.conftest import LiveServer
from tests.factories import incoming

NIK = "6171015508900003"
PHONE_DIGITS = "81256780003"  # what every way of writing the number below has in common
PHONES = ("081256780003", "0812-5678-0003", "+62 812 5678 0003", "+6281256780003")
NON_DIGIT = re.compile(r"\D")


def text_columns() -> list[str]:
    """``table.column`` of every column that can hold text: strings, JSON, and bytes."""
    return sorted(
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, String | JSON | LargeBinary)
    )


def test_every_text_column_is_erased_or_exempted_with_a_reason() -> None:
    columns = set(text_columns())
    erased, exempt = set(coverage.ERASED_COLUMNS), set(coverage.ERASURE_EXEMPT)

    assert sorted(columns - erased - exempt) == [], "decide: erase these columns or exempt them (why)"
    assert sorted((erased | exempt) - columns) == [], "these columns are gone: drop them from the lists"
    assert sorted(erased & exempt) == []
    assert [
        c for c, why in {**coverage.ERASED_COLUMNS, **coverage.ERASURE_EXEMPT}.items() if not why.strip()
    ] == []


async def everything_stored(db: Database) -> list[tuple[str, str]]:
    """Every value of every text and JSON column of every table, as ``(table.column, text)``."""
    found: list[tuple[str, str]] = []
    async with db.session() as session:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | JSON | LargeBinary)]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    if isinstance(value, bytes):
                        text = value.decode("latin-1")
                    elif isinstance(value, str):
                        text = value
                    else:
                        text = json.dumps(value, ensure_ascii=False)
                    found.append((f"{table.name}.{column.name}", text))
    return found


def mentions(text: str, chat_id: str) -> list[str]:
    """Which of the resident's identifiers ``text`` holds, however the digits are separated."""
    digits = NON_DIGIT.sub("", text)
    hits = []
    if NIK in digits:
        hits.append("nik")
    if PHONE_DIGITS in digits:
        hits.append("phone")
    if chat_id in text:
        hits.append("chat id")
    return hits


async def erase(warga: WebResident) -> None:
    asked = await warga.say("hapus data saya")
    assert texts_of(asked) == [TEXTS.render("id", "privacy.erase_ask")]
    done = await warga.press("/affirm")
    assert texts_of(done) == [TEXTS.render("id", "privacy.erased")]


@pytest.mark.usefixtures("complaint_clock")
async def test_after_erasure_no_column_of_any_table_holds_the_residents_nik_phone_or_chat_id(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    resident: Callable[[str], WebResident],
    outbox: Any,
    clock: Clock,
) -> None:
    chat = "sesi-hapus-6d1f0c2a"
    warga = resident(chat)
    rt = live_server.runtime
    await warga.say(f"halo, NIK saya {NIK}, hp {PHONES[1]}")
    rid = await resident_id_of_session(rt, chat)
    complaint = await file_complaint(
        rt, resident_id=rid, description=f"Jalan berlubang. Hubungi {PHONES[0]}, NIK {NIK}."
    )
    asked = await warga.say(f"status laporan {complaint.ticket}")
    assert asked
    changed = await api.post(
        f"/api/staff/complaints/{complaint.ticket}/status",
        json={"status": "verified", "note": f"Pelapor ({PHONES[2]}) sudah dihubungi, NIK {NIK} cocok."},
    )
    assert changed.status_code == 200, changed.text
    await warga.say("mau bicara dengan petugas")
    await warga.say(f"Pak, nomor saya {PHONES[3]}, NIK {NIK}")
    handoff = (await api.get("/api/staff/handoffs")).json()["handoffs"][0]
    replied = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/reply",
        json={"text": f"Baik, kami telepon ke {PHONES[1]} ya.", "idempotency_key": f"balas-{chat}"},
    )
    assert replied.status_code == 200, replied.text
    closed = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/close",
        json={"note": f"Warga NIK {NIK}, hp {PHONES[0]}; sudah ditelepon."},
    )
    assert closed.status_code == 200, closed.text
    await outbox.deliver_due()
    before = [
        (column, hits) for column, text in await everything_stored(rt.db) if (hits := mentions(text, chat))
    ]
    assert {"audit_log.details", "handoffs.close_note", "complaint_events.note", "outbox.body"} <= {
        column for column, _ in before
    }, "the scenario must put the identifiers where erasure used to miss them"
    async with rt.db.session() as session:
        memory = (
            await session.execute(select(Conversation.slots).join(Resident).where(Resident.id == rid))
        ).scalar_one()
    assert memory.get("last_ticket") == complaint.ticket

    await erase(warga)

    left = [
        (column, hits) for column, text in await everything_stored(rt.db) if (hits := mentions(text, chat))
    ]
    assert left == []
    async with rt.db.session() as session:
        erased = await session.get(Resident, rid)
        conversation = (
            await session.execute(select(Conversation).where(Conversation.resident_id == rid))
        ).scalar_one()
    assert erased is not None and erased.erased_at is not None
    assert (conversation.state, conversation.slots) == (None, {})


async def test_erasure_during_an_open_handoff_closes_it_so_staff_cannot_write_into_it(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], WebResident], clock: Clock
) -> None:
    chat = "sesi-hapus-serah"
    warga = resident(chat)
    await warga.say("mau bicara dengan petugas")
    await warga.say(f"Pak, hp saya {PHONES[1]}")
    (handoff,) = (await api.get("/api/staff/handoffs")).json()["handoffs"]

    await erase(warga)
    late = await api.post(
        f"/api/staff/handoffs/{handoff['id']}/reply", json={"text": f"Kami telepon ke {PHONES[0]}."}
    )

    assert (await api.get("/api/staff/handoffs")).json()["handoffs"] == []
    assert late.status_code == 409, late.text
    left = [
        (c, hits)
        for c, text in await everything_stored(live_server.runtime.db)
        if (hits := mentions(text, chat))
    ]
    assert left == []


async def test_the_same_chat_can_be_erased_twice_and_the_erased_rows_are_not_linked_to_it(
    runtime: Runtime,
) -> None:
    async def erase_once() -> None:
        for msg in (
            incoming("halo", chat_id="6281256780003"),
            incoming("hapus data saya", chat_id="6281256780003"),
        ):
            await runtime.dispatcher.handle(msg)
        done = await runtime.dispatcher.handle(incoming(None, chat_id="6281256780003", payload="/affirm"))
        assert [r.text for r in done.replies] == [TEXTS.render("id", "privacy.erased")]

    await erase_once()
    await erase_once()

    async with runtime.db.session() as session:
        rows = (await session.execute(select(Resident.external_id, Resident.erased_at))).all()
    assert len(rows) == 2 and all(at is not None for _, at in rows)
    assert len({external_id for external_id, _ in rows}) == 2
    assert all(PHONE_DIGITS not in NON_DIGIT.sub("", external_id) for external_id, _ in rows)


M = privacy.ERASED_MARK


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("NIK 6171015508900003.", f"NIK {M}."),
        ("NIK 6171.0155.0890.0003", f"NIK {M}"),
        ("NIK 6171\u200b015508900003", f"NIK {M}"),
        ("hp 081256780003", f"hp {M}"),
        ("hp 0812-5678-0003", f"hp {M}"),
        ("hp +62 812 5678 0003", f"hp {M}"),
        ("wa.me/6281256780003 atau whatsapp:+6281256780003", f"wa.me/{M} atau {M}"),
        ("tiket ADU-2026-000123, RT 003", "tiket ADU-2026-000123, RT 003"),
    ],
)
def test_kept_text_loses_the_erased_residents_numbers_however_they_are_written(text: str, kept: str) -> None:
    redact = privacy.Redactor(lambda t: t, chat_id="whatsapp:+6281256780003", values=[NIK])

    assert redact.text(text) == kept
