"""The composition root: builds the database, parser, flow engine and dispatcher from Settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bot.dispatcher import Dispatcher
from bot.settings import Settings
from flows.engine import FlowEngine
from flows.registry import build_engine
from flows.texts import Texts
from nlu.result import NluParser
from storage.db import Database
from storage.migrate import schema_is_current

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

    async def close(self) -> None:
        """Release the parser's and the database's resources."""
        await self.parser.aclose()
        await self.db.dispose()


def flow_settings(settings: Settings) -> dict[str, Any]:
    """The plain values flows may read (no secrets)."""
    return {
        "emergency_numbers": dict(settings.contact.emergency_numbers),
        "staff_contact": settings.contact.whatsapp_line,
        "lapor_url": settings.contact.lapor_url,
        "permit_pattern": settings.permits.number_pattern,
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
    dispatcher = Dispatcher(
        db=db,
        parser=parser,
        engine=engine,
        texts=texts,
        flow_settings=flow_settings(settings),
        timezone=settings.timezone,
        default_language=settings.default_language,
        clock=clock,
    )
    return Runtime(settings, db, parser, texts, engine, dispatcher)
