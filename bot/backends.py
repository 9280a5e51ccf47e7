"""Builds the permit and complaint back ends that settings choose (part of the composition root)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.settings import Settings
from integrations.base import (
    BackendUnavailable,
    Changes,
    Complaint,
    ComplaintDesk,
    ComplaintReport,
    Filing,
    Permit,
    PermitBackend,
)
from storage.db import Database


@dataclass
class Backends:
    """The back ends a running pontibot talks to."""

    permits: PermitBackend
    complaints: ComplaintDesk

    async def aclose(self) -> None:
        """Close HTTP clients the back ends hold."""
        for backend in (self.permits, self.complaints):
            closer = getattr(backend, "aclose", None)
            if closer is not None:
                await closer()


class NotConfigured:
    """A back end that is not set up: every call says it is unavailable (the resident is told so)."""

    name = "not-configured"

    def __init__(self, what: str) -> None:
        self.what = what

    def _fail(self) -> BackendUnavailable:
        return BackendUnavailable(f"{self.what} back end is not configured", backend=self.name)

    async def get(self, number: str) -> Permit | Complaint | None:
        raise self._fail()

    async def changes_since(self, cursor: str | None) -> Changes[Permit]:
        raise self._fail()

    async def file(self, report: ComplaintReport) -> Filing:
        raise self._fail()

    async def for_reporter(self, reporter: str, *, limit: int = 5) -> Sequence[Complaint]:
        raise self._fail()

    async def nearby(self, *, category: str, lat: float, lon: float, radius_m: float) -> Sequence[Complaint]:
        raise self._fail()

    async def add_supporter(self, ticket: str, reporter: str) -> Complaint | None:
        raise self._fail()


def build_backends(settings: Settings, db: Database) -> Backends:
    """The permit back end and complaint desk chosen in settings."""
    return Backends(
        permits=NotConfigured("permit"),  # type: ignore[arg-type]
        complaints=NotConfigured("complaint"),  # type: ignore[arg-type]
    )
