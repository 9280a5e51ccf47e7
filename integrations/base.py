"""The ports flows call: permit and complaint back ends, their values, and their errors.

IntegrationError
 ├── BackendUnavailable   timeout, connection refused, 5xx, circuit open (try again later)
 ├── BackendRejected      the back end refused the request (4xx, Open311 error array)
 └── BadResponse          the answer could not be understood (HTML, invalid JSON, wrong shape, too big)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class IntegrationError(Exception):
    """Base of every back-end error; ``backend`` names which one failed."""

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(IntegrationError):
    """The back end could not be reached or failed on its side; retry later."""


class BackendRejected(IntegrationError):
    """The back end refused the request as given (its own validation, auth, unknown service)."""


class BadResponse(IntegrationError):
    """The back end answered something we cannot read."""


class PermitStage(StrEnum):
    """Where a permit application stands (the licensing office's stages, DESIGN 4)."""

    RECEIVED = "diterima"
    DOCUMENT_CHECK = "verifikasi_berkas"
    FIELD_SURVEY = "survei_lapangan"
    AWAITING_PAYMENT = "menunggu_pembayaran"
    APPROVED = "disetujui"
    REJECTED = "ditolak"
    COMPLETED = "selesai"


@dataclass(frozen=True, slots=True)
class Permit:
    """One permit application as the licensing system reports it."""

    number: str
    permit_type: str  # pbg | slf | nib | izin_reklame | … (DESIGN 3.2 document_type values)
    stage: PermitStage
    updated_at: datetime
    applicant: str | None = None
    note: str | None = None  # the office's note for this stage (e.g. a rejection reason)
    office: str | None = None


@dataclass(frozen=True, slots=True)
class Changes(Generic[T]):
    """Items changed since a cursor, and the cursor to ask with next time."""

    items: Sequence[T]
    cursor: str | None


class PermitBackend(Protocol):
    """A licensing system that knows permit applications."""

    name: str

    async def get(self, number: str) -> Permit | None:
        """The permit with this number, or None when there is none."""
        ...

    async def changes_since(self, cursor: str | None) -> Changes[Permit]:
        """Permits whose stage changed after ``cursor`` (None: start from now)."""
        ...


class ComplaintStatus(StrEnum):
    """A complaint's lifecycle (DESIGN 4; Open311 open/closed map onto it)."""

    PENDING = "pending"  # accepted by the bot, not yet accepted by the back end
    OPEN = "open"
    VERIFIED = "verified"
    FORWARDED = "forwarded"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ComplaintReport:
    """What a resident reports, ready to file."""

    category: str  # DESIGN 3.2 complaint_category
    description: str
    reporter: str  # our stable reference of the resident (never a phone number or NIK)
    local_ref: str  # idempotency key: filing the same report twice files it once
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    kelurahan_code: str | None = None
    media_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Complaint:
    """A filed complaint as its back end reports it."""

    ticket: str  # ADU-YYYY-NNNNNN (local) or the back end's id
    category: str
    status: ComplaintStatus
    created_at: datetime
    updated_at: datetime
    description: str = ""
    reporter: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    kelurahan_code: str | None = None
    note: str | None = None
    due_at: datetime | None = None
    agency: str | None = None
    supporters: int = 0
    media_keys: tuple[str, ...] = field(default=())


class ComplaintBackend(Protocol):
    """A complaint system: ours (local) or an Open311 GeoReport v2 server."""

    name: str

    async def create(self, report: ComplaintReport) -> Complaint:
        """File a report; filing the same ``local_ref`` again returns the first complaint."""
        ...

    async def get(self, ticket: str) -> Complaint | None:
        """The complaint with this ticket, or None."""
        ...

    async def changes_since(self, cursor: str | None) -> Changes[Complaint]:
        """Complaints whose status changed after ``cursor``."""
        ...


@dataclass(frozen=True, slots=True)
class Filing:
    """The result of filing: always stored locally; ``ticket`` is None while the back end is down."""

    local_ref: str
    ticket: str | None
    complaint: Complaint | None
    pending: bool


class ComplaintDesk(Protocol):
    """What flows use to file and look up complaints: stores first, then files with the back end."""

    async def file(self, report: ComplaintReport) -> Filing:
        """Store the report, then try the back end; never loses it when the back end is down."""
        ...

    async def get(self, ticket: str) -> Complaint | None:
        """A complaint by ticket number (or local reference while pending)."""
        ...

    async def for_reporter(self, reporter: str, *, limit: int = 5) -> Sequence[Complaint]:
        """The resident's own complaints, newest first."""
        ...

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Open complaints of ``category`` within ``radius_m`` of a point, nearest first."""
        ...

    async def add_supporter(self, ticket: str, reporter: str) -> Complaint | None:
        """Add the resident to an existing complaint instead of filing a duplicate."""
        ...
