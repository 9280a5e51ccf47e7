"""One message, end to end: lock the conversation, one transaction, dedupe, NLU, flow engine, store.

The dispatcher is the edge where a turn's errors are caught: it logs with ``exc_info`` first, rolls
the turn back, keeps the resident's message and answers politely in their language.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation.client_limits import AddressLimiter
from bot.conversation.flood import FloodVerdict, ResidentRateLimiter
from bot.conversation.locks import ConversationKey, ConversationLocks
from bot.logs import bind
from bot.metrics import Metrics
from bot.privacy import mask_id
from flows.engine import FALLBACKS_SLOT, FlowContext, FlowEngine, ResidentInfo, apply_slots
from flows.handoff import HANDOFF_STATUS, speaks_during_handoff
from flows.messages import Channel, IncomingMessage, Reply
from flows.texts import Texts
from integrations.base import ComplaintDesk, PermitBackend
from integrations.units import joined
from nlu.result import FALLBACK_INTENT, LANGUAGES, IntentScore, NluParser, ParseResult
from storage.db import Database
from storage.errors import DatabaseUnavailable
from storage.turn_store import ConversationRecord, TurnStore

logger = logging.getLogger(__name__)

MAX_TEXT_FOR_NLU = 2000
FLOOD_TEXT = "ratelimit.slow_down"
LANGUAGE_CHOICE_INTENT = "change_language"


def _intent(nlu: ParseResult | None) -> str | None:
    """The intent a message's text was understood as (None without text: a photo, a location)."""
    return nlu.intent_name if nlu is not None and nlu.text else None


def turn_language(record: ConversationRecord, nlu: ParseResult | None) -> str:
    """The language a turn answers in: the message's (when detected) unless the resident chose one.

    A request for a language ("english please") is a choice, not evidence: the flow answers it in the
    stored language and returns the chosen one (``Step.language``), which the turn stores as explicit.
    """
    if record.language_explicit or nlu is None or nlu.intent_name == LANGUAGE_CHOICE_INTENT:
        return record.language
    return nlu.language if nlu.language in LANGUAGES else record.language


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """The replies to one message; ``duplicate`` when it was a platform retry answered before."""

    replies: tuple[Reply, ...]
    duplicate: bool = False
    failed: bool = False
    conversation_id: int | None = None
    language: str | None = None  # the resident's language after the turn
    intent: str | None = None  # the NLU's intent for the text (None: no text, or a flooded message)
    fallback: bool = False  # the bot did not understand and answered with its fallback


@dataclass(frozen=True, slots=True)
class TurnServices:
    """What flows may call during one turn (the flows' ``Services`` protocol)."""

    session: AsyncSession
    timezone: ZoneInfo
    permits: PermitBackend
    complaints: ComplaintDesk
    clock: Any = None
    origin: str | None = None  # the message's client address (web chat)
    addresses: AddressLimiter | None = None

    def now(self) -> datetime:
        """The current time in WIB (or the injected clock's)."""
        if self.clock is not None:
            return self.clock().astimezone(self.timezone)  # type: ignore[no-any-return]
        return datetime.now(self.timezone)

    def flag_handoff(self, *, urgent: bool, new: bool = True) -> str | None:
        """The per-address handoff check (``bot.conversation.client_limits``); None without an address."""
        if self.addresses is None or self.origin is None:
            return None
        return self.addresses.flag_handoff(self.origin, urgent=urgent, new=new)


def storable(msg: IncomingMessage) -> IncomingMessage:
    """The message without NUL characters, which PostgreSQL stores in neither text nor JSONB.

    Any channel may deliver one (a web chat client, a forwarded file name); found by fuzzing.
    """
    changes: dict[str, Any] = {}
    for name in ("text", "payload", "profile_name", "start_param"):
        value = getattr(msg, name)
        if value and "\x00" in value:
            changes[name] = value.replace("\x00", "")
    location = msg.location
    if location is not None and any("\x00" in (v or "") for v in (location.address, location.label)):
        changes["location"] = dataclasses.replace(
            location,
            address=(location.address or "").replace("\x00", "") or None,
            label=(location.label or "").replace("\x00", "") or None,
        )
    return dataclasses.replace(msg, **changes) if changes else msg


