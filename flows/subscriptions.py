"""Subscriptions to updates: one permit, one of the resident's own complaints, or city announcements.

Subscribing needs a permit number or a ticket: from the message, else the last one discussed
(conversation memory ``last_permit`` / ``last_ticket``), else the bot asks. A complaint can only be
followed by the resident who filed it (a resident never learns about another resident's complaint).
"BERHENTI" / "STOP" stops every subscription at once and says what was stopped. Both are side flows:
asked in the middle of another journey, they answer and that journey resumes.

Opting out is a right, not a conversation: besides the ``unsubscribe`` intent, the stop button's
payload and the opt-out words alone ("BERHENTI", "STOP", "berhenti langganan", …) are an engine
**command** (:func:`asks_opt_out`), so they work in every state, whatever the classifier guesses, and
while a person has the conversation (the dispatcher lets commands through a handoff).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from flows.engine import Flow, FlowContext, Step
from flows.messages import Button, IncomingMessage, Reply
from flows.privacy import normalise
from integrations.base import IntegrationError, reporter_ref
from nlu.result import ParseResult
from storage import repositories as repo

logger = logging.getLogger(__name__)


class SubscriptionsState(StrEnum):
    """Where the subscription dialogue stands."""

    ASK_REF = "subscriptions.ask_ref"


class Topic(StrEnum):
    """What a subscription follows (``subscriptions.topic``)."""

    PERMIT = "permit"
    COMPLAINT = "complaint"
    ANNOUNCEMENTS = "announcements"


ALL_REFS = "*"
SUBSCRIBE_INTENT = "subscribe_updates"
UNSUBSCRIBE_INTENT = "unsubscribe"
LAST_PERMIT = "last_permit"
LAST_TICKET = "last_ticket"
MISSES_SLOT = "subscriptions.misses"
MAX_MISSES = 2
TICKET_PATTERN = re.compile(r"\bADU\s*[-/ ]\s*(\d{4})\s*[-/ ]\s*(\d{6})\b", re.IGNORECASE)
DEFAULT_PERMIT_PATTERN = r"[A-Z]{2,6}-\d{4}-\d{3,6}"
# Words that ask for general announcements rather than one permit or complaint.
ANNOUNCEMENT_WORDS = ("pengumuman", "announcement", "berita kota", "info kota", "informasi kota", "news")
OPT_OUT_PAYLOAD = f"/{UNSUBSCRIBE_INTENT}"
_WHAT = r"(?:langganan|berlangganan|notif|notifikasi|kabar|pemberitahuan|pesan|broadcast|notifications?)"
_OPT_OUT_CORE = (
    rf"(?:berhenti|stop|unsubscribe|unsub|stopall|opt\s+out|optout)(?:\s+{_WHAT})?"
    rf"|(?:hentikan|matikan)\s+{_WHAT}"
)
_POLITE = r"(?:tolong|mohon|please|pls|min|kak|pak|bu|dong|ya|aja|saja|sekarang|now)"
OPT_OUT_PHRASE = re.compile(rf"^(?:{_POLITE}\s+)*(?:{_OPT_OUT_CORE})(?:\s+{_POLITE})*$")


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the resident wants to follow."""

    topic: Topic
    ref: str


async def on_subscribe(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Subscribes to the named, or last discussed, permit/ticket or to announcements; else asks which."""
    wanted = _wanted_in(ctx, msg, nlu)
    if wanted is not None:
        return await _subscribe(ctx, wanted)
    remembered = _remembered(ctx)
    if len(remembered) == 1:
        return await _subscribe(ctx, remembered[0])
    return Step([_ask(ctx, "subscriptions.ask")], SubscriptionsState.ASK_REF, {MISSES_SLOT: None})


async def on_ask_ref(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes a permit number, a ticket or "announcements"; re-asks on anything else, then gives up."""
    wanted = _wanted_in(ctx, msg, nlu)
    if wanted is not None:
        return await _subscribe(ctx, wanted)
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0) + 1
    if misses > MAX_MISSES:
        staff = ctx.button("menu.staff", "/talk_to_staff")
        return Step([ctx.reply("subscriptions.give_up", staff)], None, {MISSES_SLOT: None})
    return Step(
        [_ask(ctx, "subscriptions.ask_again")], SubscriptionsState.ASK_REF, {MISSES_SLOT: misses}, missed=True
    )


