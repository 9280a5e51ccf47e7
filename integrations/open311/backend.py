"""Open311 GeoReport v2 as our :class:`ComplaintBackend`: categories ↔ service codes, records ↔ Complaint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.base import (
    BackendRejected,
    BadResponse,
    Changes,
    Complaint,
    ComplaintReport,
    ComplaintStatus,
    TicketNotAssigned,
)
from integrations.geo import haversine_m
from integrations.http_permits import parse_datetime
from integrations.open311.client import NAME, Open311Client

logger = logging.getLogger(__name__)

S = ComplaintStatus
# The spec knows open and closed; servers often say more. Unknown words count as open.
STATUS_WORDS: Mapping[str, ComplaintStatus] = {
    "open": S.OPEN,
    "new": S.OPEN,
    "acknowledged": S.VERIFIED,
    "confirmed": S.VERIFIED,
    "verified": S.VERIFIED,
    "forwarded": S.FORWARDED,
    "referred": S.FORWARDED,
    "in_progress": S.IN_PROGRESS,
    "in progress": S.IN_PROGRESS,
    "investigating": S.IN_PROGRESS,
    "closed": S.RESOLVED,
    "fixed": S.RESOLVED,
    "resolved": S.RESOLVED,
    "rejected": S.REJECTED,
    "declined": S.REJECTED,
    "invalid": S.REJECTED,
}


class Open311ComplaintBackend:
    """Files and reads complaints on an Open311 server; our category picks its ``service_code``."""

    name = NAME

    def __init__(
        self,
        client: Open311Client,
        *,
        service_codes: Mapping[str, str],
        media_url: Callable[[str], str] | None = None,
        token_attempts: int = 3,
        token_delay: float = 0.5,
        lookback: timedelta = timedelta(days=90),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.service_codes = dict(service_codes)
        self.categories = {code: category for category, code in self.service_codes.items()}
        self.media_url = media_url
        self.token_attempts = token_attempts
        self.token_delay = token_delay
        self.lookback = lookback
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def service_code_for(self, category: str) -> str:
        """The server's service code for our category (``other`` as the fallback).

        Raises:
            BackendRejected: neither the category nor ``other`` has a code in
                complaints.open311.service_codes.
        """
        code = self.service_codes.get(category) or self.service_codes.get("other")
        if not code:
            raise BackendRejected(
                f"no Open311 service_code for category {category!r}; set complaints.open311.service_codes",
                backend=self.name,
            )
        return code

    async def create(self, report: ComplaintReport) -> Complaint:
        """``POST requests.json``; a token answer is resolved, or :class:`TicketNotAssigned` is raised."""
        media = self.media_url(report.media_keys[0]) if self.media_url and report.media_keys else None
        answer = await self.client.create_request(
            service_code=self.service_code_for(report.category),
            description=report.description,
            lat=report.lat,
            lon=report.lon,
            address=report.address,
            media_url=media,
        )
        now = self._clock()
        ticket = answer.get("service_request_id")
        if not ticket:
            token = str(answer["token"])
            for attempt in range(self.token_attempts):
                if attempt:
                    await self._sleep(self.token_delay)
                resolved = await self.client.token(token)
                ticket = (resolved or {}).get("service_request_id")
                if ticket:
                    break
            else:
                raise TicketNotAssigned(
                    f"Open311 accepted the report but has not assigned a ticket yet (token {token})",
                    token=token,
                    backend=self.name,
                )
        return Complaint(
            ticket=str(ticket),
            category=report.category,
            status=S.OPEN,
            created_at=now,
            updated_at=now,
            description=report.description,
            reporter=report.reporter,
            lat=report.lat,
            lon=report.lon,
            address=report.address,
            kelurahan_code=report.kelurahan_code,
            note=_text(answer.get("service_notice")),
            media_keys=report.media_keys,
            local_ref=report.local_ref,
        )

    async def resolve_token(self, token: str) -> Complaint | None:
        """The complaint a token became, or None while the server has not assigned a ticket."""
        resolved = await self.client.token(token)
        ticket = (resolved or {}).get("service_request_id")
        if not ticket:
            return None
        complaint = await self.get(str(ticket))
        if complaint is None:
            raise BadResponse(
                f"Open311 token {token} names request {ticket}, which it does not know", backend=self.name
            )
        return complaint

    async def get(self, ticket: str) -> Complaint | None:
        """``GET requests/{id}.json`` mapped to a Complaint, or None."""
        record = await self.client.request(ticket.strip())
        return self.complaint(record) if record is not None else None

    async def changes_since(self, cursor: str | None) -> Changes[Complaint]:
        """Requests updated after ``cursor`` (an ISO time), from ``GET requests.json?start_date=…``."""
        if cursor is None:
            return Changes(items=(), cursor=self._clock().isoformat())
        try:
            since = parse_datetime(cursor)
        except ValueError:
            raise BackendRejected(
                f"not an Open311 cursor (ISO time): {cursor!r}", backend=self.name
            ) from None
        # start_date filters on when a request was made, not updated: look back over the window the
        # spec serves by default and keep what changed after the cursor.
        records = await self.client.requests(start_date=since - self.lookback)
        changed: list[Complaint] = []
        for record in records:
            complaint = self.complaint(record)
            if complaint.updated_at > since:
                changed.append(complaint)
        changed.sort(key=lambda c: (c.updated_at, c.ticket))
        newest = changed[-1].updated_at.isoformat() if changed else cursor
        return Changes(items=changed, cursor=newest)

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Open requests of the category's service within ``radius_m`` (filtered here)."""
        records = await self.client.requests(status="open", service_code=self.service_code_for(category))
        found: list[tuple[float, Complaint]] = []
        for record in records:
            complaint = self.complaint(record)
            if complaint.lat is None or complaint.lon is None or not complaint.status.is_open:
                continue
            distance = haversine_m(lat, lon, complaint.lat, complaint.lon)
            if distance <= radius_m:
                found.append((distance, complaint))
        found.sort(key=lambda pair: pair[0])
        return [complaint for _, complaint in found]

    def complaint(self, record: Mapping[str, Any]) -> Complaint:
        """One GeoReport service request as our Complaint.

        Raises:
            BadResponse: no ``service_request_id``, or dates that are not dates.
        """
        ticket = record.get("service_request_id")
        if not ticket:
            raise BadResponse("Open311 request without a service_request_id", backend=self.name)
        try:
            created = parse_datetime(record.get("requested_datetime"))
            updated_raw = record.get("updated_datetime")
            updated = parse_datetime(updated_raw) if updated_raw else created
            expected_raw = record.get("expected_datetime")
            expected = parse_datetime(expected_raw) if expected_raw else None
        except ValueError as exc:
            raise BadResponse(f"Open311 request {ticket}: {exc}", backend=self.name) from None
        return Complaint(
            ticket=str(ticket),
            category=self.categories.get(str(record.get("service_code", "")), "other"),
            status=self.status(record.get("status")),
            created_at=created,
            updated_at=updated,
            description=str(record.get("description") or ""),
            lat=_float(record.get("lat")),
            lon=_float(record.get("long")),
            address=_text(record.get("address")),
            note=_text(record.get("status_notes")) or _text(record.get("service_notice")),
            due_at=expected,
            agency=_text(record.get("agency_responsible")),
        )

    @staticmethod
    def status(word: Any) -> ComplaintStatus:
        """Our status for the server's status word."""
        text = str(word or "open").strip().lower()
        known = STATUS_WORDS.get(text)
        if known is None:
            logger.warning("unknown Open311 status %r counted as open", text)
            return S.OPEN
        return known


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
