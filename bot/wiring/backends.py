"""Builds the permit and complaint back ends that settings choose.

``permits.backend``: ``demo`` (seeded into our database) or ``http`` (a licensing system's API).
``complaints.backend``: ``local`` (our database, worked from the staff console) or ``open311``.
Complaints always go through a :class:`StoringComplaintDesk`, which stores a report before filing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.runtime import Backends
from bot.settings import Settings
from integrations.base import (
    BackendUnavailable,
    Changes,
    Complaint,
    ComplaintBackend,
    ComplaintReport,
    Filing,
    Permit,
    PermitBackend,
)
from integrations.demo_permits import DemoPermitBackend
from integrations.desk import StoringComplaintDesk
from integrations.http_permits import HttpPermitBackend, HttpPermitConfig
from integrations.local_complaints import LocalComplaintBackend
from integrations.open311 import Open311Client, Open311ComplaintBackend
from integrations.resilience import CallObserver
from integrations.sla import ServiceLevels
from storage.db import Database

logger = logging.getLogger(__name__)


class BackendConfigError(ValueError):
    """A back end is chosen in config.yml but not set up enough to use (the message names the key)."""


class NotConfigured:
    """A back end that is not set up: every call says it is unavailable (the resident is told so)."""

    name = "not-configured"

    def __init__(self, what: str) -> None:
        self.what = what

    def _fail(self) -> BackendUnavailable:
        return BackendUnavailable(f"{self.what} back end is not configured", backend=self.name)

    async def get(self, number: str) -> Permit | Complaint | None:
        """Always unavailable."""
        raise self._fail()

    async def changes_since(self, cursor: str | None) -> Changes[Permit]:
        """Always unavailable."""
        raise self._fail()

    async def create(self, report: ComplaintReport) -> Complaint:
        """Always unavailable."""
        raise self._fail()

    async def file(self, report: ComplaintReport) -> Filing:
        """Always unavailable."""
        raise self._fail()

    async def for_reporter(self, reporter: str, *, limit: int = 5) -> Sequence[Complaint]:
        """Always unavailable."""
        raise self._fail()

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        """Always unavailable."""
        raise self._fail()

    async def add_supporter(self, ticket: str, reporter: str) -> Complaint | None:
        """Always unavailable."""
        raise self._fail()


def demo_permit_backend(
    settings: Settings, db: Database, *, clock: Callable[[], datetime] | None = None
) -> DemoPermitBackend:
    """The demo licensing system in our database (``permits.demo_seed`` for its seed)."""
    return DemoPermitBackend(db, seed_path=settings.permits.demo_seed, clock=clock)


def build_permits(
    settings: Settings,
    db: Database,
    *,
    clock: Callable[[], datetime] | None = None,
    observer: CallObserver | None = None,
) -> PermitBackend:
    """The permit back end chosen by ``permits.backend``."""
    if settings.permits.backend == "demo":
        return demo_permit_backend(settings, db, clock=clock)
    http = settings.permits.http
    if not http.base_url:
        raise BackendConfigError(
            "permits.backend is http but permits.http.base_url is not set "
            "(see docs/config-examples/permits-http.yml)"
        )
    config = HttpPermitConfig(
        base_url=http.base_url,
        auth_header=http.auth_header,
        auth_value=http.auth_value.get_secret_value() if http.auth_value else None,
        get_path=http.get_path,
        changes_path=http.changes_path,
        changes_param=http.changes_param,
        changes_items=http.changes_items,
        changes_cursor=http.changes_cursor,
        fields=dict(http.fields),
        statuses=dict(http.statuses),
        types=dict(http.types),
        timeout=http.timeout,
    )
    return HttpPermitBackend(config, clock=clock, observer=observer)


def build_complaint_backend(
    settings: Settings,
    db: Database,
    *,
    clock: Callable[[], datetime] | None = None,
    observer: CallObserver | None = None,
) -> ComplaintBackend:
    """The complaint back end chosen by ``complaints.backend``."""
    complaints = settings.complaints
    if complaints.backend == "local":
        levels = ServiceLevels(complaints.sla_working_days, complaints.agencies)
        return LocalComplaintBackend(db, levels=levels, clock=clock)
    o311 = complaints.open311
    if not o311.base_url:
        raise BackendConfigError(
            "complaints.backend is open311 but complaints.open311.base_url is not set "
            "(see docs/config-examples/open311.yml)"
        )
    client = Open311Client(
        base_url=o311.base_url,
        api_key=o311.api_key.get_secret_value() if o311.api_key else None,
        jurisdiction_id=o311.jurisdiction_id,
        timeout=o311.timeout,
        observer=observer,
    )
    media_base = o311.media_base_url.rstrip("/") if o311.media_base_url else None
    return Open311ComplaintBackend(
        client,
        service_codes=o311.service_codes,
        media_url=(lambda key: f"{media_base}/{key}") if media_base else None,
        token_attempts=o311.token_attempts,
        clock=clock,
    )


def build_backends(
    settings: Settings, db: Database, *, clock: Any = None, observer: CallObserver | None = None
) -> Backends:
    """The permit back end and complaint desk chosen in settings (HTTP calls reported to ``observer``)."""
    permits = build_permits(settings, db, clock=clock, observer=observer)
    backend = build_complaint_backend(settings, db, clock=clock, observer=observer)
    desk = StoringComplaintDesk(db, backend, kind=settings.complaints.backend, clock=clock)
    logger.info("back ends: permits=%s complaints=%s", permits.name, backend.name)
    return Backends(
        permits=permits,
        complaints=desk,
        complaint_backend=backend,
        demo_permits=permits if isinstance(permits, DemoPermitBackend) else None,
        local_complaints=backend if isinstance(backend, LocalComplaintBackend) else None,
    )
