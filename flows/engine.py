"""The flow engine: global intents, interruptions, the active flow's step, or the flow an intent starts.

A handler gets ``(ctx, msg, nlu)`` and returns a :class:`Step` — replies, the next state and slot
changes as a value. The dispatcher stores the step; nothing here writes state directly.

Routing, in order, for every message:

0. **Commands** come before everything, NLU included: a flow may declare ``Flow.command``, a
   deterministic rule over the raw message (a button payload such as ``/erase_data``, or a normalised
   fixed phrase such as "hapus data saya" or "BERHENTI"). Residents' rights must not depend on a
   classifier's guess, and erasure is no NLU intent (DESIGN 3.1 is a contract). A command answers like
   a side question: an interrupted flow resumes after it (or after its own question is answered).
   Commands also run while a person has the conversation (:meth:`FlowEngine.is_command`).
1. **Global intents** (cancel, help/menu, emergency, talk_to_staff, change_language) run from any
   state. A global handler that keeps the state (help, change_language) gets the pending question
   repeated after its answer; one that ends the flow (cancel, emergency) drops it.
2. **Unsupported content** (sticker, voice…) is answered politely; an active flow's question is repeated.
3. **Inside a flow** (``ctx.state`` is one of a flow's states) the message goes to that state's handler
   when it looks like an answer: an answer-like intent (affirm, deny, nlu_fallback, out_of_scope), an
   intent of the same flow, an intent the state lists in ``Flow.accepts`` (``"*"`` = every intent),
   or typed text below :data:`INTERRUPT_CONFIDENCE`. Otherwise it is an **interruption**:

   * a **side question** — the target flow has ``side=True`` (documents, offices, small talk,
     unsubscribe): the target's start handler answers, and the interrupted flow **resumes** with its
     pending question repeated. When the side flow asks a question of its own, the interrupted state
     is pushed on a resume stack (slot ``_resume``) and resumed when the side flow ends;
   * a **different journey** — the engine asks whether to leave the current flow (buttons yes/no,
     state ``engine.confirm_switch``, the message kept in slot ``_switch``). "Yes" clears the flow's
     slots and replays the kept message into the new flow; "no" resumes the old state and repeats its
     question; anything else repeats the yes/no question.
4. **Idle**: the flow that claims the message (``Flow.claims``, e.g. "kalau KK?" after a KTP answer)
   or the flow its intent starts; else the fallback (the second miss in a row offers menu and a person).

The **pending question** of a state is ``Flow.prompts[state](ctx)`` when the flow declares one (then it
is re-rendered in the resident's current language), else the replies of the step that entered the state,
which the engine keeps in slot ``_prompt``. So a new flow gets interruptions and resumption for free;
declaring ``prompts`` and ``accepts`` only sharpens them.

Slots: flows keep working data under their own prefix (``complaint.category``); keys starting with
``last_`` (``last_permit``, ``last_ticket``, ``last_document``) are conversation memory that survives
``clear_slots`` (cancel, leaving a flow); keys starting with ``_`` belong to the engine.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Button, Channel, ContentKind, IncomingMessage, Reply
from flows.texts import Texts
from integrations.base import ComplaintDesk, PermitBackend
from nlu.result import FALLBACK_INTENT, ParseResult

logger = logging.getLogger(__name__)

GLOBAL_INTENTS = ("cancel", "help", "talk_to_staff", "emergency", "change_language")
ANSWER_INTENTS = frozenset({"affirm", "deny", FALLBACK_INTENT, "out_of_scope"})
ANY_INTENT = "*"
INTERRUPT_CONFIDENCE = 0.75
MAX_RESUME_DEPTH = 3

FALLBACKS_SLOT = "_fallbacks"
PROMPT_SLOT = "_prompt"
RESUME_SLOT = "_resume"
SWITCH_SLOT = "_switch"
MEMORY_PREFIX = "last_"

YES_PAYLOAD = "/affirm"
NO_PAYLOAD = "/deny"


class EngineState(StrEnum):
    """States the engine itself owns."""

    CONFIRM_SWITCH = "engine.confirm_switch"


class FlowError(Exception):
    """A flow could not produce a step (a bug or a back end failure it did not handle)."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one turn produces: replies, the next state (None = idle) and slot changes.

    ``slots`` is merged into the conversation's slots (a value of None deletes the key);
    ``clear_slots`` empties them first, except conversation memory (keys starting with ``last_``).
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

    def flag_handoff(self, *, urgent: bool, new: bool = True) -> str | None:
        """Counts a handoff (``new=False``: one made urgent) against the message's client address; a
        reason when that address opened too many lately (staff see it marked), else None."""
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

    def with_changes(
        self, *, state: str | None, language: str | None = None, slots: Mapping[str, Any] | None = None
    ) -> FlowContext:
        """A copy in ``state``, optionally with another language or slots (for re-asking and replaying)."""
        resident = self.resident
        if language is not None and language != resident.language:
            resident = dataclasses.replace(resident, language=language)
        return dataclasses.replace(
            self,
            resident=resident,
            state=state,
            slots=dict(self.slots if slots is None else slots),
        )


