"""Handoff to a person: on request, after repeated misunderstanding (offer → accept), from an emergency.

While a conversation is handed off the dispatcher keeps the bot silent (it only stores what the
resident writes), except where :func:`speaks_during_handoff` says so: "batal"/"menu" end the
handoff at the resident's request, and an emergency still gets the emergency numbers at once. The
residents' rights (engine commands: "BERHENTI", "hapus data saya", "data saya") are answered too,
and the handoff stays open; the staff see them in the transcript like everything else.
When staff close the handoff the resident is asked for a 1-5 rating (state ``handoff.rating``).
Drawn in ``flows/handoff.mmd``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from flows.core import menu_reply
from flows.engine import (
    ANY_INTENT,
    Flow,
    FlowContext,
    FlowEngine,
    FlowError,
    Globals,
    Handler,
    Step,
    fallback_count,
)
from flows.messages import Button, IncomingMessage, Reply
from flows.texts import Texts
from nlu.payload import parse_payload
from nlu.result import FALLBACK_INTENT, ParseResult
from storage import staff_repository as staff_repo
from storage.models import Conversation

EMERGENCY_STAFF_PAYLOAD = '/talk_to_staff{"handoff_reason": "emergency"}'
TALK_TO_STAFF_PAYLOAD = "/talk_to_staff"
RATING_SCORES = (1, 2, 3, 4, 5)
REASONS = frozenset({"requested", "fallback", "emergency"})
# In a handoff's context: why staff see it marked suspicious (bot.conversation.client_limits.HandoffFlag).
SUSPICIOUS_KEY = "suspicious"
# Intents the bot still answers while a person has the conversation (see speaks_during_handoff).
RESIDENT_EXIT_INTENTS = frozenset({"cancel", "help"})
MENU_WORDS = frozenset(
    {"menu", "menu utama", "main menu", "kembali ke menu", "back to menu", "/help", "/cancel"}
)
MAX_EXIT_WORDS = 4
HANDOFF_STATUS = staff_repo.HANDOFF_STATUS
_TYPED_SCORE = re.compile(r"^\D{0,3}([1-5])\D{0,12}$")


def speaks_during_handoff(msg: IncomingMessage, nlu: ParseResult) -> bool:
    """True when the bot answers although a person has the conversation.

    An emergency always gets the numbers at once. "batal"/"menu" end the handoff, but only as a short
    message or a button: "tolong bantu saya" or a long sentence with "batal" is meant for the staff.
    """
    if nlu.intent_name == "emergency":
        return True
    if nlu.intent_name not in RESIDENT_EXIT_INTENTS:
        return False
    if msg.payload:
        return True
    text = (msg.text or "").strip().casefold()
    if nlu.intent_name == "help":
        return text in MENU_WORDS
    return len(text.split()) <= MAX_EXIT_WORDS


class HandoffState(StrEnum):
    """Where a handoff conversation stands (stored as ``conversations.state``)."""

    OFFERED = "handoff.offered"
    ACTIVE = "handoff.active"
    RATING = "handoff.rating"


class HoursSchedule(Protocol):
    """When people answer (``bot.staff.hours.StaffHours`` in production)."""

    def is_open(self, at: datetime) -> bool:
        """True when people answer at ``at``."""
        ...

    def next_opening(self, at: datetime) -> datetime | None:
        """``at`` when open, else when people next answer (local time); None if never."""
        ...

    def summary(self, day_names: Sequence[str]) -> str:
        """A short text of the hours with the given day names (Monday first)."""
        ...


class Reroute:
    """Passes a message on to the engine as if no question were pending (bound once the engine exists)."""

    def __init__(self) -> None:
        self._engine: FlowEngine | None = None

    def bind(self, engine: FlowEngine) -> None:
        """Route through ``engine`` from now on."""
        self._engine = engine

    async def __call__(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """The step the engine takes for ``msg`` from the idle state."""
        if self._engine is None:
            raise FlowError("handoff reroute used before the engine was bound")
        return await self._engine.handle(replace(ctx, state=None), msg, nlu)


# --- texts shared with the staff console ----------------------------------------------------------


def rating_buttons(texts: Texts, lang: str) -> tuple[Button, ...]:
    """The 1-5 rating buttons."""
    return tuple(
        Button(texts.render(lang, "handoff.rating_button", score=score), f'/rate{{"score": {score}}}')
        for score in RATING_SCORES
    )


def closing_replies(texts: Texts, lang: str) -> tuple[Reply, ...]:
    """What the resident reads when staff close the handoff: thanks, then the rating question."""
    return (
        Reply(texts.render(lang, "handoff.closed")),
        Reply(texts.render(lang, "handoff.rating_ask"), rating_buttons(texts, lang)),
    )


def staff_message_text(texts: Texts, lang: str, *, staff_name: str, text: str) -> str:
    """A staff reply as the resident reads it (so Telegram/WhatsApp show it comes from a person)."""
    return texts.render(lang, "handoff.staff_says", name=staff_name, text=text)


def waiting_text(texts: Texts, lang: str, hours: HoursSchedule | None, now: datetime) -> str:
    """What happens next and when: people answer now, or from the next opening (WIB)."""
    if hours is None:
        return texts.render(lang, "handoff.connecting_open_unknown_hours")
    days = texts.render(lang, "handoff.day_names").split(",")
    summary = hours.summary(days)
    if hours.is_open(now):
        return texts.render(lang, "handoff.connecting_open", hours=summary)
    opening = hours.next_opening(now)
    if opening is None:
        return texts.render(lang, "handoff.connecting_closed_unknown", hours=summary)
    return texts.render(
        lang, "handoff.connecting_closed", hours=summary, when=_when(texts, lang, now, opening)
    )


def _when(texts: Texts, lang: str, now: datetime, opening: datetime) -> str:
    local_now = now.astimezone(opening.tzinfo)
    clock = f"{opening.hour:02d}.{opening.minute:02d}"
    days_ahead = (opening.date() - local_now.date()).days
    if days_ahead == 0:
        return texts.render(lang, "handoff.when_today", time=clock)
    if days_ahead == 1:
        return texts.render(lang, "handoff.when_tomorrow", time=clock)
    day = texts.render(lang, "handoff.day_names").split(",")[opening.weekday()]
    month = texts.render(lang, "handoff.month_names").split(",")[opening.month - 1]
    return texts.render(lang, "handoff.when_date", day=day, date=f"{opening.day} {month}", time=clock)


# --- handlers -------------------------------------------------------------------------------------


async def _conversation(ctx: FlowContext) -> Conversation:
    conversation = await staff_repo.conversation_of_resident(
        ctx.services.session, resident_id=ctx.resident.id
    )
    if conversation is None:
        raise FlowError("handoff without a conversation")
    return conversation


async def _in_handoff(ctx: FlowContext) -> Conversation | None:
    conversation = await _conversation(ctx)
    return conversation if conversation.status == HANDOFF_STATUS else None


async def open_handoff(ctx: FlowContext, reason: str) -> Step:
    """Stores an open handoff (the bot goes silent) and tells the resident what happens and when."""
    conversation = await _conversation(ctx)
    now = ctx.services.now()
    slots = {k: v for k, v in ctx.slots.items() if not k.startswith("_")}
    urgent = reason == "emergency"
    context: dict[str, Any] = {"state": ctx.state, "slots": slots}
    # One address opening many handoffs (a script with fresh web chat sessions) must not bury real
    # ones: beyond a small number they are marked, and marked urgent ones queue as not urgent.
    flag = ctx.services.flag_handoff(urgent=urgent)
    if flag is not None:
        context[SUSPICIOUS_KEY] = flag
        urgent = False
    await staff_repo.open_handoff(
        ctx.services.session,
        conversation=conversation,
        reason=reason,
        urgent=urgent,
        now=now,
        context=context,
    )
    text = waiting_text(ctx.texts, ctx.lang, ctx.settings.get("staff_hours"), now)
    replies = [Reply(text)]
    if reason == "emergency" and not _hours_open(ctx, now):
        replies.append(ctx.reply("handoff.emergency_meanwhile", numbers=_numbers(ctx)))
    return Step(replies, HandoffState.ACTIVE)


def _hours_open(ctx: FlowContext, now: datetime) -> bool:
    hours: HoursSchedule | None = ctx.settings.get("staff_hours")
    return hours is None or hours.is_open(now)


def _numbers(ctx: FlowContext) -> str:
    numbers: dict[str, str] = dict(ctx.settings.get("emergency_numbers", {}))
    return ", ".join(f"{name} {number}" for name, number in numbers.items())


async def on_talk_to_staff(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Opens a handoff (reason from the button that led here, else "requested"); asks nothing more."""
    reason = nlu.entity("handoff_reason") or "requested"
    return await open_handoff(ctx, reason if reason in REASONS else "requested")


