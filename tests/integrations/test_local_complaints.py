"""The local complaint system: tickets, working-day service levels, the staff lifecycle and search."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from integrations.base import (
    BackendRejected,
    ComplaintReport,
    ComplaintStatus,
    InvalidTransition,
)
from integrations.local_complaints import LocalComplaintBackend
from integrations.sla import ServiceLevels
from storage.db import Database
from tests import factories

WIB = ZoneInfo("Asia/Pontianak")
S = ComplaintStatus


def report(
    category: str = "road_damage", description: str = "Jalan berlubang", **fields: Any
) -> ComplaintReport:
    return factories.report(category, description, **fields)


def at(local: str) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=WIB).astimezone(UTC)


async def test_tickets_count_up_per_year_of_pontianak_time(db: Database) -> None:
    clock = [at("2026-12-31T23:50")]
    local = LocalComplaintBackend(db, clock=lambda: clock[0])

    first = await local.create(report())
    second = await local.create(report())
    clock[0] = at("2027-01-01T00:10")  # still 2026 in UTC
    third = await local.create(report())

    assert [first.ticket, second.ticket, third.ticket] == [
        "ADU-2026-000001",
        "ADU-2026-000002",
        "ADU-2027-000001",
    ]


async def test_concurrent_filings_from_separate_connections_get_distinct_tickets(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(4)]
    try:
        backends = [LocalComplaintBackend(d) for d in databases]
        filed = await asyncio.gather(*(backends[i % 4].create(report()) for i in range(12)))
    finally:
        for d in databases:
            await d.dispose()

    year = datetime.now(WIB).year
    assert sorted(c.ticket for c in filed) == [f"ADU-{year}-{n:06d}" for n in range(1, 13)]


async def test_filing_the_same_local_ref_twice_files_once(db: Database) -> None:
    local = LocalComplaintBackend(db)
    same = report()

    assert (await local.create(same)).ticket == (await local.create(same)).ticket


@pytest.mark.parametrize(
    ("filed", "category", "due"),
    [
        ("2026-03-13T10:00", "garbage", "2026-03-17"),  # Friday + 2 working days: Mon, Tue
        ("2026-03-17T10:00", "garbage", "2026-03-26"),  # Nyepi and Idulfitri holidays and cuti bersama
        ("2026-11-20T15:00", "road_damage", "2026-12-04"),
    ],
)
async def test_the_due_date_counts_working_days(db: Database, filed: str, category: str, due: str) -> None:
    local = LocalComplaintBackend(db, clock=lambda: at(filed))

    complaint = await local.create(report(category))

    assert complaint.due_at is not None
    assert complaint.due_at.astimezone(WIB).isoformat() == f"{due}T23:59:59+07:00"


def test_service_levels_come_from_config_with_defaults() -> None:
    levels = ServiceLevels({"garbage": 1}, {"garbage": "UPT Kebersihan"})

    assert (levels.days_for("garbage"), levels.days_for("street_light"), levels.days_for("unknown")) == (
        1,
        5,
        10,
    )
    assert (levels.agency_for("garbage"), levels.agency_for("road_damage")) == (
        "UPT Kebersihan",
        "Dinas PUPR",
    )


async def test_the_lifecycle_records_every_step_with_note_and_actor(db: Database) -> None:
    local = LocalComplaintBackend(db)
    ticket = (await local.create(report())).ticket

    await local.transition(ticket, "verified", note="Foto dan lokasi sesuai", actor="staff:ana")
    forwarded = await local.transition(ticket, S.FORWARDED, note="Diteruskan ke PUPR", actor="staff:ana")
    await local.transition(ticket, S.IN_PROGRESS, note="Tim turun ke lokasi", actor="staff:budi")
    done = await local.transition(ticket, S.RESOLVED, note="Lubang sudah ditambal", actor="staff:budi")
    history = await local.history(ticket)

    assert (forwarded.agency, done.status, done.note) == ("Dinas PUPR", S.RESOLVED, "Lubang sudah ditambal")
    assert [(h.from_status, h.to_status, h.actor) for h in history] == [
        (S.PENDING, S.OPEN, "bot"),
        (S.OPEN, S.VERIFIED, "staff:ana"),
        (S.VERIFIED, S.FORWARDED, "staff:ana"),
        (S.FORWARDED, S.IN_PROGRESS, "staff:budi"),
        (S.IN_PROGRESS, S.RESOLVED, "staff:budi"),
    ]


async def test_transitions_that_skip_steps_or_leave_a_final_state_are_refused(db: Database) -> None:
    local = LocalComplaintBackend(db)
    ticket = (await local.create(report())).ticket

    with pytest.raises(InvalidTransition, match="is open; it can go to: rejected, verified"):
        await local.transition(ticket, "resolved", note="Selesai", actor="staff:ana")
    with pytest.raises(BackendRejected, match="a note is required"):
        await local.transition(ticket, "rejected", note="  ", actor="staff:ana")
    await local.transition(ticket, "rejected", note="Bukan wewenang Pemkot", actor="staff:ana")
    with pytest.raises(InvalidTransition, match="none \\(final\\)"):
        await local.transition(ticket, "verified", note="Dibuka lagi", actor="staff:ana")
    with pytest.raises(BackendRejected, match="no complaint"):
        await local.transition("ADU-2026-999999", "verified", note="x", actor="staff:ana")


async def test_search_filters_what_the_staff_console_asks_for(db: Database) -> None:
    clock = [at("2026-11-02T09:00")]
    local = LocalComplaintBackend(db, clock=lambda: clock[0])
    late = await local.create(report("garbage", "Sampah menumpuk di pasar"))
    road = await local.create(report("road_damage", "Jalan amblas", address="Jl. Gajah Mada"))
    await local.transition(road.ticket, "verified", note="Cek", actor="staff:ana")
    clock[0] += timedelta(days=10)
    fresh = await local.create(report("garbage", "Sampah di parit"))

    by_status = await local.search(status="open")
    overdue = await local.search(overdue=True)
    by_text = await local.search(text="gajah mada")
    page = await local.search(category="garbage", limit=1)

    assert [c.ticket for c in by_status.items] == [fresh.ticket, late.ticket]
    assert [c.ticket for c in overdue.items] == [late.ticket]  # garbage: 2 working days
    assert [c.ticket for c in by_text.items] == [road.ticket]
    assert ([c.ticket for c in page.items], page.total) == ([fresh.ticket], 2)
