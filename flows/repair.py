"""When the bot is the problem: frustration gets an apology and a person at once, and a city question
the bot has no answer for gets the unit that handles it and a person (issue 18.6).

Both are :class:`~flows.engine.Interjection` rules, checked from any state before the flows: a
frustrated resident in the middle of a form is not asked the form's question again (the form is
parked), and a referral mid-flow is a side answer (the flow resumes). Neither fires on a confident
request ("dari tadi lampu jalan mati" is a complaint, not frustration).

Matching uses the NLU's own normalisation (:func:`nlu.normalize.tokens`), so "gak ngerti", "ndak
paham" and "ga nyambung" are the same words as "tidak mengerti", "tidak paham", "tidak menyambung".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from flows.engine import FlowContext, Interjection, Step
from flows.knowledge import KNOWLEDGE_DIR, KnowledgeError, Localized
from flows.messages import IncomingMessage, Reply
from nlu.normalize import tokens
from nlu.result import FALLBACK_INTENT, ParseResult

REFERRALS_FILE = KNOWLEDGE_DIR / "referrals.yml"
SURE = 0.75  # a request at least this confident is acted on, whatever else the message says
STAFF_PAYLOAD = "/talk_to_staff"
MENU_PAYLOAD = "/help"
# Intents a frustrated message is often read as ("ga ngerti" reads as asking for help).
UNSURE_INTENTS = frozenset(
    {FALLBACK_INTENT, "out_of_scope", "bot_challenge", "deny", "greet", "goodbye", "help"}
)

# Phrases that say the bot is failing the resident (matched after the NLU's normalisation).
FRUSTRATION_PHRASES = (
    "bot bodoh", "bot goblok", "bot tolol", "bot bego", "bot payah", "bot tidak guna",
    "bodoh", "goblok", "tolol", "bego", "payah", "tidak berguna", "tidak guna", "percuma",
    "tidak mengerti", "tidak paham", "tidak menyambung", "tidak nyambung", "salah terus", "salah mulu",
    "dari tadi tidak", "muter muter", "berputar putar", "bolak balik", "jawab yang benar",
    "useless", "stupid", "dumb", "not helpful", "dont understand", "don t understand",
    "doesnt understand", "does not understand", "not understand", "makes no sense",
)  # fmt: skip


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """True when ``phrase`` occurs in ``words`` as consecutive tokens."""
    size = len(phrase)
    return any(tuple(words[i : i + size]) == tuple(phrase) for i in range(len(words) - size + 1))


@lru_cache(maxsize=1)
def _frustration() -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(tokens(phrase)) for phrase in FRUSTRATION_PHRASES)


def _unsure(nlu: ParseResult) -> bool:
    return nlu.intent_name in UNSURE_INTENTS or nlu.confidence < SURE


def is_frustrated(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> bool:
    """Typed frustration with the bot, when the message is not also a clear request."""
    if msg.payload or not msg.text or not _unsure(nlu):
        return False
    words = tokens(msg.text)
    return any(_contains(words, phrase) for phrase in _frustration())


async def on_frustrated(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """An apology and a person at once (the menu beside it); any form in progress is parked."""
    buttons = (
        ctx.button("repair.staff_button", STAFF_PAYLOAD),
        ctx.button("repair.menu_button", MENU_PAYLOAD),
    )
    return Step([Reply(ctx.t("repair.frustrated"), buttons)], feedback={"frustrated": True})


@dataclass(frozen=True, slots=True)
class Referral:
    """A city topic the bot cannot answer, and the unit that handles it."""

    key: str
    phrases: tuple[tuple[str, ...], ...]
    unit: Localized


@lru_cache(maxsize=1)
def load_referrals(path: Path = REFERRALS_FILE) -> tuple[Referral, ...]:
    """The referral topics, validated (a topic without words or a unit in both languages is refused)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    referrals = []
    for key, entry in (raw.get("topics") or {}).items():
        words = entry.get("words") if isinstance(entry, dict) else None
        unit = entry.get("unit") if isinstance(entry, dict) else None
        if not words or not isinstance(unit, dict) or not unit.get("id") or not unit.get("en"):
            raise KnowledgeError(f"{path.name}: topic {key!r} needs words and a unit in id and en")
        phrases = tuple(tuple(tokens(str(word))) for word in words)
        referrals.append(Referral(str(key), phrases, Localized(str(unit["id"]), str(unit["en"]))))
    return tuple(referrals)


def referral_for(text: str) -> Referral | None:
    """The first topic one of whose phrases the text contains."""
    words = tokens(text)
    for referral in load_referrals():
        if any(phrase and _contains(words, phrase) for phrase in referral.phrases):
            return referral
    return None


def is_referral(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> bool:
    """A question about a topic the bot refers elsewhere, which the NLU did not place confidently."""
    return bool(msg.text) and not msg.payload and _unsure(nlu) and referral_for(msg.text or "") is not None


async def on_referral(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Sorry, not here yet: who handles it, and a person at once."""
    referral = referral_for(msg.text or "")
    assert referral is not None
    buttons = (
        ctx.button("repair.staff_button", STAFF_PAYLOAD),
        ctx.button("repair.menu_button", MENU_PAYLOAD),
    )
    text = ctx.t("repair.referral", unit=referral.unit.get(ctx.lang))
    return Step([Reply(text, buttons)], feedback={"referral": referral.key})


def repair_interjections() -> list[Interjection]:
    """Frustration first (it ends a form), then referrals (answered beside a form)."""
    return [
        Interjection("frustration", is_frustrated, on_frustrated, leaves=True),
        Interjection("referral", is_referral, on_referral),
    ]
