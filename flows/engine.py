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
1. **Interjections** (:class:`Interjection`, flows/repair.py) are rules checked from any state:
   frustration ("bot bodoh", "dari tadi ga ngerti") gets an apology and a person at once and parks
   the form in progress; a city topic the bot cannot answer (PBB, posyandu) gets the unit that handles
   it and a person, beside the form. Neither fires on a confident request.
   **Global intents** (cancel, help/menu, emergency, talk_to_staff, change_language) run from any
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
   **A way out**: a state handler's step marked ``missed`` (the message answers nothing) counts as a
   stray; "bukan" as a stray ends a wrongly started flow at once; the second stray in a row ends the
   flow and the message is handled on its own. The second side question in a row is answered without
   the flow's question, and ends the flow too (so does a goodbye: ``Flow.leaves``). A flow that
   ``drafts`` (a complaint) keeps its slots for a day: typed "lanjut" resumes it (:data:`DRAFT_SLOT`).
4. **Idle**: the flow that claims the message (``Flow.claims``, e.g. "kalau KK?" after a KTP answer)
   or the flow its intent starts; else the fallback (the second miss in a row offers menu and a person).
   When the NLU is unsure — the journey's confidence below ``Confidence.confirm`` (``record`` for a
   flow that ``creates_records``), or another journey within ``margin`` — the engine asks instead of
   guessing ("Maksud Kakak: 📣 Lapor masalah · 📄 Syarat dokumen · Lainnya", state
   ``engine.clarify``): a choice replays the kept message into that journey, "Lainnya" apologises and
   offers a person, anything else is handled as a new message. Either answer is kept in the
   transcript (``Step.feedback``) for staff to label.

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
from nlu.result import FALLBACK_INTENT, IntentScore, ParseResult

logger = logging.getLogger(__name__)

GLOBAL_INTENTS = ("cancel", "help", "talk_to_staff", "emergency", "change_language")
ANSWER_INTENTS = frozenset({"affirm", "deny", FALLBACK_INTENT, "out_of_scope"})
ANY_INTENT = "*"
INTERRUPT_CONFIDENCE = 0.75
MAX_RESUME_DEPTH = 3
# Journeys the bot may ask about when it is unsure ("Maksud Kakak: 📣 Lapor masalah · … · Lainnya");
# each has a button title ``clarify.<intent>``. Small talk and out_of_scope are answered, never asked.
CLARIFY_INTENTS = (
    "document_requirements", "service_fee", "processing_time", "office_hours", "office_location",
    "permit_status", "file_complaint", "complaint_status", "subscribe_updates", "unsubscribe",
)  # fmt: skip
CLARIFY_OPTIONS = 3
CLARIFY_FLOOR = 0.1  # a journey below this share of the ranking is not offered
REJECTED_FLOOR = 0.2  # ... nor, when the NLU's best guess is "not for me", one below this
REJECTED_INTENTS = frozenset({FALLBACK_INTENT, "out_of_scope"})
MAX_STRAYS = 2  # consecutive messages in a flow that answer nothing: the second one ends the flow
MAX_SIDES = 2  # consecutive side questions: the second is answered without the flow's question again
DRAFT_HOURS = 24
RESUME_WORDS = frozenset({"lanjut", "lanjutkan", "teruskan", "lanjut laporan", "lanjutkan laporan",
                          "continue", "resume", "go on"})  # fmt: skip

FALLBACKS_SLOT = "_fallbacks"
PROMPT_SLOT = "_prompt"
RESUME_SLOT = "_resume"
SWITCH_SLOT = "_switch"
CLARIFY_SLOT = "_clarify"
STRAYS_SLOT = "_strays"
SIDES_SLOT = "_sides"
MEMORY_PREFIX = "last_"
DRAFT_SLOT = "last_draft"  # conversation memory: a parked flow survives leaving it

YES_PAYLOAD = "/affirm"
NO_PAYLOAD = "/deny"


class EngineState(StrEnum):
    """States the engine itself owns."""

    CONFIRM_SWITCH = "engine.confirm_switch"
    CLARIFY = "engine.clarify"


