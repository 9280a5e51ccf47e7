"""The complaint desk flows talk to: every accepted report is stored first, then filed with the back end.

When the back end is down (or only hands out a token), the report stays ``pending`` in our
``complaints`` table under its local reference; :meth:`StoringComplaintDesk.submit_pending` (run by a
job) files it later, exactly once per local reference, and records the ticket in the same transaction
as whatever the caller's ``on_ticket`` hook writes (the resident's notification).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from integrations.base import (
    Complaint,
    ComplaintBackend,
    ComplaintReport,
    ComplaintStatus,
    Filing,
    IntegrationError,
    NearbySearching,
    TicketNotAssigned,
    TokenResolving,
)
from integrations.complaint_store import (
    by_local_ref,
    by_ticket_or_ref,
    insert_for,
    nearby_rows,
    of_reporter,
    store_report,
    to_complaint,
)
from integrations.geo import haversine_m
from integrations.units import unit_of_work
from storage.backend_models import ComplaintRecord, ComplaintSupporter
from storage.db import Database

logger = logging.getLogger(__name__)

TicketHook = Callable[[AsyncSession, Filing], Awaitable[None]]
"""Called in the transaction that records a late ticket (queue the resident's push there)."""


class StoringComplaintDesk:
    """A :class:`ComplaintDesk` over any :class:`ComplaintBackend`, keeping every report in our database.

    ``kind`` names the back end in the ``complaints.backend`` column (``local`` or ``open311``).
    """

    def __init__(
        self,
        db: Database,
        backend: ComplaintBackend,
        *,
        kind: str,
        clock: Callable[[], datetime] | None = None,
        lease: timedelta = timedelta(minutes=2),
        retry_base: timedelta = timedelta(seconds=30),
        retry_max: timedelta = timedelta(hours=1),
    ) -> None:
        self.db = db
        self.backend = backend
        self.kind = kind
        self.lease = lease
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        """The desk's name in logs (after its back end)."""
        return f"desk/{self.backend.name}"

    async def aclose(self) -> None:
        """Close the back end's HTTP client, if it has one."""
        closer = getattr(self.backend, "aclose", None)
        if closer is not None:
            await closer()

    async def file(self, report: ComplaintReport) -> Filing:
        """Store the report, then file it; a back end that is down leaves it pending for the job."""
        now = self._clock()
        async with unit_of_work(self.db) as session:
            row, inserted = await store_report(
                session, report=report, backend=self.kind, now=now, claimed_until=now + self.lease
            )
            if not inserted:
                return _filing(row)
        try:
            complaint = await self.backend.create(report)
        except TicketNotAssigned as exc:
            logger.warning(
                "complaint %s accepted by %s, ticket pending: %s", report.local_ref, self.backend.name, exc
            )
            await self._failed(report.local_ref, str(exc), token=exc.token)
            return await self._pending(report.local_ref)
        except IntegrationError as exc:
            logger.warning(
                "complaint %s stored, %s failed; the job files it later",
                report.local_ref,
                self.backend.name,
                exc_info=True,
            )
            await self._failed(report.local_ref, str(exc))
            return await self._pending(report.local_ref)
        async with unit_of_work(self.db) as session:
            row = await self._record(session, report.local_ref, complaint)
            return _filing(row)

    async def submit_pending(self, *, limit: int = 20, on_ticket: TicketHook | None = None) -> list[Filing]:
        """File due pending reports (each claimed by one runner); returns those that got a ticket now."""
        now = self._clock()
        claimed = await self._claim(now, limit)
        done: list[Filing] = []
        for local_ref, token in claimed:
            report = await self._report_of(local_ref)
            if report is None:
                continue
            try:
                if token and isinstance(self.backend, TokenResolving):
                    complaint = await self.backend.resolve_token(token)
                    if complaint is None:
                        await self._failed(local_ref, "Open311 has not assigned a ticket yet", token=token)
                        continue
                else:
                    complaint = await self.backend.create(report)
            except TicketNotAssigned as exc:
                await self._failed(local_ref, str(exc), token=exc.token)
                continue
            except IntegrationError as exc:
                logger.warning("pending complaint %s not filed yet: %s", local_ref, exc)
                await self._failed(local_ref, str(exc))
                continue
            async with self.db.session() as session:
                row = await self._record(session, local_ref, complaint)
                filing = _filing(row)
                if on_ticket is not None:
                    await on_ticket(session, filing)
            logger.info("pending complaint %s filed as %s", local_ref, filing.ticket)
            done.append(filing)
        return done

    async def pending_count(self) -> int:
        """How many reports still wait to be filed."""
        async with unit_of_work(self.db) as session:
            stmt = (
                select(func.count())
                .select_from(ComplaintRecord)
                .where(ComplaintRecord.status == ComplaintStatus.PENDING.value)
            )
            return int((await session.execute(stmt)).scalar_one())

    async def get(self, ticket: str) -> Complaint | None:
        """A complaint by ticket or local reference (fresh from the back end when it is not ours)."""
        async with unit_of_work(self.db) as session:
            row = await by_ticket_or_ref(session, key=ticket)
            cached = to_complaint(row) if row is not None else None
            remote = row is not None and row.ticket is not None and row.backend != "local"
        if cached is None:
            if self.kind == "local":
                return None
            return await self.backend.get(ticket)
        if not remote:
            return cached
        return await self._refreshed(cached)

    async def for_reporter(self, reporter: str, *, limit: int = 5) -> Sequence[Complaint]:
        """The resident's own complaints, newest first (remote ones refreshed when the back end answers)."""
        async with unit_of_work(self.db) as session:
            rows = await of_reporter(session, reporter=reporter, limit=limit)
            complaints = [
                (to_complaint(row), row.ticket is not None and row.backend != "local") for row in rows
            ]
        return [await self._refreshed(c) if remote else c for c, remote in complaints]

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Open complaints of ``category`` within ``radius_m``: ours (pending too) and the back end's."""
        async with unit_of_work(self.db) as session:
            ours = [
                (distance, to_complaint(row))
                for distance, row in await nearby_rows(
                    session, category=category, lat=lat, lon=lon, radius_m=radius_m
                )
            ]
        found = {c.ticket: (d, c) for d, c in ours}
        if self.kind != "local" and isinstance(self.backend, NearbySearching):
            try:
                remote = await self.backend.nearby(category=category, lat=lat, lon=lon, radius_m=radius_m)
            except IntegrationError as exc:
                logger.warning("nearby search on %s failed; local matches only: %s", self.backend.name, exc)
                remote = []
            for complaint in remote:
                if complaint.ticket not in found and complaint.lat is not None and complaint.lon is not None:
                    found[complaint.ticket] = (haversine_m(lat, lon, complaint.lat, complaint.lon), complaint)
        return [c for _, c in sorted(found.values(), key=lambda pair: pair[0])]

    async def add_supporter(self, ticket: str, reporter: str) -> Complaint | None:
        """Count the resident in on an existing complaint (once); None when there is no such complaint."""
        async with unit_of_work(self.db) as session:
            row = await by_ticket_or_ref(session, key=ticket)
        remote: Complaint | None = None
        if row is None and self.kind != "local":
            remote = await self.backend.get(ticket)
            if remote is None:
                return None
        elif row is None:
            return None
        async with unit_of_work(self.db) as session:
            if row is None:
                assert remote is not None
                row = await self._mirror(session, remote)
            if row.reporter == reporter:
                return to_complaint(row)
            stmt = (
                insert_for(session, ComplaintSupporter)
                .values(complaint_id=row.id, reporter=reporter, created_at=self._clock())
                .on_conflict_do_nothing(index_elements=["complaint_id", "reporter"])
            )
            if (await session.execute(stmt)).rowcount:  # type: ignore[attr-defined]
                await session.execute(
                    update(ComplaintRecord)
                    .where(ComplaintRecord.id == row.id)
                    .values(supporters=ComplaintRecord.supporters + 1)
                )
            fresh = await session.get(ComplaintRecord, row.id, populate_existing=True)
            assert fresh is not None
            return to_complaint(fresh)

    async def _claim(self, now: datetime, limit: int) -> list[tuple[str, str | None]]:
        async with self.db.session() as session:
            due = (
                select(ComplaintRecord.id)
                .where(
                    ComplaintRecord.status == ComplaintStatus.PENDING.value,
                    ComplaintRecord.ticket.is_(None),
                    or_(ComplaintRecord.next_attempt_at.is_(None), ComplaintRecord.next_attempt_at <= now),
                    or_(ComplaintRecord.claimed_until.is_(None), ComplaintRecord.claimed_until < now),
                )
                .order_by(ComplaintRecord.id)
                .limit(limit)
            )
            ids = list((await session.execute(due)).scalars())
            if not ids:
                return []
            # The same conditions again in the UPDATE: of two runners, only one claims each row.
            stmt = (
                update(ComplaintRecord)
                .where(
                    ComplaintRecord.id.in_(ids),
                    ComplaintRecord.status == ComplaintStatus.PENDING.value,
                    ComplaintRecord.ticket.is_(None),
                    or_(ComplaintRecord.claimed_until.is_(None), ComplaintRecord.claimed_until < now),
                )
                .values(claimed_until=now + self.lease)
                .returning(ComplaintRecord.local_ref, ComplaintRecord.backend_token)
            )
            return [(ref, token) for ref, token in (await session.execute(stmt)).all()]

    async def _report_of(self, local_ref: str) -> ComplaintReport | None:
        async with self.db.session() as session:
            row = await by_local_ref(session, local_ref=local_ref)
            if row is None:
                return None
            return ComplaintReport(
                category=row.category,
                description=row.description,
                reporter=row.reporter or "",
                local_ref=row.local_ref,
                lat=row.lat,
                lon=row.lon,
                address=row.address,
                kelurahan_code=row.kelurahan_code,
                media_keys=tuple(str(k) for k in row.media_keys or ()),
            )

    async def _record(self, session: AsyncSession, local_ref: str, complaint: Complaint) -> ComplaintRecord:
        found = await by_local_ref(session, local_ref=local_ref)
        assert found is not None, f"complaint {local_ref} vanished while being filed"
        row = await session.get(ComplaintRecord, found.id, with_for_update=True, populate_existing=True)
        assert row is not None
        now = self._clock()
        if row.ticket is None or row.ticket == complaint.ticket:
            row.ticket = complaint.ticket
            if row.status == ComplaintStatus.PENDING.value:
                row.status = complaint.status.value
            row.backend = self.kind
            row.due_at = row.due_at or complaint.due_at
            row.agency = row.agency or complaint.agency
            row.note = row.note or complaint.note
            row.submitted_at = row.submitted_at or now
        row.claimed_until = None
        row.backend_token = None
        row.last_error = None
        row.updated_at = now
        await session.flush()
        return row

    async def _failed(self, local_ref: str, error: str, *, token: str | None = None) -> None:
        now = self._clock()
        async with unit_of_work(self.db) as session:
            row = await by_local_ref(session, local_ref=local_ref)
            if row is None or row.ticket is not None:
                return
            row.submit_attempts += 1
            backoff = min(self.retry_max, self.retry_base * (2 ** min(row.submit_attempts - 1, 16)))
            row.next_attempt_at = now + backoff
            row.claimed_until = None
            row.last_error = error[:2000]
            if token:
                row.backend_token = token
            row.updated_at = now

    async def _pending(self, local_ref: str) -> Filing:
        async with unit_of_work(self.db) as session:
            row = await by_local_ref(session, local_ref=local_ref)
            assert row is not None
            return _filing(row)

    async def _refreshed(self, cached: Complaint) -> Complaint:
        try:
            fresh = await self.backend.get(cached.ticket)
        except IntegrationError as exc:
            logger.info(
                "%s unavailable; showing the stored status of %s: %s", self.backend.name, cached.ticket, exc
            )
            return cached
        if fresh is None:
            return cached
        async with unit_of_work(self.db) as session:
            row = await by_ticket_or_ref(session, key=cached.ticket)
            if row is not None and (row.status != fresh.status.value or row.note != fresh.note):
                row.status = fresh.status.value
                row.note = fresh.note
                row.agency = fresh.agency or row.agency
                row.due_at = fresh.due_at or row.due_at
                row.updated_at = fresh.updated_at
            merged = to_complaint(row) if row is not None else fresh
        return merged

    async def _mirror(self, session: AsyncSession, complaint: Complaint) -> ComplaintRecord:
        """A row for a back-end complaint we did not file (so residents can support it)."""
        now = self._clock()
        await session.execute(
            insert_for(session, ComplaintRecord)
            .values(
                local_ref=f"{self.kind}:{complaint.ticket}"[:64],
                ticket=complaint.ticket,
                backend=self.kind,
                category=complaint.category,
                description=complaint.description,
                reporter=None,
                status=complaint.status.value,
                lat=complaint.lat,
                lon=complaint.lon,
                address=complaint.address,
                media_keys=[],
                note=complaint.note,
                agency=complaint.agency,
                due_at=complaint.due_at,
                supporters=0,
                submit_attempts=0,
                submitted_at=complaint.created_at,
                created_at=complaint.created_at,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
        row = await by_ticket_or_ref(session, key=complaint.ticket)
        assert row is not None
        return row


def _filing(row: ComplaintRecord) -> Filing:
    complaint = to_complaint(row)
    return Filing(local_ref=row.local_ref, ticket=row.ticket, complaint=complaint, pending=row.ticket is None)
