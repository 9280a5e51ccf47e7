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
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.notifications.changes import COMPLAINT_TOPIC, complaint_notice, queue_change
from bot.privacy import mask_id, mask_text
from bot.runtime import Runtime
from bot.staff.auth import Principal
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
from integrations.sla import DEFAULT_AGENCIES
from integrations.units import joined
from nlu.entities import load_locations
from storage import dashboard_repository as dashboard_repo
from storage import repositories as repo
from storage import staff_repository as staff_repo
from storage.backend_models import ComplaintRecord, ComplaintSupporter
from storage.models import Resident

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_NOTE = 1000
S = ComplaintStatus

STATUS_LABELS = {
    "pending": "Menunggu dikirim",
    "open": "Baru",
    "verified": "Diverifikasi",
    "forwarded": "Diteruskan ke OPD",
    "in_progress": "Dikerjakan",
    "resolved": "Selesai",
    "rejected": "Ditolak",
}
# What the button that moves a complaint to each status says.
ACTION_LABELS = {
    "verified": "Verifikasi",
    "forwarded": "Teruskan ke OPD",
    "in_progress": "Mulai dikerjakan",
    "resolved": "Tandai selesai",
    "rejected": "Tolak",
}
CATEGORY_LABELS = {
    "road_damage": "Jalan rusak",
    "street_light": "Lampu jalan",
    "garbage": "Sampah",
    "drainage_flood": "Drainase / banjir",
    "fallen_tree": "Pohon tumbang",
    "clean_water": "Air bersih",
    "illegal_parking": "Parkir liar",
    "public_facility": "Fasilitas umum",
    "public_service": "Pelayanan publik",
    "other": "Lainnya",
}
CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat", "console": "Konsol"}


@lru_cache(maxsize=1)
def kelurahan_names() -> dict[str, str]:
    """Kemendagri code → kelurahan name (with its kecamatan), from the NLU's wilayah data."""
    return {loc.code: f"{loc.name} ({loc.kecamatan})" for loc in load_locations() if loc.level == "kelurahan"}


def agencies_of(rt: Runtime) -> list[str]:
    """Every OPD complaints can be forwarded to (defaults and config), sorted."""
    return sorted({*DEFAULT_AGENCIES.values(), *rt.settings.complaints.agencies.values()})


def map_url(lat: float, lon: float) -> str:
    """An OpenStreetMap link to the spot."""
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=18/{lat:.6f}/{lon:.6f}"


@dataclass(frozen=True, slots=True)
class ComplaintFilters:
    """What the complaints list is narrowed to (every field optional)."""

    status: str | None = None
    category: str | None = None
    agency: str | None = None
    kelurahan: str | None = None
    text: str | None = None
    overdue: bool = False
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The filters as query parameters (for links to other pages of the same list)."""
        values = {
            "status": self.status,
            "category": self.category,
            "agency": self.agency,
            "kelurahan": self.kelurahan,
            "q": self.text,
            "overdue": "1" if self.overdue else None,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "page": str(self.page) if self.page > 1 else None,
        }
        values.update({k: (str(v) if v is not None else None) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        """True when anything narrows the list."""
        return bool(self.query(page=None))

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "status": self.status,
            "category": self.category,
            "agency": self.agency,
            "kelurahan": self.kelurahan,
            "q": self.text,
            "overdue": self.overdue,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "page": self.page,
        }


@dataclass(frozen=True, slots=True)
class ComplaintRow:
    """One complaint in the list (the reporter masked)."""

    ticket: str
    category: str
    status: str
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    overdue: bool
    agency: str | None
    kelurahan_code: str | None
    kelurahan: str | None
    address: str | None
    summary: str
    reporter: str
    supporters: int
    photos: int
    located: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "ticket": self.ticket,
            "category": self.category,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "overdue": self.overdue,
            "agency": self.agency,
            "kelurahan_code": self.kelurahan_code,
            "kelurahan": self.kelurahan,
            "address": self.address,
            "summary": self.summary,
            "reporter": self.reporter,
            "supporters": self.supporters,
            "photos": self.photos,
            "located": self.located,
        }


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One status change as staff see it."""

    from_status: str | None
    to_status: str
    note: str | None
    actor: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "from": self.from_status,
            "to": self.to_status,
            "note": self.note,
            "actor": self.actor,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ComplaintDetail:
    """The complaint page: everything about one complaint, and where it may go next."""

    row: ComplaintRow
    description: str
    lat: float | None
    lon: float | None
    note: str | None
    history: tuple[HistoryLine, ...]
    supporters: tuple[str, ...]
    next_statuses: tuple[str, ...]
    reporter_channel: str | None
    subscribers: int = 0
    photo_keys: tuple[str, ...] = field(default=())

    @property
    def map_url(self) -> str | None:
        """The OpenStreetMap link, when the resident shared a pin."""
        return map_url(self.lat, self.lon) if self.lat is not None and self.lon is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API (photos as console URLs, never storage keys)."""
        return {
            **self.row.to_dict(),
            "description": self.description,
            "lat": self.lat,
            "lon": self.lon,
            "map_url": self.map_url,
            "note": self.note,
            "history": [h.to_dict() for h in self.history],
            "supporters_masked": list(self.supporters),
            "next_statuses": list(self.next_statuses),
            "reporter_channel": self.reporter_channel,
            "subscribers": self.subscribers,
            "photo_urls": [
                f"/api/staff/complaints/{self.row.ticket}/photos/{i}" for i in range(len(self.photo_keys))
            ],
        }


@dataclass(frozen=True, slots=True)
class ComplaintList:
    """One page of the list, the total, and the filters that made it."""

    rows: tuple[ComplaintRow, ...]
    total: int
    filters: ComplaintFilters
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        """How many pages the total fills (at least one)."""
        return max(1, -(-self.total // self.page_size))

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "complaints": [r.to_dict() for r in self.rows],
            "total": self.total,
            "page": self.filters.page,
            "pages": self.pages,
            "page_size": self.page_size,
            "filters": self.filters.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class FiledElsewhere:
    """A complaint the bot filed in the Open311 system (read-only in the console)."""

    ticket: str | None
    local_ref: str
    category: str
    status: str
    created_at: datetime
    summary: str
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "ticket": self.ticket,
            "local_ref": self.local_ref,
            "category": self.category,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "summary": self.summary,
            "last_error": self.last_error,
        }


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
