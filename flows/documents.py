"""Document requirements, fee and processing time, answered from flows/knowledge/documents.yml.

Follow-ups keep context through conversation memory: ``last_document`` (the document last answered)
and ``last_document_aspect`` (requirements, fee or time), so "berapa lama?" after the KTP-el
requirements answers the KTP-el processing time, and "kalau KK?" answers the same aspect for KK.
A side flow: asked in the middle of another journey, it answers and that journey resumes.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum

from flows.engine import Flow, FlowContext, Step
from flows.knowledge import DocumentInfo, load_documents, load_offices
from flows.messages import Button, IncomingMessage, Reply
from nlu.result import FALLBACK_INTENT, ParseResult


class DocumentsState(StrEnum):
    """Where the documents dialogue stands."""

    ASK_TYPE = "documents.ask_type"


class Aspect(StrEnum):
    """What the resident wants to know about a document."""

    REQUIREMENTS = "requirements"
    FEE = "fee"
    TIME = "time"


ASPECT_OF_INTENT = {
    "document_requirements": Aspect.REQUIREMENTS,
    "service_fee": Aspect.FEE,
    "processing_time": Aspect.TIME,
}
INTENTS = frozenset(ASPECT_OF_INTENT)
CHOOSE_ENTITY = "choose"  # a button's request to pick another document (memory ignored)
ASPECT_SLOT = "documents.aspect"
MISSES_SLOT = "documents.misses"
LAST_DOCUMENT = "last_document"
LAST_ASPECT = "last_document_aspect"
MAX_MISSES = 2
LAST_OFFICE = "last_office"  # shared with flows.offices: the office a follow-up refers to
MAX_FOLLOW_UP_WORDS = 6
ONLINE_WORDS = frozenset(
    {"online", "daring", "onlen", "onlin", "internet", "website", "web", "aplikasi", "apk"}
)
PLACE_KEYS = {"kantor_camat": "documents.place_camat", "kantor_lurah": "documents.place_lurah"}
_WORD = re.compile(r"[^\W_]+")


async def on_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Answers for the named or remembered document; asks which one (buttons) when there is none."""
    aspect = _aspect(ctx, nlu)
    document = _document_in(nlu)
    if document is None and nlu.entity(CHOOSE_ENTITY) is None:
        document = _known(ctx.slots.get(LAST_DOCUMENT))
    if document is None:
        return Step(
            [_ask(ctx, aspect, "documents.ask")], DocumentsState.ASK_TYPE, {ASPECT_SLOT: aspect.value}
        )
    if _asks_online(nlu.text) and nlu.entity("aspect") is None:
        return answer_online(ctx, document)
    return answer(ctx, document, aspect)


