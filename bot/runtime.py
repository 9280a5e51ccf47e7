"""The parts of a running pontibot, held together once built (``bot.wiring`` builds, starts and closes them).

A plain holder: nothing here builds or starts anything, and it imports no concrete channel, job or
scheduler, so any module may read its type without an import circle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.channels.base import ChannelService
from bot.conversation.client_limits import AddressLimiter
from bot.conversation.dispatcher import Dispatcher
from bot.conversation.media import MediaStore
from bot.metrics import DatabaseGauges, Metrics
from bot.settings import Settings
from bot.tasks import BackgroundTasks
from flows.engine import FlowEngine
from flows.messages import Channel
from flows.texts import Texts
from integrations.base import ComplaintBackend, ComplaintWorkbench, DemoPermits, PermitBackend
from integrations.desk import StoringComplaintDesk
from nlu.result import NluParser
from storage.db import Database


class Notifications(Protocol):
    """The notification scheduler as others see it: wake the outbox, tell whether this process leads."""

    leading: asyncio.Event

    def wake(self) -> None:
        """Something was queued: let the outbox dispatcher look now."""
        ...

    async def start(self) -> None:
        """Compete for leadership and run the jobs while leading."""
        ...

    async def stop(self) -> None:
        """Stop the jobs and the dispatcher, then give up leadership."""
        ...


@dataclass
class Backends:
    """The back ends a running pontibot talks to.

    ``permits`` and ``complaints`` are what flows get; ``demo_permits`` (booth, CLI, staff console) and
    ``local_complaints`` (staff console: transition, search, history) are set when those are in use.
    """

    permits: PermitBackend
    complaints: StoringComplaintDesk
    complaint_backend: ComplaintBackend
    demo_permits: DemoPermits | None = None
    local_complaints: ComplaintWorkbench | None = None

    async def prepare(self) -> None:
        """Make the back ends ready to serve: seed the demo permits when their table is empty."""
        if self.demo_permits is not None:
            await self.demo_permits.seed()

    async def aclose(self) -> None:
        """Close HTTP clients the back ends hold."""
        for backend in (self.permits, self.complaints):
            closer = getattr(backend, "aclose", None)
            if closer is not None:
                await closer()


@dataclass
class Runtime:
    """Everything a running pontibot holds, opened once and closed once (by ``bot.wiring``)."""

    settings: Settings
    db: Database
    parser: NluParser
    texts: Texts
    engine: FlowEngine
    dispatcher: Dispatcher
    backends: Backends
    media: MediaStore
    client_limits: AddressLimiter  # per client address: new web chat sessions, handoffs
    metrics: Metrics  # this process's instruments (GET /metrics adds the other workers' and the database's)
    database_gauges: DatabaseGauges
    channels: dict[Channel, ChannelService] = field(default_factory=dict)
    background: BackgroundTasks = field(default_factory=BackgroundTasks)
    notifications: Notifications | None = None  # set when started: jobs and outbox dispatch

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run a background task that is kept referenced and cancelled on close."""
        return self.background.spawn(coro, name=name)

    def wake_outbox(self) -> None:
        """Something was queued: let this process's outbox dispatcher look now (if it leads)."""
        if self.notifications is not None:
            self.notifications.wake()
