"""Opens the parts of a runtime from settings: database, parser, flows, back ends, dispatcher, channels."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from bot.channels.base import ChannelService
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.webhook import telegram_router
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.channels.whatsapp.webhook import whatsapp_router
from bot.conversation.client_limits import AddressLimiter
from bot.conversation.dispatcher import Dispatcher
from bot.conversation.flood import ResidentRateLimiter
from bot.conversation.media import MediaStore
from bot.metrics import DatabaseGauges, Metrics
from bot.runtime import Backends, Runtime
from bot.settings import Settings
from bot.wiring.backends import build_backends
from flows.engine import Confidence
from flows.messages import Channel
from flows.registry import build_engine
from flows.texts import Texts
from nlu.pipeline import build_parser, parser_version
from nlu.result import NluParser
from storage.db import Database
from storage.migrate import schema_is_current


class SchemaOutOfDate(RuntimeError):
    """The database is not at the newest migration; run ``pontibot db upgrade``."""


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
        "confidence": Confidence(
            fallback=settings.nlu.threshold,
            confirm=settings.nlu.confirm_threshold,
            record=settings.nlu.record_threshold,
            margin=settings.nlu.ambiguity_margin,
        ),
    }


async def build_parser_for(settings: Settings) -> NluParser:
    """The NLU parser chosen in settings (training the embedded model first if it is stale)."""
    return await asyncio.to_thread(
        build_parser,
        settings.nlu.backend,
        threshold=settings.nlu.threshold,
        rasa_url=settings.nlu.rasa_url,
        model_dir=settings.nlu.model_dir,
        timeout=settings.nlu.timeout,
    )


def build_channels(rt: Runtime) -> dict[Channel, ChannelService]:
    """The push channels configured in settings (web chat and console need no service)."""
    channels: dict[Channel, ChannelService] = {}
    if rt.settings.telegram_enabled:
        channels[Channel.TELEGRAM] = TelegramChannel(
            rt.settings,
            db=rt.db,
            texts=rt.texts,
            media=rt.media,
            handle=rt.dispatcher.handle,
            spawn=rt.spawn,
            metrics=rt.metrics,
        )
    if rt.settings.whatsapp_enabled:
        channels[Channel.WHATSAPP] = WhatsAppChannel(
            rt.settings,
            db=rt.db,
            media=rt.media,
            texts=rt.texts,
            handle=rt.dispatcher.handle,
            spawn=rt.spawn,
            clock=rt.dispatcher.clock,
            metrics=rt.metrics,
        )
    return channels


def channel_routers() -> list[APIRouter]:
    """The platforms' webhook routes (they answer 404 while their channel is not configured)."""
    return [telegram_router(), whatsapp_router()]


async def require_current_schema(settings: Settings) -> None:
    """Refuse a database whose schema is not at the newest migration (SchemaOutOfDate)."""
    db = Database(settings.database_url, pool_size=1)
    try:
        if not await schema_is_current(db.engine):
            raise SchemaOutOfDate(
                "the database schema is not up to date: run `pontibot db upgrade` (make run does)"
            )
    finally:
        await db.dispose()


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
    metrics = Metrics()
    metrics.model(settings.nlu.backend, parser_version(parser))
    backends: Backends | None = None
    try:
        backends = build_backends(settings, db, clock=clock, observer=metrics.backend_call)
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
        metrics=metrics,
    )
    media = MediaStore(settings.server.media_dir, max_bytes=settings.server.media_max_bytes)
    runtime = Runtime(
        settings,
        db,
        parser,
        texts,
        engine,
        dispatcher,
        backends,
        media,
        client_limits,
        metrics=metrics,
        database_gauges=DatabaseGauges(db),
    )
    runtime.channels = build_channels(runtime)
    return runtime
