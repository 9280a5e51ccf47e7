"""The ports flows call: permit and complaint back ends, their values, and their errors.

IntegrationError
 ├── BackendUnavailable   timeout, connection refused, 5xx, circuit open (try again later)
 │    └── TicketNotAssigned   filed, but the back end has not given a ticket yet (Open311 token)
 ├── BackendRejected      the back end refused the request (4xx, Open311 error array)
 │    └── InvalidTransition   a complaint cannot move to that status from where it stands
 └── BadResponse          the answer could not be understood (HTML, invalid JSON, wrong shape, too big)

Flows catch :class:`IntegrationError` and say ``backend.permits_down`` / ``backend.complaints_down``;
a complaint is never lost: :class:`ComplaintDesk` stores it first and :class:`Filing` says whether it
is still ``pending`` (then a job files it later and the resident is told the ticket number).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar, runtime_checkable

from integrations.sla import ServiceLevels

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


class TicketNotAssigned(BackendUnavailable):
    """The back end accepted the report but has no ticket for it yet; ask again with ``token``."""

    def __init__(self, message: str, *, token: str, backend: str = "") -> None:
        super().__init__(message, backend=backend)
        self.token = token


class InvalidTransition(BackendRejected):
    """A complaint cannot move to the requested status from its current one."""


# Unambiguous characters only (no 0/O, 1/I/L): residents may read a reference aloud or retype it.
_REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_REPORTER_PREFIX = "resident:"


def new_local_ref() -> str:
    """A fresh local reference for a report (``REF-XXXXXXXX``), unique enough to be an idempotency key."""
    return "REF-" + "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))


def reporter_ref(resident_id: int) -> str:
    """The ``ComplaintReport.reporter`` value for one of our residents (never a phone number or NIK)."""
    return f"{_REPORTER_PREFIX}{resident_id}"


def resident_id_of(reporter: str | None) -> int | None:
    """The resident id behind a :func:`reporter_ref` value, or None for any other reporter."""
    if not reporter or not reporter.startswith(_REPORTER_PREFIX):
        return None
    tail = reporter[len(_REPORTER_PREFIX) :]
    return int(tail) if tail.isdigit() else None


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

    @property
    def is_open(self) -> bool:
        """True while someone still has to act on the complaint."""
        return self not in (ComplaintStatus.RESOLVED, ComplaintStatus.REJECTED)


OPEN_STATUSES = frozenset(s for s in ComplaintStatus if s.is_open)


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
    local_ref: str | None = None  # our reference, when the report came through the bot


class ComplaintBackend(Protocol):
    """A complaint system: ours (local) or an Open311 GeoReport v2 server."""

    name: str

    async def create(self, report: ComplaintReport) -> Complaint:
        """File a report and return it with its ticket.

        Back ends that keep state (local) file the same ``local_ref`` once; for every back end the
        :class:`ComplaintDesk` guarantees it, because it records the ticket under the local reference.
        """
        ...

    async def get(self, ticket: str) -> Complaint | None:
        """The complaint with this ticket, or None."""
        ...

    async def changes_since(self, cursor: str | None) -> Changes[Complaint]:
        """Complaints whose status changed after ``cursor``."""
        ...


# Where a complaint may go from each status (resolved and rejected are final).
TRANSITIONS: Mapping[ComplaintStatus, frozenset[ComplaintStatus]] = {
    ComplaintStatus.OPEN: frozenset({ComplaintStatus.VERIFIED, ComplaintStatus.REJECTED}),
    ComplaintStatus.VERIFIED: frozenset({ComplaintStatus.FORWARDED, ComplaintStatus.REJECTED}),
    ComplaintStatus.FORWARDED: frozenset({ComplaintStatus.IN_PROGRESS, ComplaintStatus.REJECTED}),
    ComplaintStatus.IN_PROGRESS: frozenset({ComplaintStatus.RESOLVED, ComplaintStatus.REJECTED}),
}


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step in a complaint's history."""

    from_status: ComplaintStatus | None
    to_status: ComplaintStatus
    note: str | None
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ComplaintPage:
    """One page of a search, and how many complaints match in all."""

    items: Sequence[Complaint]
    total: int


class ComplaintWorkbench(ComplaintBackend, Protocol):
    """A complaint back end the staff console works: search, history, status changes (ours, ``local``)."""

    levels: ServiceLevels

    async def transition(
        self,
        ticket: str,
        to: ComplaintStatus | str,
        *,
        note: str,
        actor: str,
        agency: str | None = None,
    ) -> Complaint:
        """Move a complaint on (``forwarded`` sets the responsible office); InvalidTransition otherwise."""
        ...

    async def history(self, ticket: str) -> Sequence[StatusChange]:
        """The complaint's status changes, oldest first."""
        ...

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
        """Complaints matching every given filter, newest first, with the total count."""
        ...


class DemoPermits(PermitBackend, Protocol):
    """The demo licensing system (booth, CLI, staff console): list, advance and reseed applications."""

    async def seed(self, *, replace: bool = False) -> int:
        """Load the seed applications (all of them again with ``replace``); returns how many."""
        ...

    async def all(self) -> Sequence[Permit]:
        """Every application, by number."""
        ...

    async def advance(
        self, number: str, to: PermitStage | str | None = None, *, note: str | None = None
    ) -> Permit:
        """Move an application to ``to`` (default: its next stage); BackendRejected when it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class Filing:
    """The result of filing: always stored locally; ``ticket`` is None while the back end is down."""

    local_ref: str
    ticket: str | None
    complaint: Complaint | None
    pending: bool


@runtime_checkable
class TokenResolving(Protocol):
    """A complaint back end that may answer a filing with a token first (Open311 batch services)."""

    async def resolve_token(self, token: str) -> Complaint | None:
        """The complaint a token became, or None while the back end has not assigned a ticket."""
        ...


@runtime_checkable
class NearbySearching(Protocol):
    """A complaint back end that can list open complaints near a point."""

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Open complaints of ``category`` within ``radius_m`` of a point, nearest first."""
        ...


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