def offer_reply(ctx: FlowContext) -> Reply:
    """The offer of a person after repeated misunderstanding, with yes/no buttons."""
    return ctx.reply(
        "handoff.offer",
        ctx.button("handoff.offer_yes", "/affirm"),
        ctx.button("handoff.offer_no", "/deny"),
    )


def offering_fallback(inner: Handler) -> Handler:
    """The fallback, offering a person from the second misunderstanding in a row."""

    async def on_fallback(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Asks to rephrase; from the second miss in a row offers a person and waits for yes/no."""
        if fallback_count(ctx) + 1 >= 2:
            return Step([offer_reply(ctx)], HandoffState.OFFERED)
        return await inner(ctx, msg, nlu)

    return on_fallback


def offered_handler(reroute: Reroute) -> Handler:
    """The handler of ``handoff.offered``: yes hands off, no shows the menu, anything else is routed."""

    async def on_offered(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Yes → opens a handoff; no → menu; not understood → offers again; else → as if idle."""
        if nlu.intent_name == "affirm":
            return await open_handoff(ctx, "fallback")
        if nlu.intent_name == "deny":
            return Step([menu_reply(ctx, "handoff.offer_declined")], None)
        if nlu.intent_name in (FALLBACK_INTENT, "out_of_scope"):
            return Step([offer_reply(ctx)], HandoffState.OFFERED)
        return await reroute(ctx, msg, nlu)

    return on_offered


def leaving_handoff(inner: Handler) -> Handler:
    """Cancel/help that first end an open handoff at the resident's request."""

    async def on_leave(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Closes the open handoff (closed by the resident) and shows the menu; else the usual handler."""
        conversation = await _in_handoff(ctx)
        if conversation is None:
            return await inner(ctx, msg, nlu)
        handoff = await staff_repo.open_handoff_of(ctx.services.session, conversation_id=conversation.id)
        if handoff is not None:
            await staff_repo.close_handoff(
                ctx.services.session,
                handoff=handoff,
                conversation=conversation,
                closed_by="resident",
                now=ctx.services.now(),
            )
        conversation.status = staff_repo.BOT_STATUS
        return Step([menu_reply(ctx, "handoff.ended_by_resident")], None, clear_slots=True)

    on_leave.__name__ = f"leaving_{getattr(inner, '__name__', 'handler')}"
    return on_leave


def emergency_during_handoff(inner: Handler) -> Handler:
    """The emergency answer; its "talk to staff" button marks the handoff urgent, and during a
    handoff the numbers come at once while the handoff stays open (now urgent)."""

    async def on_emergency(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Gives the emergency numbers; in a handoff marks it urgent and keeps it, else offers a person."""
        step = await inner(ctx, msg, nlu)
        conversation = await _in_handoff(ctx)
        if conversation is None:
            replies = [_emergency_buttons(reply) for reply in step.replies]
            return Step(replies, step.next_state, step.slots, step.clear_slots, step.language)
        handoff = await staff_repo.open_handoff_of(ctx.services.session, conversation_id=conversation.id)
        if handoff is not None and not handoff.urgent:
            flag = ctx.services.flag_handoff(urgent=True, new=False)
            if flag is None:
                handoff.urgent = True
            else:
                handoff.context = {**(handoff.context or {}), SUSPICIOUS_KEY: flag}
        replies = [Reply(reply.text) for reply in step.replies]
        return Step(replies, ctx.state)

    return on_emergency


def _emergency_buttons(reply: Reply) -> Reply:
    buttons = tuple(
        Button(b.title, EMERGENCY_STAFF_PAYLOAD) if b.payload == TALK_TO_STAFF_PAYLOAD else b
        for b in reply.buttons
    )
    return replace(reply, buttons=buttons)


def typed_score(msg: IncomingMessage, nlu: ParseResult) -> int | None:
    """The 1-5 score in a rating button's payload or a short typed answer ("4", "5 ⭐"), else None."""
    raw = nlu.entity("score")
    if raw is None and msg.payload:
        # The parser keeps only payloads of intents it knows; the rating button's is read here.
        pressed = parse_payload(msg.payload)
        raw = pressed.entity("score") if pressed is not None and pressed.intent_name == "rate" else None
    if raw is None and msg.text:
        match = _TYPED_SCORE.match(msg.text.strip())
        raw = match.group(1) if match else None
    if raw is None or not raw.strip().isdigit():
        return None
    score = int(raw)
    return score if score in RATING_SCORES else None


def rating_handler(reroute: Reroute) -> Handler:
    """The handler of ``handoff.rating`` (and of a rating button pressed later)."""

    async def on_rating(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Stores the 1-5 score of the last closed handoff and thanks; anything else is routed as usual."""
        score = typed_score(msg, nlu)
        if score is None:
            return await reroute(ctx, msg, nlu)
        conversation = await _conversation(ctx)
        handoff = await staff_repo.last_unrated_handoff(ctx.services.session, conversation_id=conversation.id)
        if handoff is not None:
            await staff_repo.add_rating(
                ctx.services.session, handoff=handoff, score=score, now=ctx.services.now()
            )
        return Step([ctx.reply("handoff.rating_thanks")], None, clear_slots=True)

    return on_rating


def active_handler(reroute: Reroute) -> Handler:
    """The handler of ``handoff.active`` when the bot is asked anyway (the handoff ended elsewhere)."""

    async def on_active(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Stores nothing: the handoff is over, so the message is handled as if idle."""
        return await reroute(ctx, msg, nlu)

    return on_active


def handoff_flow(reroute: Reroute) -> Flow:
    """The handoff journey's states (talk_to_staff itself is a global intent, see :func:`with_handoff`)."""
    on_rating = rating_handler(reroute)
    every_intent = frozenset({ANY_INTENT})
    return Flow(
        name="handoff",
        intents=frozenset({"rate"}),
        start=on_rating,
        handlers={
            HandoffState.OFFERED: offered_handler(reroute),
            HandoffState.ACTIVE: active_handler(reroute),
            HandoffState.RATING: on_rating,
        },
        prompts={
            HandoffState.OFFERED: lambda ctx: [offer_reply(ctx)],
            HandoffState.ACTIVE: lambda ctx: [ctx.reply("handoff.still_connected")],
            HandoffState.RATING: lambda ctx: [
                Reply(ctx.t("handoff.rating_ask"), rating_buttons(ctx.texts, ctx.lang))
            ],
        },
        # Each state decides itself what is an answer and routes the rest as if idle.
        accepts={state: every_intent for state in HandoffState},
        title_key="handoff.title",
    )


def with_handoff(globals_: Globals) -> Globals:
    """The engine's globals with the handoff wired in: talk_to_staff, offering fallback, leave, emergency."""
    handlers: dict[str, Handler] = dict(globals_.handlers)
    handlers["talk_to_staff"] = on_talk_to_staff
    for intent in RESIDENT_EXIT_INTENTS:
        if intent in handlers:
            handlers[intent] = leaving_handoff(handlers[intent])
    if "emergency" in handlers:
        handlers["emergency"] = emergency_during_handoff(handlers["emergency"])
    return dataclasses.replace(globals_, handlers=handlers, fallback=offering_fallback(globals_.fallback))
