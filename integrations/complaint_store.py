"""Data access to the ``complaints`` table shared by the complaint desk and the local back end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from integrations.base import OPEN_STATUSES, Complaint, ComplaintReport, ComplaintStatus
from integrations.geo import bounding_box, haversine_m
from storage.backend_models import ComplaintRecord, TicketCounter
from storage.db import dialect_of

TICKET_PREFIX = "ADU"


def insert_for(session: AsyncSession, model: Any) -> Any:
    """An INSERT for ``model`` with ON CONFLICT support on either database."""
    return pg_insert(model) if dialect_of(session) == "postgresql" else sqlite_insert(model)


def to_complaint(row: ComplaintRecord) -> Complaint:
    """Our value for one row (a pending row's ticket is its local reference)."""
    return Complaint(
        ticket=row.ticket or row.local_ref,
        category=row.category,
        status=ComplaintStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        description=row.description,
        reporter=row.reporter,
        lat=row.lat,
        lon=row.lon,
        address=row.address,
        kelurahan_code=row.kelurahan_code,
        note=row.note,
        due_at=row.due_at,
        agency=row.agency,
        supporters=row.supporters,
        media_keys=tuple(str(k) for k in row.media_keys or ()),
        local_ref=row.local_ref,
    )


async def store_report(
    session: AsyncSession,
    *,
    report: ComplaintReport,
    backend: str,
    now: datetime,
    claimed_until: datetime | None = None,
) -> tuple[ComplaintRecord, bool]:
    """The row of ``report.local_ref``, inserted as pending when new; True when this call inserted it."""
    stmt = (
        insert_for(session, ComplaintRecord)
        .values(
            local_ref=report.local_ref,
            backend=backend,
            category=report.category,
            description=report.description,
            reporter=report.reporter,
            status=ComplaintStatus.PENDING.value,
            lat=report.lat,
            lon=report.lon,
            address=report.address,
            kelurahan_code=report.kelurahan_code,
            media_keys=list(report.media_keys),
            supporters=0,
            submit_attempts=0,
            next_attempt_at=now,
            claimed_until=claimed_until,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["local_ref"])
    )
    inserted = bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
    row = await by_local_ref(session, local_ref=report.local_ref)
    assert row is not None
    return row, inserted


async def by_local_ref(session: AsyncSession, *, local_ref: str) -> ComplaintRecord | None:
    """The row with this local reference."""
    stmt = select(ComplaintRecord).where(ComplaintRecord.local_ref == local_ref)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_ticket(
    session: AsyncSession, *, ticket: str, backend: str | None = None
) -> ComplaintRecord | None:
    """The row with this ticket (optionally only of one back end)."""
    stmt = select(ComplaintRecord).where(ComplaintRecord.ticket == ticket)
    if backend is not None:
        stmt = stmt.where(ComplaintRecord.backend == backend)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_ticket_or_ref(session: AsyncSession, *, key: str) -> ComplaintRecord | None:
    """The row whose ticket or local reference is ``key`` (case-insensitive for our own formats)."""
    key = key.strip()
    for candidate in dict.fromkeys((key, key.upper())):
        row = await by_ticket(session, ticket=candidate) or await by_local_ref(session, local_ref=candidate)
        if row is not None:
            return row
    return None


async def of_reporter(session: AsyncSession, *, reporter: str, limit: int) -> Sequence[ComplaintRecord]:
    """A reporter's rows, newest first."""
    stmt = (
        select(ComplaintRecord)
        .where(ComplaintRecord.reporter == reporter)
        .order_by(ComplaintRecord.created_at.desc(), ComplaintRecord.id.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def nearby_rows(
    session: AsyncSession,
    *,
    category: str,
    lat: float,
    lon: float,
    radius_m: float,
    backend: str | None = None,
) -> list[tuple[float, ComplaintRecord]]:
    """Open rows of ``category`` within ``radius_m``: a bounding box in SQL, then the exact distance."""
    box = bounding_box(lat, lon, radius_m)
    stmt = select(ComplaintRecord).where(
        ComplaintRecord.category == category,
        ComplaintRecord.status.in_([s.value for s in OPEN_STATUSES]),
        ComplaintRecord.lat.between(box.min_lat, box.max_lat),
        ComplaintRecord.lon.between(box.min_lon, box.max_lon),
    )
    if backend is not None:
        stmt = stmt.where(ComplaintRecord.backend == backend)
    found: list[tuple[float, ComplaintRecord]] = []
    for row in (await session.execute(stmt)).scalars():
        assert row.lat is not None and row.lon is not None
        distance = haversine_m(lat, lon, row.lat, row.lon)
        if distance <= radius_m:
            found.append((distance, row))
    found.sort(key=lambda pair: (pair[0], pair[1].id))
    return found


async def next_ticket(session: AsyncSession, *, year: int) -> str:
    """The next ticket number of ``year`` (ADU-YYYY-NNNNNN); atomic under concurrent filings."""
    stmt = (
        insert_for(session, TicketCounter)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )
    number = int((await session.execute(stmt)).scalar_one())
    return f"{TICKET_PREFIX}-{year:04d}-{number:06d}"