class FlowError(Exception):
    """A flow could not produce a step (a bug or a back end failure it did not handle)."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one turn produces: replies, the next state (None = idle) and slot changes.

    ``slots`` is merged into the conversation's slots (a value of None deletes the key);
    ``clear_slots`` empties them first, except conversation memory (keys starting with ``last_``).
    ``missed``: a flow's state handler got something that answers nothing and asks again (the engine
    counts these to let the resident out of the flow). ``feedback``: what the turn taught about the
    NLU (a clarified or rejected guess), kept in the transcript for staff to label.
    """

    replies: Sequence[Reply]
    next_state: str | None = None
    slots: Mapping[str, Any] = field(default_factory=dict)
    clear_slots: bool = False
    language: str | None = None
    missed: bool = False
    feedback: Mapping[str, Any] | None = None


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


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure the NLU must be before the bot acts without asking (``nlu.*`` in config.yml).

    Below ``fallback`` the parse is already ``nlu_fallback``. An idle message whose journey is below
    ``confirm`` — ``record`` for journeys that create records (a complaint, a subscription) — or whose
    runner-up journey is within ``margin`` gets "which did you mean?" buttons instead of a guess.
    """

    fallback: float = 0.3
    confirm: float = 0.5
    record: float = 0.7
    margin: float = 0.15


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
    ``creates_records``: starting it on a guess would file something (it needs more confidence);
    ``leaves``: a side answer that also ends the journey it interrupts (a farewell, frustration);
    ``drafts``: when the resident walks away, its slots are kept for a day ("lanjut" resumes them).
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
    creates_records: bool = False
    leaves: bool = False
    drafts: bool = False


@dataclass(frozen=True, slots=True)
class Interjection:
    """A message recognised by rule, before any flow sees it, from any state: frustration ("bot
    bodoh"), a city topic the bot refers elsewhere. Answered like a side question (the flow resumes),
    or, with ``leaves``, ending the interrupted flow politely (a frustrated resident gets no form)."""

    name: str
    applies: Callable[[FlowContext, IncomingMessage, ParseResult], bool]
    handler: Handler
    leaves: bool = False


@dataclass(frozen=True, slots=True)
class Globals:
    """Handlers the engine itself needs: global intents, idle fallback, unsupported content, and
    interjections (checked in order after the global intents)."""

    handlers: Mapping[str, Handler]
    fallback: Handler
    unsupported: Handler
    interjections: Sequence[Interjection] = ()


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
        return state is not None and (state in self._by_state or state == EngineState.CLARIFY)

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
        for interjection in self._globals.interjections:
            if interjection.applies(ctx, msg, nlu):
                step = await interjection.handler(ctx, msg, nlu)
                if state is None or state in set(EngineState):
                    return self._finish(ctx, dataclasses.replace(step, next_state=None))
                if interjection.leaves:
                    return self._finish(ctx, self._park_after(ctx, state, step))
                return self._finish(ctx, self._side_answer(ctx, state, step))
        intent = nlu.intent_name
        if intent in self._globals.handlers:
            step = await self._globals.handlers[intent](ctx, msg, nlu)
            return self._finish(ctx, self._after_outside(ctx, step))
        if not (msg.text or msg.payload) and msg.kind not in _UNDERSTOOD_KINDS:
            step = await self._globals.unsupported(ctx, msg, nlu)
            return self._finish(ctx, self._after_outside(ctx, step))
        if state == EngineState.CLARIFY:
            clarified = await self._on_clarify(ctx, msg, nlu)
            if clarified is not None:
                step, misunderstood = clarified
                return self._finish(ctx, step, misunderstood=misunderstood)
            # The resident wrote something else instead of choosing: that message is handled on its own.
            state = None
            ctx = ctx.with_changes(state=None)
        if state is None and _resumes_draft(ctx, msg):
            return self._finish(ctx, self._resume_draft(ctx))
        target = self._target(ctx, msg, nlu)
        if state is not None:
            current = self._flow_of_state.get(state)
            if self._is_answer(state, msg, nlu, target):
                step = await self._by_state[state](ctx, msg, nlu)
                if step.missed and current is not None and intent not in current.intents:
                    if intent == "deny" and not msg.payload:
                        return self._finish(ctx, await self._leave(ctx, state))
                    strays = _count(ctx, STRAYS_SLOT) + 1
                    if strays >= MAX_STRAYS:
                        return self._finish(ctx, await self._park_and_handle(ctx, msg, nlu, state))
                    step = _with_slots(step, {STRAYS_SLOT: strays, SIDES_SLOT: None})
                elif _count(ctx, STRAYS_SLOT) or _count(ctx, SIDES_SLOT):
                    step = _with_slots(step, {STRAYS_SLOT: None, SIDES_SLOT: None})
                return self._finish(ctx, self._remember_prompt(step))
            assert target is not None
            if target.side:
                step = await target.start(ctx, msg, nlu)
                sides = _count(ctx, SIDES_SLOT) + 1
                if target.leaves or sides >= MAX_SIDES:
                    return self._finish(ctx, self._park_after(ctx, state, step))
                return self._finish(
                    ctx, _with_slots(self._side_answer(ctx, state, step), {SIDES_SLOT: sides})
                )
            return self._finish(ctx, self._ask_switch(ctx, msg, nlu, state, target))
        step, misunderstood = await self._idle(ctx, msg, nlu, target)
        return self._finish(ctx, step, misunderstood=misunderstood)

    async def _idle(
        self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult, target: Flow | None
    ) -> tuple[Step, bool]:
        """A message outside any flow: the flow it asks for (or a question when unsure), else fallback."""
        options = self._clarify_options(ctx, msg, nlu, target)
        if options:
            return self._clarify(ctx, msg, nlu, options), False
        if target is not None:
            return self._remember_prompt(await target.start(ctx, msg, nlu)), False
        return await self._globals.fallback(ctx, msg, nlu), True

    # -- routing -------------------------------------------------------------------------------

    def _commanded(self, msg: IncomingMessage) -> Flow | None:
        """The flow whose command matches this message (checked before NLU-based routing)."""
        for flow in self._flows:
            if flow.command is not None and flow.command(msg):
                return flow
        return None

    def _target(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Flow | None:
        """The flow this message asks for: one that claims it by context, else the intent's flow."""
        return self._claimed(ctx, msg, nlu) or self._by_intent.get(nlu.intent_name)

    def _claimed(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Flow | None:
        """The flow that claims this message by context (a follow-up such as "kalau KK?"), if any."""
        for flow in self._flows:
            if flow.claims is not None and flow.claims(ctx, msg, nlu):
                return flow
        return None

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
                step = dataclasses.replace(step, replies=replies, next_state=state, slots=slots)
        elif step.next_state is None and not step.clear_slots and PROMPT_SLOT in ctx.slots:
            step = dataclasses.replace(step, slots={**step.slots, PROMPT_SLOT: None})
        stale = {
            key: None
            for key, kept in (
                (STRAYS_SLOT, step.next_state is not None),
                (SIDES_SLOT, step.next_state is not None),
                (CLARIFY_SLOT, step.next_state == EngineState.CLARIFY),
            )
            if key in ctx.slots and key not in step.slots and not kept
        }
        if stale:
            step = _with_slots(step, stale)
        return _count_fallbacks(step, ctx, misunderstood=misunderstood)

    # -- not sure: ask which journey ------------------------------------------------------------

    def _clarify_options(
        self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult, target: Flow | None
    ) -> list[str]:
        """The journeys to offer when the bot is not sure enough to start ``target`` (none: go on).

        A button press or a context follow-up a flow claimed is sure; otherwise :meth:`unsure_options`.
        """
        if msg.payload or (target is not None and target is not self._by_intent.get(nlu.intent_name)):
            return []
        if self._claimed(ctx, msg, nlu) is not None:
            return []
        levels = ctx.settings.get("confidence")
        return self.unsure_options(nlu, levels if isinstance(levels, Confidence) else Confidence())

    def unsure_options(self, nlu: ParseResult, levels: Confidence) -> list[str]:
        """The journeys the bot would offer for this parse instead of acting on it (none: it acts).

        Small talk is a harmless guess. A journey needs ``levels.confirm`` (``levels.record`` when its
        flow creates records), and a runner-up journey of another flow must not be within
        ``levels.margin``. When the best guess is "not for me" (``nlu_fallback``, or ``out_of_scope``
        below ``levels.confirm``), journeys the ranking still gives :data:`REJECTED_FLOOR` are offered
        (Rasa's two-stage fallback) instead of "belum paham". Pure: the NLU benchmarks score the
        dialogue with it.
        """
        intent = nlu.intent_name
        if intent in REJECTED_INTENTS:
            if intent != FALLBACK_INTENT and nlu.confidence >= levels.confirm:
                return []
            offered = [
                score.name
                for score in nlu.intent_ranking
                if score.name in CLARIFY_INTENTS and score.confidence >= REJECTED_FLOOR
            ]
            return offered[:CLARIFY_OPTIONS]
        target = self._by_intent.get(intent)
        if intent not in CLARIFY_INTENTS or target is None:
            return []
        needed = levels.record if target.creates_records else levels.confirm
        runners = [
            score
            for score in nlu.intent_ranking
            if score.name in CLARIFY_INTENTS and score.name != intent and score.confidence >= CLARIFY_FLOOR
        ]
        close = any(
            self._by_intent.get(score.name) is not target
            and nlu.confidence - score.confidence < levels.margin
            for score in runners
        )
        if nlu.confidence >= needed and not close:
            return []
        return [intent, *(score.name for score in runners)][:CLARIFY_OPTIONS]

    def _clarify(self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult, options: list[str]) -> Step:
        """Ask which of the likely journeys the resident meant (buttons), keeping the message to replay."""
        kept = {"text": msg.text, "payload": msg.payload, "nlu": nlu.to_dict(), "options": options}
        asked = ctx.with_changes(state=EngineState.CLARIFY, slots={**ctx.slots, CLARIFY_SLOT: kept})
        return Step(self._clarify_replies(asked), EngineState.CLARIFY, {CLARIFY_SLOT: kept})

    def _clarify_replies(self, ctx: FlowContext) -> list[Reply]:
        kept = ctx.slots.get(CLARIFY_SLOT) or {}
        options = [str(o) for o in kept.get("options") or [] if o in CLARIFY_INTENTS]
        buttons = [ctx.button(f"clarify.{intent}", f"/{intent}") for intent in options]
        buttons.append(ctx.button("clarify.other", NO_PAYLOAD))
        return [Reply(ctx.t("clarify.ask"), tuple(buttons))]

    async def _on_clarify(
        self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult
    ) -> tuple[Step, bool] | None:
        """A choice replays the kept message as that journey; "Lainnya"/"bukan" apologises and offers
        a person; anything else is a new message (None: the caller handles it on its own)."""
        kept = ctx.slots.get(CLARIFY_SLOT)
        if not isinstance(kept, dict):
            return None
        options = [str(o) for o in kept.get("options") or []]
        guess = ParseResult.from_dict(dict(kept.get("nlu") or {}))
        said = {"text": kept.get("text"), "guess": guess.intent_name, "confidence": guess.confidence}
        if nlu.intent_name == "deny" or _said_other(msg):
            feedback = {"clarified": {**said, "chosen": None, "offered": options}}
            buttons = (ctx.button("clarify.staff", "/talk_to_staff"), ctx.button("clarify.menu", "/help"))
            step = Step(
                [Reply(ctx.t("clarify.none"), buttons)], None, {CLARIFY_SLOT: None}, feedback=feedback
            )
            return step, True
        if nlu.intent_name not in options:
            return None
        chosen = nlu.intent_name
        replayed_nlu = dataclasses.replace(guess, intent=IntentScore(chosen, 1.0))
        replayed_msg = dataclasses.replace(msg, text=kept.get("text"), payload=kept.get("payload"))
        fresh = ctx.with_changes(state=None, slots={k: v for k, v in ctx.slots.items() if k != CLARIFY_SLOT})
        target = self._by_intent.get(chosen)
        if target is None:
            return None
        step = self._remember_prompt(await target.start(fresh, replayed_msg, replayed_nlu))
        feedback = {"clarified": {**said, "chosen": chosen, "offered": options}}
        return dataclasses.replace(step, slots={**step.slots, CLARIFY_SLOT: None}, feedback=feedback), False

    # -- a way out: parking a flow, resuming its draft -----------------------------------------

    def _draft(self, ctx: FlowContext, state: str) -> dict[str, Any]:
        """The parked flow: its state, pending question and working slots, and when it was parked."""
        working = {k: v for k, v in ctx.slots.items() if not k.startswith(("_", MEMORY_PREFIX))}
        return {
            "state": state,
            "prompt": ctx.slots.get(PROMPT_SLOT),
            "slots": working,
            "at": ctx.services.now().isoformat(),
        }

    def _park(self, ctx: FlowContext, state: str, language: str | None) -> tuple[Reply, dict[str, Any]]:
        """End the flow of ``state`` politely: the word to the resident, and its draft when it keeps one."""
        flow = self._flow_of_state.get(state)
        told = ctx.with_changes(state=None, language=language)
        if flow is not None and flow.drafts:
            return told.reply("engine.parked_draft"), {DRAFT_SLOT: self._draft(ctx, state)}
        return told.reply("engine.closed", flow=self._title(told, flow.name if flow else "")), {}

    def _park_after(self, ctx: FlowContext, state: str, step: Step) -> Step:
        """A side answer that ends the interrupted flow: the answer, then a word on the ended flow."""
        note, kept = self._park(ctx, state, step.language)
        slots = {**step.slots, **kept}
        parked = Step([*step.replies, note], step.next_state, slots, clear_slots=True, language=step.language)
        return self._remember_prompt(parked)

    async def _park_and_handle(
        self, ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult, state: str
    ) -> Step:
        """The second message in a row that answers nothing: end the flow, handle the message alone."""
        fresh = ctx.with_changes(state=None, slots=_memory(ctx.slots))
        step, _ = await self._idle(fresh, msg, nlu, self._target(fresh, msg, nlu))
        note, kept = self._park(ctx, state, step.language)
        slots = {**step.slots, **kept}
        return Step(
            [note, *step.replies], step.next_state, slots, True, step.language, feedback=step.feedback
        )

    async def _leave(self, ctx: FlowContext, state: str) -> Step:
        """ "bukan" to a flow's question it does not answer: the flow was started wrongly; end it."""
        flow = self._flow_of_state.get(state)
        title = self._title(ctx, flow.name if flow else "")
        buttons = (ctx.button("clarify.staff", "/talk_to_staff"), ctx.button("clarify.menu", "/help"))
        feedback = {"left": {"state": state, "flow": flow.name if flow else None}}
        return Step(
            [Reply(ctx.t("engine.left", flow=title), buttons)], None, clear_slots=True, feedback=feedback
        )

    def _resume_draft(self, ctx: FlowContext) -> Step:
        """ "lanjut": the parked flow's question again, its slots restored (within a day)."""
        draft = ctx.slots.get(DRAFT_SLOT)
        state = str(draft.get("state")) if isinstance(draft, dict) else ""
        if (
            not isinstance(draft, dict)
            or not self.knows_state(state)
            or _draft_age_hours(ctx, draft) > DRAFT_HOURS
        ):
            return Step([ctx.reply("engine.draft_expired")], None, {DRAFT_SLOT: None})
        slots: dict[str, Any] = {
            **dict(draft.get("slots") or {}),
            DRAFT_SLOT: None,
            PROMPT_SLOT: draft.get("prompt"),
        }
        resumed = ctx.with_changes(state=state, slots={**ctx.slots, **slots})
        prompt = self._prompt(resumed, state, draft.get("prompt"))
        flow = self._flow_of_state.get(state)
        lead = ctx.t("engine.draft_resumed", flow=self._title(ctx, flow.name if flow else ""))
        if prompt:
            first, *rest = prompt
            replies = [dataclasses.replace(first, text=f"{lead}\n\n{first.text}"), *rest]
        else:
            replies = [Reply(lead)]
        return Step(replies, state, slots)

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


def _count(ctx: FlowContext, slot: str) -> int:
    """A counter the engine keeps in a slot (consecutive strays or side questions before this one)."""
    value = ctx.slots.get(slot, 0)
    return value if isinstance(value, int) else 0


def _with_slots(step: Step, slots: Mapping[str, Any]) -> Step:
    return dataclasses.replace(step, slots={**step.slots, **slots})


OTHER_WORDS = frozenset({"lainnya", "yang lain", "lain", "bukan", "bukan semua", "bukan itu", "tidak ada",
                         "other", "something else", "none", "neither"})  # fmt: skip


def _normalised(msg: IncomingMessage) -> str:
    return " ".join((msg.text or "").casefold().replace("*", " ").split()).strip(" .!?")


def _said_other(msg: IncomingMessage) -> bool:
    return not msg.payload and _normalised(msg) in OTHER_WORDS


def _resumes_draft(ctx: FlowContext, msg: IncomingMessage) -> bool:
    """ "lanjut" (typed) while a parked flow waits."""
    return (
        isinstance(ctx.slots.get(DRAFT_SLOT), dict) and not msg.payload and _normalised(msg) in RESUME_WORDS
    )


def _draft_age_hours(ctx: FlowContext, draft: Mapping[str, Any]) -> float:
    try:
        parked = datetime.fromisoformat(str(draft.get("at")))
    except ValueError:
        return float("inf")
    return (ctx.services.now() - parked).total_seconds() / 3600


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
    return dataclasses.replace(step, slots=slots)


def apply_slots(current: Mapping[str, Any], step: Step) -> dict[str, Any]:
    """The slots after ``step``: cleared (memory kept) if asked, then merged, None deleting a key."""
    slots = _memory(current) if step.clear_slots else dict(current)
    for key, value in step.slots.items():
        if value is None:
            slots.pop(key, None)
        else:
            slots[key] = value
    return slots