async def on_ask_type(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes the document the resident chose and answers; re-asks on anything else, then gives up."""
    aspect = _aspect(ctx, nlu)
    document = _document_in(nlu)
    if document is not None:
        return answer(ctx, document, aspect)
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0) + 1
    if misses > MAX_MISSES:
        staff = ctx.button("menu.staff", "/talk_to_staff")
        menu = ctx.button("documents.button_menu", "/help")
        return Step(
            [ctx.reply("documents.give_up", staff, menu)],
            None,
            {ASPECT_SLOT: None, MISSES_SLOT: None},
        )
    slots = {ASPECT_SLOT: aspect.value, MISSES_SLOT: misses}
    return Step([_ask(ctx, aspect, "documents.ask_again")], DocumentsState.ASK_TYPE, slots, missed=True)


def prompt_ask_type(ctx: FlowContext) -> list[Reply]:
    """The pending "which document?" question, in the resident's current language."""
    return [_ask(ctx, _aspect(ctx, None), "documents.ask")]


def answer(ctx: FlowContext, key: str, aspect: Aspect) -> Step:
    """One document's requirements, fee or processing time, with buttons for the other aspects."""
    info = load_documents().documents[key]
    lang = ctx.lang
    name = info.name.get(lang)
    if aspect is Aspect.FEE:
        lines = [ctx.t("documents.fee_title", name=name), info.fee.get(lang)]
    elif aspect is Aspect.TIME:
        lines = [ctx.t("documents.time_title", name=name), info.processing_time.get(lang)]
    else:
        lines = [ctx.t("documents.requirements_title", name=name)]
        lines += [f"• {item}" for item in info.requirements[lang]]
    lines.append(ctx.t("documents.where", places=_places(ctx, info)))
    lines.append(ctx.t("documents.online", online=info.online.get(lang)))
    if aspect is Aspect.REQUIREMENTS and info.notes.get(lang):
        lines.append(ctx.t("documents.note", note=info.notes.get(lang)))
    if aspect is Aspect.REQUIREMENTS:
        lines.append(ctx.t("documents.follow_up_hint"))
    reply = Reply("\n".join(lines), _answer_buttons(ctx, info, aspect))
    slots = {LAST_DOCUMENT: key, LAST_ASPECT: aspect.value, ASPECT_SLOT: None, MISSES_SLOT: None}
    return Step([reply], None, slots | _office_memory(info))


def answer_online(ctx: FlowContext, key: str) -> Step:
    """ "kalau yang online?" after a document: how to apply for it online, with the usual buttons."""
    info = load_documents().documents[key]
    lines = [ctx.t("documents.online_title", name=info.name.get(ctx.lang))]
    lines.append(info.online.get(ctx.lang))
    reply = Reply("\n".join(lines), _answer_buttons(ctx, info, Aspect.REQUIREMENTS))
    return Step(
        [reply], None, {LAST_DOCUMENT: key, ASPECT_SLOT: None, MISSES_SLOT: None} | _office_memory(info)
    )


def _office_memory(info: DocumentInfo) -> dict[str, str]:
    """The office a follow-up such as "kantornye dimane" means after this document: its first named one."""
    offices = load_offices().offices
    named = [key for key in info.offices if key in offices]
    return {LAST_OFFICE: named[0]} if named else {}


def _asks_online(text: str) -> bool:
    return any(word in ONLINE_WORDS for word in _WORD.findall(text.casefold()))


def claims(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> bool:
    """True for a message about a document the NLU sent elsewhere: "kalau KK?", a bare "PBG", and
    "kalau yang online?" right after a document's answer (the context makes it sure)."""
    if nlu.entity("permit_number") or nlu.entity("ticket_number"):
        return False
    if _document_in(nlu) is None:
        remembered = _known(ctx.slots.get(LAST_DOCUMENT)) is not None
        return remembered and _asks_online(nlu.text) and len(_WORD.findall(nlu.text)) <= MAX_FOLLOW_UP_WORDS
    if nlu.intent_name in INTENTS:
        return False
    if ctx.state == DocumentsState.ASK_TYPE or nlu.intent_name in (FALLBACK_INTENT, "out_of_scope"):
        return True
    return _only_follow_up_words(nlu)


def _only_follow_up_words(nlu: ParseResult) -> bool:
    """True when everything but the document's name is a filler word ("kalau", "yang", "how about")."""
    text = nlu.text
    for entity in sorted(nlu.entities, key=lambda e: e.start, reverse=True):
        if entity.entity == "document_type" and 0 <= entity.start <= entity.end <= len(text):
            text = text[: entity.start] + " " + text[entity.end :]
    words = load_documents().follow_up_words
    return all(word.casefold() in words for word in _WORD.findall(text))


def _aspect(ctx: FlowContext, nlu: ParseResult | None) -> Aspect:
    if nlu is not None:
        named = nlu.entity("aspect")
        if named in set(Aspect):
            return Aspect(named)
        # "kalau KK?" right after "berapa lama?" asks the same question about another document.
        previous = ctx.slots.get(LAST_ASPECT)
        if previous in set(Aspect) and not nlu.text.startswith("/") and _only_follow_up_words(nlu):
            return Aspect(previous)
        if nlu.intent_name in ASPECT_OF_INTENT:
            return ASPECT_OF_INTENT[nlu.intent_name]
    for slot in (ASPECT_SLOT, LAST_ASPECT):
        value = ctx.slots.get(slot)
        if value in set(Aspect):
            return Aspect(value)
    return Aspect.REQUIREMENTS


def _document_in(nlu: ParseResult) -> str | None:
    return _known(nlu.entity("document_type"))


def _known(value: object) -> str | None:
    return value if isinstance(value, str) and value in load_documents().documents else None


def _ask(ctx: FlowContext, aspect: Aspect, key: str) -> Reply:
    buttons = tuple(
        Button(
            info.short.get(ctx.lang),
            _payload(_intent_of(aspect), document_type=info.key, aspect=aspect.value),
        )
        for info in load_documents().documents.values()
    )
    return Reply(ctx.t(key), buttons)


def _answer_buttons(ctx: FlowContext, info: DocumentInfo, aspect: Aspect) -> tuple[Button, ...]:
    aspect_buttons = {
        Aspect.REQUIREMENTS: ("documents.button_requirements", "document_requirements"),
        Aspect.FEE: ("documents.button_fee", "service_fee"),
        Aspect.TIME: ("documents.button_time", "processing_time"),
    }
    buttons = [
        ctx.button(key, _payload(intent, document_type=info.key))
        for other, (key, intent) in aspect_buttons.items()
        if other is not aspect
    ]
    buttons.append(ctx.button("documents.button_office", _payload("office_location", office=info.offices[0])))
    other = _payload(_intent_of(aspect), aspect=aspect.value, **{CHOOSE_ENTITY: "document"})
    buttons.append(ctx.button("documents.button_other", other))
    return tuple(buttons)


def _intent_of(aspect: Aspect) -> str:
    return next(intent for intent, value in ASPECT_OF_INTENT.items() if value is aspect)


def _places(ctx: FlowContext, info: DocumentInfo) -> str:
    offices = load_offices().offices
    names = []
    for key in info.offices:
        if key in PLACE_KEYS:
            names.append(ctx.t(PLACE_KEYS[key]))
        elif key in offices:
            names.append(offices[key].short.get(ctx.lang))
    return ", ".join(names)


def _payload(intent: str, **entities: str) -> str:
    """A Rasa-style button payload: ``/intent{"entity": "value"}``."""
    return f"/{intent}{json.dumps(entities, ensure_ascii=False)}" if entities else f"/{intent}"


def documents_flow() -> Flow:
    """The documents journey (a side flow that claims context follow-ups)."""
    return Flow(
        name="documents",
        intents=INTENTS,
        start=on_start,
        handlers={DocumentsState.ASK_TYPE: on_ask_type},
        prompts={DocumentsState.ASK_TYPE: prompt_ask_type},
        side=True,
        claims=claims,
        title_key="flow_title.documents",
    )