class Dispatcher:
    """Handles incoming messages in per-conversation order, each turn in one transaction."""

    def __init__(
        self,
        *,
        db: Database,
        parser: NluParser,
        engine: FlowEngine,
        texts: Texts,
        flow_settings: Mapping[str, Any],
        permits: PermitBackend,
        complaints: ComplaintDesk,
        timezone: str = "Asia/Pontianak",
        default_language: str = "id",
        locks: ConversationLocks | None = None,
        clock: Any = None,
        flood: ResidentRateLimiter | None = None,
        addresses: AddressLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.parser = parser
        self.engine = engine
        self.texts = texts
        self.flow_settings = flow_settings
        self.permits = permits
        self.complaints = complaints
        self.timezone = ZoneInfo(timezone)
        self.default_language = default_language
        self.locks = locks or ConversationLocks()
        self.clock = clock
        self.flood = flood
        self.addresses = addresses
        self.metrics = metrics

    async def handle(self, msg: IncomingMessage) -> DispatchResult:
        """Process one message in order with others of its conversation; never raises for flow bugs."""
        started = time.perf_counter()
        with bind(channel=msg.channel.value, chat=mask_id(msg.chat_id)):
            result = await self._handle(msg)
        if self.metrics is not None and not result.duplicate:
            self.metrics.turn(
                msg.channel.value,
                seconds=time.perf_counter() - started,
                replies=len(result.replies),
                intent=result.intent,
                fallback=result.fallback,
                failed=result.failed,
            )
        return result

    async def _handle(self, msg: IncomingMessage) -> DispatchResult:
        msg = storable(msg)
        key = ConversationKey(msg.channel.value, msg.chat_id)
        async with self.locks.hold(key):
            verdict = self.flood.check(key.channel, key.chat_id) if self.flood else FloodVerdict.ALLOW
            nlu: ParseResult | None = None
            try:
                if verdict is FloodVerdict.ALLOW:
                    nlu = await self._understand(msg)
                return await self._turn_on_a_live_connection(msg, nlu, warn=verdict is FloodVerdict.WARN)
            except (OperationalError, InterfaceError, OSError) as exc:
                logger.warning(
                    "database unavailable channel=%s chat=%s",
                    msg.channel,
                    mask_id(msg.chat_id),
                    exc_info=True,
                )
                raise DatabaseUnavailable(str(exc)) from exc
            except Exception:
                logger.exception("turn failed channel=%s chat=%s", msg.channel, mask_id(msg.chat_id))
                return await self._record_failure(msg, nlu)

    async def _turn_on_a_live_connection(
        self, msg: IncomingMessage, nlu: ParseResult | None, *, warn: bool
    ) -> DispatchResult:
        """The turn (``nlu`` None: a flooded one); run again once when its pooled connection turned
        out dead (the database restarted since: the pool does not ping a busy connection)."""
        for attempt in (1, 2):
            try:
                if nlu is None:
                    return await self._turn_flooded(msg, warn=warn)
                return await self._turn(msg, nlu)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                logger.info("database connection lost; turn retried channel=%s", msg.channel)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _store(self, session: AsyncSession, msg: IncomingMessage) -> TurnStore:
        """The turn's statements on ``session``, the conversation locked, at the turn's time (UTC)."""
        now = self.clock().astimezone(UTC) if self.clock is not None else datetime.now(UTC)
        return await TurnStore.open(session, lock=(msg.channel.value, msg.chat_id), now=now)

    async def _understand(self, msg: IncomingMessage) -> ParseResult:
        text = msg.payload or msg.text or ""
        if not text.strip():
            return ParseResult(text="", intent=IntentScore(FALLBACK_INTENT, 0.0))
        return await self.parser.parse(text[:MAX_TEXT_FOR_NLU])

    async def _turn(self, msg: IncomingMessage, nlu: ParseResult) -> DispatchResult:
        async with self.db.session() as session:
            store = await self._store(session, msg)
            begun = await self._begin(store, msg, nlu)
            if isinstance(begun, DispatchResult):
                return begun
            record = begun
            language = turn_language(record, nlu)
            if language != record.language:  # the resident's language follows their messages
                await store.update_resident(record.resident_id, language=language)
                record = dataclasses.replace(record, language=language)
            if record.status == HANDOFF_STATUS and not (
                speaks_during_handoff(msg, nlu) or self.engine.is_command(msg, record.state)
            ):
                # A person has this conversation: keep the message for them, the bot stays silent.
                # A resident's right (opt-out, erasure) is no conversation: it runs all the same.
                await self._finish(store, record, msg, ())
                logger.info("turn kept for staff channel=%s chat=%s", msg.channel, mask_id(msg.chat_id))
                return DispatchResult(
                    (), conversation_id=record.conversation_id, language=language, intent=_intent(nlu)
                )
            # The flow state the message arrived in, on every line the flows, back ends and this turn log.
            with bind(flow_state=record.state or "idle"):
                ctx = self._context(session, record, origin=msg.origin)
                with joined(session):  # back ends that use our database work inside this turn's transaction
                    step = await self.engine.handle(ctx, msg, nlu)
                replies = tuple(step.replies)
                state = step.next_state
                if step.language in LANGUAGES:  # the resident chose: it wins over detection from now on
                    language = step.language
                    await store.update_resident(record.resident_id, language=language, language_explicit=True)
                await self._finish(
                    store,
                    record,
                    msg,
                    replies,
                    advance=(state, apply_slots(record.slots, step)),
                    feedback=step.feedback,
                )
                logger.info(
                    "turn channel=%s chat=%s intent=%s conf=%.2f state=%s",
                    msg.channel,
                    mask_id(msg.chat_id),
                    nlu.intent_name,
                    nlu.confidence,
                    state,
                )
            return DispatchResult(
                replies,
                conversation_id=record.conversation_id,
                language=language,
                intent=_intent(nlu),
                fallback=bool(step.slots.get(FALLBACKS_SLOT)),  # the engine counts misunderstandings
            )

    async def _turn_flooded(self, msg: IncomingMessage, *, warn: bool) -> DispatchResult:
        """A message over the chat's rate limit: stored (nothing accepted is lost), not understood;
        the first one gets a single "slow down" reply, later ones none."""
        async with self.db.session() as session:
            store = await self._store(session, msg)
            begun = await self._begin(store, msg, None)
            if isinstance(begun, DispatchResult):
                return begun
            record = begun
            replies = (Reply(self.texts.render(record.language, FLOOD_TEXT)),) if warn else ()
            await self._finish(store, record, msg, replies)
            logger.warning(
                "flood: message stored without a turn channel=%s chat=%s warned=%s",
                msg.channel,
                mask_id(msg.chat_id),
                warn,
            )
            return DispatchResult(replies, conversation_id=record.conversation_id, language=record.language)

    async def _begin(
        self, store: TurnStore, msg: IncomingMessage, nlu: ParseResult | None
    ) -> ConversationRecord | DispatchResult:
        """Load the (locked) conversation and store the resident's message: the conversation, or
        the earlier answer when the message is a platform retry."""
        record, seen = await store.load_conversation(
            channel=msg.channel.value,
            external_id=msg.chat_id,
            display_name=msg.profile_name,
            language=msg.language if msg.language in LANGUAGES else self.default_language,
            message_id=msg.message_id,
        )
        if seen:
            return await self._answer_duplicate(store, msg, record.language)
        if not self.engine.knows_state(record.state):
            record = dataclasses.replace(record, state=None)
        # Before the flows run: a flow that erases the resident's data erases this message too.
        await store.store_inbound(
            self._inbound_row(store, record.conversation_id, msg, nlu),
            resident_id=record.resident_id,
            at=msg.received_at,
        )
        if msg.start_param and not record.source:
            await store.update_resident(record.resident_id, source=msg.start_param[:32])
        return record

    async def _answer_duplicate(
        self, store: TurnStore, msg: IncomingMessage, language: str
    ) -> DispatchResult:
        assert msg.message_id is not None
        logger.info("duplicate message dropped channel=%s id=%s", msg.channel, msg.message_id)
        stored, conversation_id = await store.earlier_answer(
            channel=msg.channel.value, chat_id=msg.chat_id, message_id=msg.message_id
        )
        replies = tuple(Reply.from_dict(r) for r in stored)
        return DispatchResult(replies, duplicate=True, conversation_id=conversation_id, language=language)

    def _context(
        self, session: AsyncSession, record: ConversationRecord, *, origin: str | None = None
    ) -> FlowContext:
        return FlowContext(
            resident=ResidentInfo(
                id=record.resident_id,
                channel=Channel(record.channel),
                language=record.language,
                display_name=record.display_name,
            ),
            state=record.state,
            slots=dict(record.slots),
            texts=self.texts,
            services=TurnServices(
                session=session,
                timezone=self.timezone,
                permits=self.permits,
                complaints=self.complaints,
                clock=self.clock,
                origin=origin,
                addresses=self.addresses,
            ),
            turn=record.turns,
            settings=self.flow_settings,
        )

    @staticmethod
    def _inbound_row(
        store: TurnStore, conversation_id: int, msg: IncomingMessage, nlu: ParseResult | None
    ) -> dict[str, Any]:
        # The transcript's clock is ours (retention and ordering rely on it); the platform's is kept.
        data: dict[str, Any] = {"kind": msg.kind.value, "sent_at": msg.received_at.isoformat()}
        if msg.location is not None:
            data["location"] = {"lat": msg.location.lat, "lon": msg.location.lon}
        if msg.media:
            data["media"] = [{"key": m.key, "content_type": m.content_type} for m in msg.media]
        if nlu is not None and nlu.entities:
            data["entities"] = [{"entity": e.entity, "value": e.value} for e in nlu.entities]
        return store.line(
            conversation_id=conversation_id,
            direction="in",
            kind="message",
            text=msg.text,
            payload=msg.payload,
            data=data,
            intent=nlu.intent_name if nlu else None,
            confidence=nlu.confidence if nlu else None,
            platform_message_id=msg.message_id,
        )

    async def _finish(
        self,
        store: TurnStore,
        record: ConversationRecord,
        msg: IncomingMessage,
        replies: Sequence[Reply],
        kind: str = "reply",
        advance: tuple[str | None, Mapping[str, Any]] | None = None,
        feedback: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the replies in the transcript and as the answer to a retry of ``msg``, and the
        conversation's new ``(state, slots)`` when the turn ran the flows. ``feedback`` (what the turn
        taught about the NLU: a clarified guess, a referral) goes with the first reply's line."""
        rendered = [reply.to_dict() for reply in replies]
        rows = [
            store.line(
                conversation_id=record.conversation_id,
                direction="out",
                kind=kind,
                text=reply.text,
                data={**data, "nlu_feedback": dict(feedback)} if feedback and index == 0 else data,
            )
            for index, (reply, data) in enumerate(zip(replies, rendered, strict=True))
        ]
        await store.finish(
            conversation_id=record.conversation_id,
            advance=advance,
            rows=rows,
            response=None if msg.message_id is None else (msg.channel.value, msg.message_id, rendered),
        )

    async def _record_failure(self, msg: IncomingMessage, nlu: ParseResult | None) -> DispatchResult:
        """Keep the resident's message and our apology even though the turn itself was rolled back."""
        async with self.db.session() as session:
            store = await self._store(session, msg)
            record, _ = await store.load_conversation(
                channel=msg.channel.value, external_id=msg.chat_id, language=self.default_language
            )
            language = turn_language(record, nlu)
            reply = Reply(self.texts.render(language, "error.generic"))
            await store.store_inbound(
                self._inbound_row(store, record.conversation_id, msg, nlu),
                resident_id=record.resident_id,
                at=msg.received_at,
            )
            await self._finish(store, record, msg, [reply], kind="error")
            return DispatchResult(
                (reply,),
                failed=True,
                conversation_id=record.conversation_id,
                language=language,
                intent=_intent(nlu),
            )
