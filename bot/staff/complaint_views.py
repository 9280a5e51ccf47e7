"""What the console shows of complaints: filters, rows, a complaint with its history, labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from bot.runtime import Runtime
from integrations.sla import DEFAULT_AGENCIES
from nlu.entities import load_locations

logger = logging.getLogger(__name__)


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


PAGE_SIZE = 25


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