Handler = Callable[[FlowContext, IncomingMessage, ParseResult], Awaitable[Step]]
Command = Callable[[IncomingMessage], bool]
Prompt = Callable[[FlowContext], Sequence[Reply]]
Claim = Callable[[FlowContext, IncomingMessage, ParseResult], bool]


@dataclass(frozen=True, slots=True)
class Flow:
    """A conversation journey: the intents that start it, its entry handler and its state handlers.

    ``prompts`` re-ask a state's pending question after an interruption; ``accepts`` lists, per state,
    intents of other flows that are still answers there (``"*"``: every intent); ``side`` marks a flow
    that may answer in the middle of another one, which then resumes; ``claims`` lets a flow take a
    message its intent would not route to it (context follow-ups); ``title_key`` names it to residents;
    ``command`` starts it before any other routing (a payload or a fixed phrase, not an intent).
    """

    name: str
    intents: frozenset[str]
    start: Handler
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    prompts: Mapping[str, Prompt] = field(default_factory=dict)
    accepts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    side: bool = False
    claims: Claim | None = None
    title_key: str | None = None
    command: Command | None = None


@dataclass(frozen=True, slots=True)
class Globals:
    """Handlers the engine itself needs: global intents, idle fallback, unsupported content."""

    handlers: Mapping[str, Handler]
    fallback: Handler
    unsupported: Handler


