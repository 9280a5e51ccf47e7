"""Complaints kept in our own database and worked from the staff console (the ``local`` back end).

Lifecycle: open → verified → forwarded (to the responsible OPD) → in_progress → resolved; any open
status may end in rejected. Every transition carries a note and who made it (``complaint_events``),
which is also what ``changes_since`` reads. Tickets are ``ADU-YYYY-NNNNNN`` from a per-year counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, or_, select

from integrations.base import (
    TRANSITIONS,
    BackendRejected,
    Changes,
    Complaint,
    ComplaintPage,
    ComplaintReport,
    ComplaintStatus,
    InvalidTransition,
    StatusChange,
)
from integrations.complaint_store import (
    by_local_ref,
    by_ticket,
    nearby_rows,
    next_ticket,
    store_report,
    to_complaint,
)
from integrations.sla import ServiceLevels
from integrations.units import unit_of_work
from storage.backend_models import ComplaintEvent, ComplaintRecord
from storage.db import Database

logger = logging.getLogger(__name__)

BACKEND = "local"
S = ComplaintStatus


class LocalComplaintBackend:
    """Complaints in our ``complaints`` table, with tickets, service levels and a staff-driven lifecycle."""

    name = "local-complaints"

    def __init__(
        self,
        db: Database,
        *,
        levels: ServiceLevels | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.levels = levels or ServiceLevels()
        self._clock = clock or (lambda: datetime.now(UTC))

    async def create(self, report: ComplaintReport) -> Complaint:
        """File a report: a ticket, status open, a due date; the same ``local_ref`` files once."""
        now = self._clock()
        async with unit_of_work(self.db) as session:
            stored, _ = await store_report(session, report=report, backend=BACKEND, now=now)
            row = await session.get(ComplaintRecord, stored.id, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.ticket is not None:
                return to_complaint(row)
            local_year = now.astimezone(self.levels.timezone).year
            row.ticket = await next_ticket(session, year=local_year)
            row.backend = BACKEND
            row.status = S.OPEN.value
            row.due_at = self.levels.due_at(row.category, now)
            row.submitted_at = now
            row.updated_at = now
            row.claimed_until = None
            row.last_error = None
            session.add(
                ComplaintEvent(
                    complaint_id=row.id,
                    from_status=S.PENDING.value,
                    to_status=S.OPEN.value,
                    note=None,
                    actor="bot",
                    created_at=now,
                )
            )
            await session.flush()
            logger.info("complaint %s filed (%s, due %s)", row.ticket, row.category, row.due_at)
            return to_complaint(row)

    async def get(self, ticket: str) -> Complaint | None:
        """The local complaint with this ticket, or None."""
        async with unit_of_work(self.db) as session:
            row = await by_ticket(session, ticket=ticket.strip().upper(), backend=BACKEND)
            return to_complaint(row) if row is not None else None

    async def transition(
        self,
        ticket: str,
        to: ComplaintStatus | str,
        *,
        note: str,
        actor: str,
        agency: str | None = None,
    ) -> Complaint:
        """Move a complaint on (staff console); ``forwarded`` sets the responsible office.

        Raises:
            BackendRejected: no such complaint, or no note given.
            InvalidTransition: the complaint cannot go from where it stands to ``to``.
        """
        if not note.strip():
            raise BackendRejected("a note is required for every status change", backend=self.name)
        try:
            target = S(to)
        except ValueError:
            raise InvalidTransition(f"unknown complaint status {to!r}", backend=self.name) from None
        now = self._clock()
        async with unit_of_work(self.db) as session:
            found = await by_ticket(session, ticket=ticket.strip().upper(), backend=BACKEND)
            if found is None:
                raise BackendRejected(f"no complaint {ticket}", backend=self.name)
            row = await session.get(ComplaintRecord, found.id, with_for_update=True, populate_existing=True)
            assert row is not None
            current = S(row.status)
            if target not in TRANSITIONS.get(current, frozenset()):
                allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "none (final)"
                raise InvalidTransition(
                    f"{row.ticket} is {current.value}; it can go to: {allowed}", backend=self.name
                )
            row.status = target.value
            row.note = note.strip()
            row.updated_at = now
            if target is S.FORWARDED:
                row.agency = agency or self.levels.agency_for(row.category)
            session.add(
                ComplaintEvent(
                    complaint_id=row.id,
                    from_status=current.value,
                    to_status=target.value,
                    note=note.strip(),
                    actor=actor,
                    created_at=now,
                )
            )
            await session.flush()
            logger.info("complaint %s: %s -> %s by %s", row.ticket, current.value, target.value, actor)
            return to_complaint(row)

    async def history(self, ticket: str) -> Sequence[StatusChange]:
        """Every status change of a complaint, oldest first (empty when there is no such complaint)."""
        async with unit_of_work(self.db) as session:
            row = await by_ticket(session, ticket=ticket.strip().upper(), backend=BACKEND)
            if row is None:
                return []
            stmt = (
                select(ComplaintEvent)
                .where(ComplaintEvent.complaint_id == row.id)
                .order_by(ComplaintEvent.id)
            )
            return [
                StatusChange(
                    from_status=S(e.from_status) if e.from_status else None,
                    to_status=S(e.to_status),
                    note=e.note,
                    actor=e.actor,
                    at=e.created_at,
                )
                for e in (await session.execute(stmt)).scalars()
            ]

    async def changes_since(self, cursor: str | None) -> Changes[Complaint]:
        """Complaints whose status changed after ``cursor`` (an event id); None starts from now."""
        async with unit_of_work(self.db) as session:
            last = (await session.execute(select(func.max(ComplaintEvent.id)))).scalar_one()
            if cursor is None:
                return Changes(items=(), cursor=str(last or 0))
            try:
                after = int(cursor)
            except ValueError:
                raise BackendRejected(
                    f"not a local complaint cursor: {cursor!r}", backend=self.name
                ) from None
            stmt = (
                select(ComplaintEvent.complaint_id, func.max(ComplaintEvent.id).label("last_id"))
                .where(ComplaintEvent.id > after)
                .group_by(ComplaintEvent.complaint_id)
                .order_by("last_id")
            )
            changed = (await session.execute(stmt)).all()
            items: list[Complaint] = []
            for complaint_id, _ in changed:
                row = await session.get(ComplaintRecord, complaint_id)
                if row is not None and row.backend == BACKEND:
                    items.append(to_complaint(row))
            newest = max((last_id for _, last_id in changed), default=after)
            return Changes(items=items, cursor=str(newest))

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Open local complaints of ``category`` within ``radius_m``, nearest first."""
        async with unit_of_work(self.db) as session:
            rows = await nearby_rows(
                session, category=category, lat=lat, lon=lon, radius_m=radius_m, backend=BACKEND
            )
            return [to_complaint(row) for _, row in rows if row.ticket is not None]

    async def search(
        self,
        *,
        status: ComplaintStatus | str | Sequence[ComplaintStatus | str] | None = None,
        category: str | None = None,
        agency: str | None = None,
        kelurahan_code: str | None = None,
        text: str | None = None,
        overdue: bool | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ComplaintPage:
        """Local complaints matching every given filter, newest first, with the total count.

        ``text`` matches ticket, description or address; ``overdue`` means still open past its due date.
        """
        conditions = [ComplaintRecord.backend == BACKEND, ComplaintRecord.ticket.is_not(None)]
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            conditions.append(ComplaintRecord.status.in_([S(s).value for s in wanted]))
        if category:
            conditions.append(ComplaintRecord.category == category)
        if agency:
            conditions.append(ComplaintRecord.agency == agency)
        if kelurahan_code:
            conditions.append(ComplaintRecord.kelurahan_code == kelurahan_code)
        if text:
            pattern = f"%{text.strip().lower()}%"
            conditions.append(
                or_(
                    func.lower(ComplaintRecord.ticket).like(pattern),
                    func.lower(ComplaintRecord.description).like(pattern),
                    func.lower(func.coalesce(ComplaintRecord.address, "")).like(pattern),
                )
            )
        if overdue is not None:
            now = self._clock()
            still_open = ComplaintRecord.status.not_in([S.RESOLVED.value, S.REJECTED.value])
            late = ComplaintRecord.due_at < now
            conditions.append(still_open & late if overdue else ~(still_open & late))
        if created_from is not None:
            conditions.append(ComplaintRecord.created_at >= created_from)
        if created_to is not None:
            conditions.append(ComplaintRecord.created_at < created_to)
        async with unit_of_work(self.db) as session:
            total = (
                await session.execute(select(func.count()).select_from(ComplaintRecord).where(*conditions))
            ).scalar_one()
            stmt = (
                select(ComplaintRecord)
                .where(*conditions)
                .order_by(ComplaintRecord.created_at.desc(), ComplaintRecord.id.desc())
                .limit(limit)
                .offset(offset)
            )
            rows = (await session.execute(stmt)).scalars().all()
            return ComplaintPage(items=[to_complaint(r) for r in rows], total=int(total))

    async def by_local_ref(self, local_ref: str) -> Complaint | None:
        """The complaint filed under our local reference, if filed here."""
        async with unit_of_work(self.db) as session:
            row = await by_local_ref(session, local_ref=local_ref)
            return to_complaint(row) if row is not None and row.backend == BACKEND else None
