"""The flow engine: global intents first, then the active flow's step, else the flow an intent starts.

A handler gets ``(ctx, msg, nlu)`` and returns a :class:`Step` — replies, the next state and slot
changes as a value. The dispatcher stores the step; nothing here writes state directly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Button, Channel, ContentKind, IncomingMessage, Reply
from flows.texts import Texts
from integrations.base import ComplaintDesk, PermitBackend
from nlu.result import ParseResult

logger = logging.getLogger(__name__)

GLOBAL_INTENTS = ("cancel", "help", "talk_to_staff", "emergency", "change_language")
FALLBACKS_SLOT = "_fallbacks"


class FlowError(Exception):
    """A flow could not produce a step (a bug or a back end failure it did not handle)."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one turn produces: replies, the next state (None = idle) and slot changes.

    ``slots`` is merged into the conversation's slots (a value of None deletes the key);
    ``clear_slots`` empties them first.
    """

    replies: Sequence[Reply]
    next_state: str | None = None
    slots: Mapping[str, Any] = field(default_factory=dict)
    clear_slots: bool = False
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ResidentInfo:
    """What flows may know of the resident they talk to."""

    id: int
    channel: Channel
    language: str
    display_name: str | None = None


class Services(Protocol):
    """Back ends and helpers flows may call (``session`` is the current turn's transaction)."""

    @property
    def session(self) -> AsyncSession:
        """The turn's database session (commit happens after the step is stored)."""
        ...

    @property
    def permits(self) -> PermitBackend:
        """The licensing system."""
        ...

    @property
    def complaints(self) -> ComplaintDesk:
        """Where complaints are filed and looked up."""
        ...

    def now(self) -> datetime:
        """The current time, aware, in WIB."""
        ...


@dataclass(slots=True)
class FlowContext:
    """Everything a handler may read: resident, state, slots, texts, services, this turn's number."""

    resident: ResidentInfo
    state: str | None
    slots: Mapping[str, Any]
    texts: Texts
    services: Services
    turn: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lang(self) -> str:
        """The resident's language (id or en)."""
        return self.resident.language

    def t(self, key: str, **params: Any) -> str:
        """A text in the resident's language (variants rotate with the turn)."""
        return self.texts.render(self.lang, key, seed=self.turn, **params)

    def reply(self, key: str, *buttons: Button, **params: Any) -> Reply:
        """A reply made of one text key and optional buttons."""
        return Reply(self.t(key, **params), tuple(buttons))

    def button(self, key: str, payload: str) -> Button:
        """A button whose title is a text key."""
        return Button(self.t(key), payload)


Handler = Callable[[FlowContext, IncomingMessage, ParseResult], Awaitable[Step]]


@dataclass(frozen=True, slots=True)
class Flow:
    """A conversation journey: the intents that start it, its entry handler and its state handlers."""

    name: str
    intents: frozenset[str]
    start: Handler
    handlers: Mapping[str, Handler] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Globals:
    """Handlers the engine itself needs: global intents, idle fallback, unsupported content."""

    handlers: Mapping[str, Handler]
    fallback: Handler
    unsupported: Handler


class FlowEngine:
    """Routes one parsed message to the right handler and returns its step."""

    def __init__(self, flows: Sequence[Flow], globals_: Globals) -> None:
        self._by_intent: dict[str, Flow] = {}
        self._by_state: dict[str, Handler] = {}
        for flow in flows:
            for intent in flow.intents:
                if intent in self._by_intent:
                    raise FlowError(f"intent {intent!r} starts two flows")
                self._by_intent[intent] = flow
            for state, handler in flow.handlers.items():
                if state in self._by_state:
                    raise FlowError(f"state {state!r} belongs to two flows")
                self._by_state[state] = handler
        self._globals = globals_

    @property
    def intents(self) -> frozenset[str]:
        """Intents that start a flow or are handled globally."""
        return frozenset(self._by_intent) | frozenset(self._globals.handlers)

    def knows_state(self, state: str | None) -> bool:
        """True when ``state`` has a handler (stale states from old versions fall back to idle)."""
        return state is not None and state in self._by_state

    async def handle(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """One turn: global intent, or the active state's handler, or a new flow, or the fallback."""
        handler = self._route(ctx, msg, nlu)
        step = await handler(ctx, msg, nlu)
        return _count_fallbacks(step, ctx, misunderstood=handler is self._globals.fallback)

    def _route(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Handler:
        intent = nlu.intent_name
        if intent in self._globals.handlers:
            return self._globals.handlers[intent]
        if ctx.state is not None and ctx.state in self._by_state:
            return self._by_state[ctx.state]
        if not (msg.text or msg.payload) and msg.kind not in _UNDERSTOOD_KINDS:
            return self._globals.unsupported
        if intent in self._by_intent:
            return self._by_intent[intent].start
        return self._globals.fallback


_UNDERSTOOD_KINDS = frozenset({ContentKind.TEXT, ContentKind.LOCATION, ContentKind.PHOTO})


def fallback_count(ctx: FlowContext) -> int:
    """How many turns in a row the bot has not understood (before this one)."""
    return int(ctx.slots.get(FALLBACKS_SLOT, 0) or 0)


def _count_fallbacks(step: Step, ctx: FlowContext, *, misunderstood: bool) -> Step:
    """Track consecutive misunderstandings in a slot so the fallback can offer a person."""
    previous = fallback_count(ctx)
    count = previous + 1 if misunderstood else 0
    if count == previous and not step.clear_slots:
        return step
    slots = dict(step.slots)
    slots[FALLBACKS_SLOT] = count or None
    return Step(step.replies, step.next_state, slots, step.clear_slots, step.language)


def apply_slots(current: Mapping[str, Any], step: Step) -> dict[str, Any]:
    """The slots after ``step``: cleared if asked, then merged, None deleting a key."""
    slots = {} if step.clear_slots else dict(current)
    for key, value in step.slots.items():
        if value is None:
            slots.pop(key, None)
        else:
            slots[key] = value
    return slots