class FlowEngine:
    """Routes one parsed message to the right handler and returns its step."""

    def __init__(self, flows: Sequence[Flow], globals_: Globals) -> None:
        self._flows = tuple(flows)
        self._by_intent: dict[str, Flow] = {}
        self._by_state: dict[str, Handler] = {}
        self._flow_of_state: dict[str, Flow] = {}
        for flow in flows:
            for intent in flow.intents:
                if intent in self._by_intent:
                    raise FlowError(f"intent {intent!r} starts two flows")
                self._by_intent[intent] = flow
            for state, handler in flow.handlers.items():
                if state in self._by_state or state in set(EngineState):
                    raise FlowError(f"state {state!r} belongs to two flows")
                self._by_state[state] = handler
                self._flow_of_state[state] = flow
        self._by_state[EngineState.CONFIRM_SWITCH] = self._on_confirm_switch
        self._globals = globals_

    @property
    def intents(self) -> frozenset[str]:
        """Intents that start a flow or are handled globally."""
        return frozenset(self._by_intent) | frozenset(self._globals.handlers)

    @property
    def states(self) -> frozenset[str]:
        """Every state some flow (or the engine) handles."""
        return frozenset(self._by_state)

    def knows_state(self, state: str | None) -> bool:
        """True when ``state`` has a handler (stale states from old versions fall back to idle)."""
        return state is not None and state in self._by_state

    def is_command(self, msg: IncomingMessage, state: str | None = None) -> bool:
        """True when ``msg`` is a command, or answers the question a command flow asked (``state``).

        Commands are residents' rights (erase, "my data", opt-out): they run whoever has the
        conversation, a person during a handoff included (the dispatcher asks here).
        """
        if self._commanded(msg) is not None:
            return True
        flow = self._flow_of_state.get(state) if state is not None else None
        return flow is not None and flow.command is not None

    async def handle(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """One turn: global intent, the active state's handler, an interruption, a new flow, or fallback."""
        state = ctx.state if self.knows_state(ctx.state) else None
        if state != ctx.state:
            ctx = ctx.with_changes(state=state)
        commanded = self._commanded(msg)
        if commanded is not None:
            step = await commanded.start(ctx, msg, nlu)
            if state is None or self._flow_of_state.get(state) is commanded:
                return self._finish(ctx, self._remember_prompt(step))
            return self._finish(ctx, self._side_answer(ctx, state, step))
        intent = nlu.intent_name
        if intent in self._globals.handlers:
            step = await self._globals.handlers[intent](ctx, msg, nlu)
            return self._finish(ctx, self._after_outside(ctx, step))
        if not (msg.text or msg.payload) and msg.kind not in _UNDERSTOOD_KINDS:
            step = await self._globals.unsupported(ctx, msg, nlu)
            return self._finish(ctx, self._after_outside(ctx, step))
        target = self._target(ctx, msg, nlu)
        if state is not None:
            if self._is_answer(state, msg, nlu, target):
                step = await self._by_state[state](ctx, msg, nlu)
                return self._finish(ctx, self._remember_prompt(step))
            assert target is not None
            if target.side:
                step = await target.start(ctx, msg, nlu)
                return self._finish(ctx, self._side_answer(ctx, state, step))
            return self._finish(ctx, self._ask_switch(ctx, msg, nlu, state, target))
        if target is not None:
            step = await target.start(ctx, msg, nlu)
            return self._finish(ctx, self._remember_prompt(step))
        step = await self._globals.fallback(ctx, msg, nlu)
        return self._finish(ctx, step, misunderstood=True)

    # -- routing -------------------------------------------------------------------------------

    def _commanded(self, msg: IncomingMessage) -> Flow | None:
        """The flow whose command matches this message (checked before NLU-based routing)."""
        for flow in self._flows:
            if flow.command is not None and flow.command(msg):
                return flow
        return None

    def _target(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Flow | None:
        """The flow this message asks for: one that claims it by context, else the intent's flow."""
        for flow in self._flows:
            if flow.claims is not None and flow.claims(ctx, msg, nlu):
                return flow
        return self._by_intent.get(nlu.intent_name)

    def _is_answer(self, state: str, msg: IncomingMessage, nlu: ParseResult, target: Flow | None) -> bool:
        """True when a message in ``state`` should go to the state's handler (not an interruption)."""
        if state == EngineState.CONFIRM_SWITCH:
            return True
        intent = nlu.intent_name
        current = self._flow_of_state[state]
        accepted = current.accepts.get(state, frozenset())
        if target is None or target is current or intent in ANSWER_INTENTS:
            return True
        if ANY_INTENT in accepted or intent in accepted:
            return True
        return not msg.payload and nlu.confidence < INTERRUPT_CONFIDENCE

    # -- resuming ------------------------------------------------------------------------------

    def _prompt(self, ctx: FlowContext, state: str, saved: Sequence[Any] | None = None) -> list[Reply]:
        """The pending question of ``state``: the flow's prompt, else the replies that asked it."""
        flow = self._flow_of_state.get(state)
        if flow is not None and state in flow.prompts:
            return list(flow.prompts[state](ctx.with_changes(state=state)))
        stored = saved if saved is not None else ctx.slots.get(PROMPT_SLOT)
        return [Reply.from_dict(r) for r in stored or [] if isinstance(r, dict)]

    def _resume_replies(
        self, ctx: FlowContext, state: str, saved: Sequence[Any] | None = None
    ) -> list[Reply]:
        """The pending question of ``state`` introduced by a short "back to where we were"."""
        prompt = self._prompt(ctx, state, saved)
        lead = ctx.t("engine.resume")
        if not prompt:
            return [Reply(lead)]
        first, *rest = prompt
        return [dataclasses.replace(first, text=f"{lead}\n\n{first.text}"), *rest]

    def _after_outside(self, ctx: FlowContext, step: Step) -> Step:
        """After a global or unsupported-content answer that kept the flow, repeat its question."""
        if ctx.state is None or step.clear_slots or step.next_state != ctx.state:
            return step
        asked = ctx.with_changes(language=step.language, state=ctx.state)
        if ctx.state == EngineState.CONFIRM_SWITCH:
            return dataclasses.replace(step, replies=[*step.replies, *self._confirm_replies(asked)])
        return dataclasses.replace(step, replies=[*step.replies, *self._resume_replies(asked, ctx.state)])

    def _side_answer(self, ctx: FlowContext, state: str, step: Step) -> Step:
        """A side flow answered in the middle of ``state``: resume it now, or after the side flow."""
        slots = dict(step.slots)
        frame = {"state": state, "prompt": ctx.slots.get(PROMPT_SLOT)}
        if step.next_state is None:
            merged = apply_slots(ctx.slots, Step((), slots=slots))
            resumed = ctx.with_changes(language=step.language, state=state, slots=merged)
            replies = [*step.replies, *self._resume_replies(resumed, state)]
            return Step(replies, state, slots, language=step.language)
        stack = [*_resume_stack(ctx), frame][-MAX_RESUME_DEPTH:]
        slots[RESUME_SLOT] = stack
        slots[PROMPT_SLOT] = [r.to_dict() for r in step.replies]
        return Step(step.replies, step.next_state, slots, language=step.language)

    def _remember_prompt(self, step: Step) -> Step:
        """Keep the replies that asked a flow's question, to repeat them after an interruption."""
        if step.next_state is None or step.next_state in set(EngineState):
            return step
        slots = dict(step.slots)
        slots[PROMPT_SLOT] = [r.to_dict() for r in step.replies]
        return dataclasses.replace(step, slots=slots)

    def _finish(self, ctx: FlowContext, step: Step, *, misunderstood: bool = False) -> Step:
        """Resume an interrupted flow when the current one ended, and count misunderstandings."""
        stack = _resume_stack(ctx)
        if step.next_state is None and stack and not step.clear_slots:
            frame = stack[-1]
            state = str(frame.get("state"))
            if self.knows_state(state):
                slots = dict(step.slots)
                slots[RESUME_SLOT] = stack[:-1] or None
                slots[PROMPT_SLOT] = frame.get("prompt")
                merged = apply_slots(ctx.slots, Step((), slots=slots))
                resumed = ctx.with_changes(language=step.language, state=state, slots=merged)
                replies = [*step.replies, *self._resume_replies(resumed, state, frame.get("prompt"))]
                step = Step(replies, state, slots, language=step.language)
        elif step.next_state is None and not step.clear_slots and PROMPT_SLOT in ctx.slots:
            step = dataclasses.replace(step, slots={**step.slots, PROMPT_SLOT: None})
        return _count_fallbacks(step, ctx, misunderstood=misunderstood)

    # -- leaving a flow for another one --------------------------------------------------------

    def _confirm_replies(self, ctx: FlowContext) -> list[Reply]:
        """The yes/no question: leave the current flow for the new request?"""
        switch = ctx.slots.get(SWITCH_SLOT) or {}
        current = self._title(ctx, str(switch.get("from_flow", "")))
        wanted = self._title(ctx, str(switch.get("to_flow", "")))
        buttons = (ctx.button("engine.switch_yes", YES_PAYLOAD), ctx.button("engine.switch_no", NO_PAYLOAD))
        return [Reply(ctx.t("engine.switch_ask", current=current, wanted=wanted), buttons)]

    def _title(self, ctx: FlowContext, flow_name: str) -> str:
        for flow in self._flows:
            if flow.name == flow_name and flow.title_key:
                return ctx.t(flow.title_key)
        return ctx.t("engine.this_request")

    def _ask_switch(
        self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult, state: str, target: Flow
    ) -> Step:
        """Keep the new request and ask whether to leave the current flow for it."""
        switch = {
            "from_state": state,
            "from_flow": self._flow_of_state[state].name,
            "to_flow": target.name,
            "text": msg.text,
            "payload": msg.payload,
            "nlu": nlu.to_dict(),
        }
        asked = ctx.with_changes(state=EngineState.CONFIRM_SWITCH, slots={**ctx.slots, SWITCH_SLOT: switch})
        return Step(self._confirm_replies(asked), EngineState.CONFIRM_SWITCH, {SWITCH_SLOT: switch})

    async def _on_confirm_switch(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        """Yes: drop the current flow and replay the kept request; no: resume; else ask again."""
        switch = ctx.slots.get(SWITCH_SLOT)
        if not isinstance(switch, dict):
            return Step([ctx.reply("engine.switch_lost")])
        if nlu.intent_name == "deny":
            state = str(switch.get("from_state"))
            if not self.knows_state(state):
                return Step([ctx.reply("engine.switch_lost")], None, {SWITCH_SLOT: None})
            resumed = ctx.with_changes(state=state)
            return Step(self._resume_replies(resumed, state), state, {SWITCH_SLOT: None})
        if nlu.intent_name != "affirm":
            return Step(self._confirm_replies(ctx), EngineState.CONFIRM_SWITCH)
        replayed_nlu = ParseResult.from_dict(dict(switch.get("nlu") or {}))
        replayed_msg = dataclasses.replace(msg, text=switch.get("text"), payload=switch.get("payload"))
        fresh = ctx.with_changes(state=None, slots=_memory(ctx.slots))
        target = self._target(fresh, replayed_msg, replayed_nlu)
        if target is None:
            return Step([ctx.reply("engine.switch_lost")], None, clear_slots=True)
        step = self._remember_prompt(await target.start(fresh, replayed_msg, replayed_nlu))
        return Step(step.replies, step.next_state, step.slots, clear_slots=True, language=step.language)


_UNDERSTOOD_KINDS = frozenset({ContentKind.TEXT, ContentKind.LOCATION, ContentKind.PHOTO})


def _resume_stack(ctx: FlowContext) -> list[dict[str, Any]]:
    raw = ctx.slots.get(RESUME_SLOT)
    return [frame for frame in raw if isinstance(frame, dict)] if isinstance(raw, list) else []


def _memory(slots: Mapping[str, Any]) -> dict[str, Any]:
    """The slots that survive leaving a flow (conversation memory such as ``last_permit``)."""
    return {key: value for key, value in slots.items() if key.startswith(MEMORY_PREFIX)}


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
    """The slots after ``step``: cleared (memory kept) if asked, then merged, None deleting a key."""
    slots = _memory(current) if step.clear_slots else dict(current)
    for key, value in step.slots.items():
        if value is None:
            slots.pop(key, None)
        else:
            slots[key] = value
    return slots
