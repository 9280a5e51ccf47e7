"""The turn's language: detected per message, stored on the resident; a chosen one wins (issue 18)."""

from __future__ import annotations

from sqlalchemy import select

from bot.conversation.dispatcher import Dispatcher, turn_language
from bot.settings import Settings
from bot.wiring import flow_settings
from bot.wiring.backends import NotConfigured
from flows.core import core_globals, smalltalk_flows
from flows.engine import FlowEngine
from flows.texts import Texts
from nlu.result import FALLBACK_INTENT, Entity, IntentScore, ParseResult
from storage.db import Database
from storage.models import Resident
from storage.turn_store import ConversationRecord
from tests.factories import incoming

TEXTS = Texts.load()


def record(language: str = "id", *, explicit: bool = False) -> ConversationRecord:
    return ConversationRecord(1, "webchat", language, None, None, 1, None, {}, "bot", 0, explicit)


def parse(language: str | None, intent: str = "greet") -> ParseResult:
    return ParseResult("…", IntentScore(intent, 1.0), language=language)


def test_the_message_language_decides_unless_unclear_or_chosen() -> None:
    assert turn_language(record("id"), parse("en")) == "en"
    assert turn_language(record("en"), parse("id")) == "id"
    assert turn_language(record("en"), parse(None)) == "en"
    assert turn_language(record("en"), None) == "en"  # a flooded message is not understood
    assert turn_language(record("en", explicit=True), parse("id")) == "en"
    # "english please" is a choice the flow answers in the language spoken so far, then stores.
    assert turn_language(record("id"), parse("en", "change_language")) == "id"


class LanguageParser:
    """A test double of the NLU: "<intent>:<language>" → that intent and language ("-": none)."""

    async def parse(self, text: str) -> ParseResult:
        intent, _, language = text.partition(":")
        score = IntentScore(intent or FALLBACK_INTENT, 1.0)
        entities = (Entity("language", language, 0, 0),) if intent == "change_language" else ()
        return ParseResult(text, score, entities, language=None if language == "-" else language)

    async def aclose(self) -> None:
        return None


def greets(text: str, language: str) -> bool:
    return any(text.startswith(option) for option in TEXTS.variants(language, "greet"))


async def resident_language(db: Database, chat_id: str) -> tuple[str, bool]:
    async with db.session() as session:
        row = (await session.execute(select(Resident).where(Resident.external_id == chat_id))).scalar_one()
        return row.language, row.language_explicit


async def test_the_resident_row_follows_the_messages_until_a_choice(db: Database, settings: Settings) -> None:
    dispatcher = Dispatcher(
        db=db,
        parser=LanguageParser(),
        engine=FlowEngine(smalltalk_flows(), core_globals()),
        texts=TEXTS,
        flow_settings=flow_settings(settings),
        permits=NotConfigured("permit"),  # type: ignore[arg-type]
        complaints=NotConfigured("complaint"),  # type: ignore[arg-type]
    )

    hello = await dispatcher.handle(incoming("greet:en", chat_id="c1"))
    assert hello.language == "en" and greets(hello.replies[0].text, "en")
    assert await resident_language(db, "c1") == ("en", False)

    await dispatcher.handle(incoming("greet:id", chat_id="c1"))
    assert await resident_language(db, "c1") == ("id", False)

    chosen = await dispatcher.handle(incoming("change_language:en", chat_id="c1"))
    assert chosen.replies[0].text == TEXTS.render("en", "language.changed")
    assert await resident_language(db, "c1") == ("en", True)

    still = await dispatcher.handle(incoming("greet:id", chat_id="c1"))
    assert still.language == "en" and greets(still.replies[0].text, "en")
    assert await resident_language(db, "c1") == ("en", True)
