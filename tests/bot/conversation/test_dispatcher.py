"""The dispatcher: dedupe, per-conversation order, concurrency across conversations, rollback on errors."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import func, select

from bot.conversation.dispatcher import Dispatcher
from bot.settings import Settings
from bot.wiring import flow_settings
from bot.wiring.backends import NotConfigured
from flows.core import core_globals, smalltalk_flows
from flows.engine import Flow, FlowContext, FlowEngine, Step
from flows.messages import IncomingMessage, Reply
from flows.texts import Texts
from nlu.result import FALLBACK_INTENT, IntentScore, ParseResult
from storage.db import Database
from storage.models import Conversation, Message, ProcessedMessage, Resident
from tests.factories import incoming

TEXTS = Texts.load()


class KeywordParser:
    """A test double of the NLU: exact phrases to intents, optionally slow, counting overlap."""

    def __init__(self, phrases: dict[str, str], delay: float = 0.0) -> None:
        self.phrases = phrases
        self.delay = delay
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)
        self.total_in_flight = 0
        self.max_total = 0

    async def parse(self, text: str) -> ParseResult:
        intent = self.phrases.get(text.split("#")[0], FALLBACK_INTENT)
        chat = text.split("#")[1] if "#" in text else ""
        self.in_flight[chat] += 1
        self.total_in_flight += 1
        self.max_in_flight[chat] = max(self.max_in_flight[chat], self.in_flight[chat])
        self.max_total = max(self.max_total, self.total_in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight[chat] -= 1
        self.total_in_flight -= 1
        confidence = 1.0 if intent != FALLBACK_INTENT else 0.1
        return ParseResult(text, IntentScore(intent, confidence))

    async def aclose(self) -> None:
        return None


async def on_record(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Appends the message text to a slot list, so the stored order can be checked; "boom" fails."""
    if msg.text == "boom":
        return await on_boom(ctx, msg, nlu)
    seen = [*ctx.slots.get("seen", []), msg.text]
    return Step([Reply(f"got {msg.text}")], "record.waiting", {"seen": seen})


async def on_boom(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Writes to the database, then fails: the write must be rolled back."""
    session = ctx.services.session  # type: ignore[attr-defined]
    resident = await session.get(Resident, ctx.resident.id)
    resident.display_name = "half-written"
    await session.flush()
    raise RuntimeError("flow bug")


def make_dispatcher(db: Database, settings: Settings, parser: KeywordParser) -> Dispatcher:
    flows = [
        *smalltalk_flows(),
        Flow("record", frozenset({"record"}), on_record, {"record.waiting": on_record}),
    ]
    return Dispatcher(
        db=db,
        parser=parser,
        engine=FlowEngine(flows, core_globals()),
        texts=TEXTS,
        flow_settings=flow_settings(settings),
        permits=NotConfigured("permit"),  # type: ignore[arg-type]
        complaints=NotConfigured("complaint"),  # type: ignore[arg-type]
    )


async def count(db: Database, model: type, *where: object) -> int:
    async with db.session() as session:
        return int(
            (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


async def test_same_platform_message_twice_gives_one_reply_and_one_stored_message(
    db: Database, settings: Settings
) -> None:
    dispatcher = make_dispatcher(db, settings, KeywordParser({"halo": "greet"}))
    msg = incoming("halo", message_id="tg-42")

    first = await dispatcher.handle(msg)
    second = await dispatcher.handle(msg)

    assert first.duplicate is False
    assert second.duplicate is True
    assert second.replies == first.replies
    assert await count(db, Message, Message.direction == "in") == 1
    assert await count(db, Message, Message.direction == "out") == 1
    assert await count(db, ProcessedMessage) == 1


async def test_concurrent_messages_of_one_conversation_are_handled_in_order(
    db: Database, settings: Settings
) -> None:
    parser = KeywordParser({f"r{i}": "record" for i in range(10)}, delay=0.01)
    dispatcher = make_dispatcher(db, settings, parser)
    messages = [incoming(f"r{i}#a", chat_id="a") for i in range(10)]

    results = await asyncio.gather(*(dispatcher.handle(m) for m in messages))

    assert [r.replies[0].text for r in results] == [f"got r{i}#a" for i in range(10)]
    async with db.session() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
        inbound = (
            (
                await session.execute(
                    select(Message.text).where(Message.direction == "in").order_by(Message.id)
                )
            )
            .scalars()
            .all()
        )
    assert conversation.slots["seen"] == [f"r{i}#a" for i in range(10)]
    assert conversation.turns == 10
    assert inbound == [f"r{i}#a" for i in range(10)]
    assert parser.max_in_flight["a"] == 1


async def test_different_conversations_run_concurrently(db: Database, settings: Settings) -> None:
    parser = KeywordParser({"r": "record"}, delay=0.05)
    dispatcher = make_dispatcher(db, settings, parser)
    messages = [incoming(f"r#{chat}", chat_id=chat) for chat in ("a", "b", "c") for _ in range(3)]

    await asyncio.gather(*(dispatcher.handle(m) for m in messages))

    assert parser.max_total >= 2
    assert all(parser.max_in_flight[chat] == 1 for chat in ("a", "b", "c"))
    assert await count(db, Conversation) == 3


async def test_exception_in_a_flow_rolls_back_the_turn_and_apologises_in_indonesian(
    db: Database, settings: Settings
) -> None:
    dispatcher = make_dispatcher(db, settings, KeywordParser({"r": "record"}))
    await dispatcher.handle(incoming("r", chat_id="x"))

    result = await dispatcher.handle(incoming("boom", chat_id="x"))

    assert result.failed is True
    assert [r.text for r in result.replies] == [TEXTS.render("id", "error.generic")]
    async with db.session() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
        resident = (await session.execute(select(Resident))).scalar_one()
        lines = (
            await session.execute(select(Message.direction, Message.kind, Message.text).order_by(Message.id))
        ).all()
    assert resident.display_name is None
    assert conversation.state == "record.waiting"
    assert conversation.slots["seen"] == ["r"]
    assert conversation.turns == 1
    assert lines[-2:] == [("in", "message", "boom"), ("out", "error", TEXTS.render("id", "error.generic"))]


async def test_two_misunderstandings_in_a_row_offer_the_menu_and_a_person(
    db: Database, settings: Settings
) -> None:
    dispatcher = make_dispatcher(db, settings, KeywordParser({}))

    first = await dispatcher.handle(incoming("qwerty"))
    second = await dispatcher.handle(incoming("zxcvb"))

    assert first.replies[0].text in TEXTS.variants("id", "fallback.first")
    assert first.replies[0].buttons == ()
    assert second.replies[0].text == TEXTS.render("id", "fallback.repeated")
    payloads = [b.payload for b in second.replies[0].buttons]
    assert "/talk_to_staff" in payloads and "/document_requirements" in payloads
