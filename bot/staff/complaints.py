"""Complaint work for the staff console: search, detail with history and photos, status changes.

A status change and the residents' notifications commit in ONE transaction: the local back end's
``transition`` joins this module's session (``integrations.units.joined``), and
:func:`bot.notifications.changes.queue_change` queues one row per subscriber with the change detector's own
idempotency key and moves their ``last_status``. When the poller later reads the same change from
``changes_since`` it finds every subscriber already told and queues nothing; should both ever race,
the idempotency key ``complaint:<ticket>:<status>:<resident>`` admits one row. So a resident is told
once, at once, with the note staff wrote for that very step (the poller alone would only see the
latest status).

With ``complaints.backend: open311`` complaints are worked in the Open311 system; the console lists
what the bot filed there, read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.notifications.changes import COMPLAINT_TOPIC, complaint_notice, queue_change
from bot.privacy import mask_id, mask_text
from bot.runtime import Runtime
from bot.staff.auth import Principal
from bot.staff.complaint_views import (
    CHANNEL_NAMES,
    PAGE_SIZE,
    ComplaintDetail,
    ComplaintFilters,
    ComplaintList,
    ComplaintRow,
    FiledElsewhere,
    HistoryLine,
    kelurahan_names,
)
from bot.staff.handoffs import StaffActionError, StaffDesk
from integrations.base import (
    TRANSITIONS,
    BackendRejected,
    Complaint,
    ComplaintStatus,
    ComplaintWorkbench,
    InvalidTransition,
    resident_id_of,
)
from integrations.units import joined
from storage import dashboard_repository as dashboard_repo
from storage import repositories as repo
from storage import staff_repository as staff_repo
from storage.backend_models import ComplaintRecord, ComplaintSupporter
from storage.models import Resident

logger = logging.getLogger(__name__)

MAX_NOTE = 1000
S = ComplaintStatus


class ComplaintWork:
    """What staff do with local complaints; each change one transaction with its audit line."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.desk = StaffDesk(rt)

    @property
    def local(self) -> bool:
        """True when complaints live in our database (else in Open311)."""
        return self.rt.backends.local_complaints is not None

    def _backend(self) -> ComplaintWorkbench:
        backend = self.rt.backends.local_complaints
        if backend is None:
            raise StaffActionError("Pengaduan dikelola di sistem Open311; ubah statusnya di sana.", 409)
        return backend

    # -- reading -------------------------------------------------------------------------------

    async def search(self, filters: ComplaintFilters) -> ComplaintList:
        """One page of local complaints matching ``filters``, newest first."""
        backend = self._backend()
        tz = self.rt.dispatcher.timezone
        created_from = datetime.combine(filters.date_from, time.min, tz) if filters.date_from else None
        created_to = (
            datetime.combine(filters.date_to + timedelta(days=1), time.min, tz) if filters.date_to else None
        )
        try:
            found = await backend.search(
                status=filters.status or None,
                category=filters.category or None,
                agency=filters.agency or None,
                kelurahan_code=filters.kelurahan or None,
                text=filters.text or None,
                overdue=True if filters.overdue else None,
                created_from=created_from,
                created_to=created_to,
                limit=PAGE_SIZE,
                offset=(max(1, filters.page) - 1) * PAGE_SIZE,
            )
        except ValueError:
            raise StaffActionError("Status tidak dikenal.", 422) from None
        reporters = await self._reporters([c.reporter for c in found.items])
        rows = tuple(self._row(c, reporters) for c in found.items)
        return ComplaintList(rows=rows, total=found.total, filters=filters)

    async def status_counts(self) -> dict[str, int]:
        """How many local complaints stand in each status, and how many open ones are overdue."""
        async with self.rt.db.session() as session:
            rows = (
                await session.execute(
                    select(ComplaintRecord.status, func.count())
                    .where(ComplaintRecord.backend == "local", ComplaintRecord.ticket.is_not(None))
                    .group_by(ComplaintRecord.status)
                )
            ).all()
            breaches = await dashboard_repo.complaint_sla_breaches(session, now=self.desk.now())
        counts = {str(status): int(n) for status, n in rows}
        counts["all"] = sum(counts.values())
        counts["overdue"] = sum(n for _, n in breaches)
        return counts

    async def detail(self, ticket: str) -> ComplaintDetail:
        """One complaint with history, supporters (masked), photos and the statuses it may go to."""
        backend = self._backend()
        complaint = await backend.get(ticket)
        if complaint is None:
            raise StaffActionError(f"Pengaduan {ticket} tidak ditemukan.", 404)
        history = await backend.history(complaint.ticket)
        async with self.rt.db.session() as session:
            record = (
                await session.execute(
                    select(ComplaintRecord.id).where(ComplaintRecord.ticket == complaint.ticket)
                )
            ).scalar_one()
            supporter_refs = (
                (
                    await session.execute(
                        select(ComplaintSupporter.reporter)
                        .where(ComplaintSupporter.complaint_id == record)
                        .order_by(ComplaintSupporter.created_at)
                    )
                )
                .scalars()
                .all()
            )
            subscribers = len(await repo.subscribers(session, topic=COMPLAINT_TOPIC, ref=complaint.ticket))
        reporters = await self._reporters([complaint.reporter, *supporter_refs])
        channel = None
        reporter_id = resident_id_of(complaint.reporter)
        if reporter_id is not None and reporter_id in reporters:
            channel = reporters[reporter_id][0]
        return ComplaintDetail(
            row=self._row(complaint, reporters),
            description=mask_text(complaint.description),
            lat=complaint.lat,
            lon=complaint.lon,
            note=complaint.note,
            history=tuple(
                HistoryLine(
                    h.from_status.value if h.from_status else None,
                    h.to_status.value,
                    h.note,
                    h.actor,
                    h.at,
                )
                for h in history
            ),
            supporters=tuple(self._who(ref, reporters) for ref in supporter_refs),
            next_statuses=tuple(s.value for s in _ordered(TRANSITIONS.get(complaint.status, frozenset()))),
            reporter_channel=channel,
            subscribers=subscribers,
            photo_keys=complaint.media_keys,
        )

    async def filed_in_open311(self, *, page: int = 1) -> tuple[list[FiledElsewhere], int]:
        """What the bot filed in the Open311 system, newest first, and how many in all."""
        async with self.rt.db.session() as session:
            where = ComplaintRecord.backend == "open311"
            total = (
                await session.execute(select(func.count()).select_from(ComplaintRecord).where(where))
            ).scalar_one()
            rows = (
                (
                    await session.execute(
                        select(ComplaintRecord)
                        .where(where)
                        .order_by(ComplaintRecord.created_at.desc(), ComplaintRecord.id.desc())
                        .limit(PAGE_SIZE)
                        .offset((max(1, page) - 1) * PAGE_SIZE)
                    )
                )
                .scalars()
                .all()
            )
            return [
                FiledElsewhere(
                    ticket=r.ticket,
                    local_ref=r.local_ref,
                    category=r.category,
                    status=r.status,
                    created_at=r.created_at,
                    summary=_summary(r.description),
                    last_error=r.last_error,
                )
                for r in rows
            ], int(total)

    async def photo(self, ticket: str, index: int, principal: Principal, *, ip: str | None = None) -> Path:
        """The file of a complaint's photo for a signed-in caller; every view is audit-logged."""
        backend = self._backend()
        complaint = await backend.get(ticket)
        if complaint is None or not 0 <= index < len(complaint.media_keys):
            raise StaffActionError("Foto tidak ditemukan.", 404)
        try:
            path = self.rt.media.path(complaint.media_keys[index])
        except KeyError:
            raise StaffActionError("Berkas foto tidak ada lagi di penyimpanan.", 404) from None
        async with self.rt.db.session() as session:
            await staff_repo.add_audit(
                session,
                who=principal.username,
                staff_user_id=principal.user_id,
                what="complaint.photo",
                target=f"complaint:{complaint.ticket}",
                details={"photo": index},
                ip=ip,
                now=self.desk.now(),
            )
        return path

    # -- acting --------------------------------------------------------------------------------

    async def transition(
        self,
        ticket: str,
        to: str,
        principal: Principal,
        *,
        note: str,
        agency: str | None = None,
        ip: str | None = None,
    ) -> tuple[Complaint, int]:
        """Move a complaint on with a note; its subscribers are notified once (same transaction).

        Returns the complaint as it now stands and how many notifications were queued.
        """
        backend = self._backend()
        note = note.strip()
        if not note:
            raise StaffActionError("Tulis catatan untuk perubahan status ini (warga ikut membacanya).", 422)
        if len(note) > MAX_NOTE:
            raise StaffActionError(f"Catatan terlalu panjang (paling banyak {MAX_NOTE} karakter).", 422)
        agency = (agency or "").strip() or None
        texts = self.rt.texts
        async with self.rt.db.session() as session:
            with joined(session):
                try:
                    complaint = await backend.transition(
                        ticket, to, note=note, actor=principal.username, agency=agency
                    )
                except InvalidTransition as exc:
                    raise StaffActionError(f"Status tidak bisa diubah: {exc}", 409) from None
                except BackendRejected:
                    raise StaffActionError(f"Pengaduan {ticket} tidak ditemukan.", 404) from None
                queued = await queue_change(
                    session,
                    topic=COMPLAINT_TOPIC,
                    ref=complaint.ticket,
                    status=complaint.status.value,
                    render=lambda lang: complaint_notice(texts, lang, complaint),
                    at=self.desk.now(),
                )
                details: dict[str, Any] = {
                    "to": complaint.status.value,
                    "note": note[:200],
                    "notified": queued,
                }
                if complaint.status is S.FORWARDED:
                    details["agency"] = complaint.agency
                await staff_repo.add_audit(
                    session,
                    who=principal.username,
                    staff_user_id=principal.user_id,
                    what="complaint.status",
                    target=f"complaint:{complaint.ticket}",
                    details=details,
                    ip=ip,
                    now=self.desk.now(),
                )
        if queued:
            self.rt.wake_outbox()
        logger.info(
            "complaint %s -> %s by %s (%d notified)",
            complaint.ticket,
            complaint.status,
            principal.username,
            queued,
        )
        return complaint, queued

    # -- helpers -------------------------------------------------------------------------------

    async def _reporters(self, refs: Sequence[str | None]) -> dict[int, tuple[str, str]]:
        """Resident id → (channel, masked chat id) for reporters given as ``resident:<id>``."""
        ids = {i for i in (resident_id_of(r) for r in refs) if i is not None}
        if not ids:
            return {}
        async with self.rt.db.session() as session:
            rows = (
                await session.execute(
                    select(Resident.id, Resident.channel, Resident.external_id).where(Resident.id.in_(ids))
                )
            ).all()
        return {rid: (channel, mask_id(external)) for rid, channel, external in rows}

    def _who(self, ref: str | None, reporters: dict[int, tuple[str, str]]) -> str:
        rid = resident_id_of(ref)
        if rid is None or rid not in reporters:
            return "Warga"
        channel, masked = reporters[rid]
        return f"Warga {CHANNEL_NAMES.get(channel, channel)} {masked}"

    def _row(self, c: Complaint, reporters: dict[int, tuple[str, str]]) -> ComplaintRow:
        now = self.desk.now()
        return ComplaintRow(
            ticket=c.ticket,
            category=c.category,
            status=c.status.value,
            created_at=c.created_at,
            updated_at=c.updated_at,
            due_at=c.due_at,
            overdue=c.status.is_open and c.due_at is not None and c.due_at < now,
            agency=c.agency,
            kelurahan_code=c.kelurahan_code,
            kelurahan=kelurahan_names().get(c.kelurahan_code or "") if c.kelurahan_code else None,
            address=mask_text(c.address) if c.address else None,
            summary=_summary(c.description),
            reporter=self._who(c.reporter, reporters),
            supporters=c.supporters,
            photos=len(c.media_keys),
            located=c.lat is not None and c.lon is not None,
        )


def _summary(text: str, limit: int = 140) -> str:
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ordered(statuses: frozenset[ComplaintStatus]) -> list[ComplaintStatus]:
    order = list(ComplaintStatus)
    return sorted(statuses, key=order.index)
