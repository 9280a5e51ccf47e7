"""The composition root: builds the database, parser, flow engine and dispatcher from Settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.backends import Backends, build_backends
from bot.channels.base import ChannelService
from bot.channels.registry import build_channels
from bot.dispatcher import Dispatcher
from bot.media import MediaStore
from bot.ratelimit_addresses import AddressLimiter
from bot.ratelimit_residents import ResidentRateLimiter
from bot.settings import Settings
from flows.engine import FlowEngine
from flows.messages import Channel
from flows.registry import build_engine
from flows.texts import Texts
from nlu.result import NluParser
from storage.db import Database
from storage.migrate import schema_is_current

if TYPE_CHECKING:
    from bot.scheduler import NotificationScheduler

logger = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    """The database is not at the newest migration; run ``pontibot db upgrade``."""


@dataclass
class Runtime:
    """Everything a running pontibot holds, opened once and closed once."""

    settings: Settings
    db: Database
    parser: NluParser
    texts: Texts
    engine: FlowEngine
    dispatcher: Dispatcher
    backends: Backends
    media: MediaStore
    client_limits: AddressLimiter  # per client address: new web chat sessions, handoffs
    channels: dict[Channel, ChannelService] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    notifications: NotificationScheduler | None = None  # set by start(): jobs and outbox dispatch

    async def start(self) -> None:
        """Start channels (polling, webhooks registration) and background jobs."""
        from bot.retention import start_retention_job
        from bot.scheduler import NotificationScheduler

        self.notifications = NotificationScheduler(self)
        await self.notifications.start()
        start_retention_job(self)
        if self.settings.demo.enabled:
            from bot.booth.sessions import idle_reset_loop

            self.spawn(idle_reset_loop(self), name="booth-idle-reset")
        for channel in self.channels.values():
            await channel.start()
        if self.settings.telegram.staff_group_id is not None:
            from bot.staff.telegram_group import start_staff_group

            start_staff_group(self)

    async def close(self) -> None:
        """Stop channels and background tasks, then release back ends, parser and database."""
        if self.notifications is not None:
            await self.notifications.stop()  # sends in flight finish while the channels are still open
        for channel in self.channels.values():
            try:
                await channel.stop()
            except Exception:
                logger.exception("channel %s did not stop cleanly", channel.channel)
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.backends.aclose()
        await self.parser.aclose()
        await self.db.dispose()

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run a background task that is kept referenced and cancelled on close."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def flow_settings(settings: Settings) -> dict[str, Any]:
    """The plain values flows may read (no secrets)."""
    return {
        "emergency_numbers": dict(settings.contact.emergency_numbers),
        "staff_contact": settings.contact.whatsapp_line,
        "lapor_url": settings.contact.lapor_url,
        "permit_pattern": settings.permits.number_pattern,
        "duplicate_radius_m": settings.complaints.duplicate_radius_m,
        "staff_hours": settings.staff.schedule(settings.timezone),
        "retention_days": settings.privacy.retention_days,
    }


async def build_parser_for(settings: Settings) -> NluParser:
    """The NLU parser chosen in settings (training the embedded model first if it is stale)."""
    from nlu.pipeline import build_parser

    return await asyncio.to_thread(
        build_parser,
        settings.nlu.backend,
        threshold=settings.nlu.threshold,
        rasa_url=settings.nlu.rasa_url,
        model_dir=settings.nlu.model_dir,
        timeout=settings.nlu.timeout,
    )


async def build_runtime(
    settings: Settings,
    *,
    parser: NluParser | None = None,
    clock: Any = None,
    check_schema: bool = True,
) -> Runtime:
    """Open everything ``settings`` describes; refuses a database whose schema is out of date."""
    db = Database(settings.database_url, pool_size=settings.database.pool_size)
    try:
        if check_schema and not await schema_is_current(db.engine):
            raise SchemaOutOfDate(
                "the database schema is not up to date: run `pontibot db upgrade` (make run does)"
            )
        parser = parser or await build_parser_for(settings)
    except BaseException:
        await db.dispose()
        raise
    texts = Texts.load()
    engine = build_engine()
    backends: Backends | None = None
    try:
        backends = build_backends(settings, db, clock=clock)
        await backends.prepare()  # seeds the demo permits into an empty table
    except BaseException:
        if backends is not None:
            await backends.aclose()
        await db.dispose()
        raise
    client_limits = AddressLimiter.from_settings(settings.server)
    dispatcher = Dispatcher(
        db=db,
        parser=parser,
        engine=engine,
        texts=texts,
        flow_settings=flow_settings(settings),
        permits=backends.permits,
        complaints=backends.complaints,
        timezone=settings.timezone,
        default_language=settings.default_language,
        clock=clock,
        flood=ResidentRateLimiter(
            rate=settings.server.resident_messages_per_minute / 60, burst=settings.server.resident_burst
        ),
        addresses=client_limits,
    )
    media = MediaStore(settings.server.media_dir, max_bytes=settings.server.media_max_bytes)
    runtime = Runtime(settings, db, parser, texts, engine, dispatcher, backends, media, client_limits)
    runtime.channels = build_channels(runtime)
    return runtime