def prompt_ask_ref(ctx: FlowContext) -> list[Reply]:
    """The pending "which permit or report?" question."""
    return [_ask(ctx, "subscriptions.ask")]


def asks_opt_out(msg: IncomingMessage) -> bool:
    """True for the stop button (``/unsubscribe``) or a message that is only an opt-out word ("BERHENTI")."""
    if msg.payload is not None:
        return msg.payload.split("{", 1)[0].strip() == OPT_OUT_PAYLOAD
    return bool(msg.text) and bool(OPT_OUT_PHRASE.match(normalise(msg.text or "")))


async def on_unsubscribe(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stops every subscription of the resident and lists what was stopped (or says there was none)."""
    session = ctx.services.session
    active = await repo.subscriptions_of(session, resident_id=ctx.resident.id)
    await repo.unsubscribe(session, resident_id=ctx.resident.id)
    if not active:
        return Step([ctx.reply("subscriptions.none_active")])
    stopped = "\n".join(
        f"• {_describe(ctx, Wanted(Topic(s.topic), s.ref))}" for s in active if s.topic in set(Topic)
    )
    again = ctx.button("subscriptions.button_again", f"/{SUBSCRIBE_INTENT}")
    return Step([ctx.reply("subscriptions.stopped", again, items=stopped)])


async def _subscribe(ctx: FlowContext, wanted: Wanted) -> Step:
    """Checks the permit or ticket, stores the subscription and confirms; re-asks when it is unknown."""
    last_status: str | None = None
    memory: dict[str, str] = {}
    if wanted.topic is Topic.PERMIT:
        try:
            permit = await ctx.services.permits.get(wanted.ref)
        except IntegrationError:
            logger.warning("permit back end unavailable while subscribing", exc_info=True)
            permit = None
            unavailable = True
        else:
            unavailable = False
        if permit is None and not unavailable:
            return _not_found(ctx, "subscriptions.permit_not_found", wanted.ref)
        last_status = permit.stage.value if permit is not None else None
        memory[LAST_PERMIT] = wanted.ref
    elif wanted.topic is Topic.COMPLAINT:
        try:
            complaint = await ctx.services.complaints.get(wanted.ref)
        except IntegrationError:
            logger.warning("complaint back end unavailable while subscribing", exc_info=True)
            return Step([ctx.reply("subscriptions.complaints_down")], None, {MISSES_SLOT: None})
        if complaint is None or complaint.reporter != reporter_ref(ctx.resident.id):
            return _not_found(ctx, "subscriptions.ticket_not_found", wanted.ref)
        last_status = complaint.status.value
        memory[LAST_TICKET] = wanted.ref
    await repo.subscribe(
        ctx.services.session,
        resident_id=ctx.resident.id,
        topic=wanted.topic.value,
        ref=wanted.ref,
        last_status=last_status,
    )
    key = (
        "subscriptions.subscribed_announcements"
        if wanted.topic is Topic.ANNOUNCEMENTS
        else "subscriptions.subscribed"
    )
    stop = ctx.button("subscriptions.button_stop", f"/{UNSUBSCRIBE_INTENT}")
    return Step([ctx.reply(key, stop, item=_describe(ctx, wanted))], None, {MISSES_SLOT: None, **memory})


def _not_found(ctx: FlowContext, key: str, ref: str) -> Step:
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0) + 1
    if misses > MAX_MISSES:
        staff = ctx.button("menu.staff", "/talk_to_staff")
        return Step([ctx.reply(key, staff, ref=ref)], None, {MISSES_SLOT: None})
    reply = _ask(ctx, "subscriptions.ask_again")
    return Step(
        [ctx.reply(key, ref=ref), reply],
        SubscriptionsState.ASK_REF,
        {MISSES_SLOT: misses},
    )


def _wanted_in(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Wanted | None:
    """The permit, ticket or announcements named in the message (entities first, then the raw text)."""
    if nlu.entity("topic") == Topic.ANNOUNCEMENTS:
        return Wanted(Topic.ANNOUNCEMENTS, ALL_REFS)
    text = msg.text or ""
    permit = _valid_permit(ctx, nlu.entity("permit_number") or "") or _valid_permit(ctx, text, search=True)
    if permit is not None:
        return Wanted(Topic.PERMIT, permit)
    ticket = nlu.entity("ticket_number") or _ticket_in(text)
    if ticket is not None:
        return Wanted(Topic.COMPLAINT, ticket.upper())
    if any(word in text.casefold() for word in ANNOUNCEMENT_WORDS):
        return Wanted(Topic.ANNOUNCEMENTS, ALL_REFS)
    return None


def _valid_permit(ctx: FlowContext, text: str, *, search: bool = False) -> str | None:
    """A permit number in the configured format (``permits.number_pattern``)."""
    pattern = re.compile(str(ctx.settings.get("permit_pattern") or DEFAULT_PERMIT_PATTERN))
    candidate = text.strip().upper()
    if not candidate:
        return None
    if search:
        match = pattern.search(candidate)
        found = match.group(0) if match else None
    else:
        found = candidate if pattern.fullmatch(candidate) else None
    if found is not None and TICKET_PATTERN.fullmatch(found):
        return None
    return found


def _ticket_in(text: str) -> str | None:
    match = TICKET_PATTERN.search(text)
    return f"ADU-{match.group(1)}-{match.group(2)}" if match else None


def _remembered(ctx: FlowContext) -> list[Wanted]:
    found = []
    permit = ctx.slots.get(LAST_PERMIT)
    if isinstance(permit, str) and permit:
        found.append(Wanted(Topic.PERMIT, permit))
    ticket = ctx.slots.get(LAST_TICKET)
    if isinstance(ticket, str) and ticket:
        found.append(Wanted(Topic.COMPLAINT, ticket))
    return found


def _ask(ctx: FlowContext, key: str) -> Reply:
    buttons = [Button(_describe(ctx, wanted), _payload(wanted)) for wanted in _remembered(ctx)]
    buttons.append(
        ctx.button("subscriptions.button_announcements", _payload(Wanted(Topic.ANNOUNCEMENTS, ALL_REFS)))
    )
    return Reply(ctx.t(key), tuple(buttons))


def _payload(wanted: Wanted) -> str:
    if wanted.topic is Topic.ANNOUNCEMENTS:
        return f'/{SUBSCRIBE_INTENT}{{"topic": "announcements"}}'
    entity = "permit_number" if wanted.topic is Topic.PERMIT else "ticket_number"
    return f'/{SUBSCRIBE_INTENT}{{"{entity}": "{wanted.ref}"}}'


def _describe(ctx: FlowContext, wanted: Wanted) -> str:
    if wanted.topic is Topic.ANNOUNCEMENTS:
        return ctx.t("subscriptions.item_announcements")
    key = "subscriptions.item_permit" if wanted.topic is Topic.PERMIT else "subscriptions.item_complaint"
    return ctx.t(key, ref=wanted.ref)


def subscriptions_flows() -> list[Flow]:
    """Subscribe and unsubscribe (both side flows: they answer in the middle of another journey)."""
    return [
        Flow(
            name="subscriptions",
            intents=frozenset({SUBSCRIBE_INTENT}),
            start=on_subscribe,
            handlers={SubscriptionsState.ASK_REF: on_ask_ref},
            prompts={SubscriptionsState.ASK_REF: prompt_ask_ref},
            accepts={SubscriptionsState.ASK_REF: frozenset({"permit_status", "complaint_status"})},
            side=True,
            title_key="flow_title.subscriptions",
            creates_records=True,
        ),
        Flow(
            name="unsubscribe",
            intents=frozenset({UNSUBSCRIBE_INTENT}),
            start=on_unsubscribe,
            side=True,
            title_key="flow_title.unsubscribe",
            command=asks_opt_out,
        ),
    ]
