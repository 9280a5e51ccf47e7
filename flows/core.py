"""Conversation basics: greeting, menu and help, small talk, cancel, language, emergency, fallback."""

from __future__ import annotations

from flows.engine import Flow, FlowContext, Globals, Handler, Step, fallback_count
from flows.messages import Button, IncomingMessage, Reply
from flows.repair import repair_interjections
from nlu.result import ParseResult

MENU_ITEMS = (
    ("menu.documents", "/document_requirements"),
    ("menu.permit_status", "/permit_status"),
    ("menu.file_complaint", "/file_complaint"),
    ("menu.complaint_status", "/complaint_status"),
    ("menu.offices", "/office_hours"),
    ("menu.staff", "/talk_to_staff"),
)
ENGLISH_WORDS = ("english", "inggris", "eng")
INDONESIAN_WORDS = ("indonesia", "indo", "melayu", "bahasa")
EMERGENCY_NUMBER = "112"
MENU_WORDS = frozenset({"menu", "menu utama", "main menu", "start", "mulai"})
SIDE_SMALLTALK = frozenset({"greet", "goodbye", "thank_you", "bot_challenge"})


def menu_buttons(ctx: FlowContext) -> tuple[Button, ...]:
    """The main menu as buttons in the resident's language."""
    return tuple(ctx.button(key, payload) for key, payload in MENU_ITEMS)


def menu_reply(ctx: FlowContext, lead_key: str | None = None) -> Reply:
    """The menu, optionally preceded by another text (greeting, cancel confirmation…)."""
    text = ctx.t("menu.intro")
    if lead_key is not None:
        text = f"{ctx.t(lead_key)}\n\n{text}"
    return Reply(text, menu_buttons(ctx))


async def on_greet(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Greets and shows the menu; stores nothing, asks what the resident needs."""
    return Step([menu_reply(ctx, "greet")])


async def on_help(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Shows the menu (with what the bot can do when asked for help); leaves any active flow untouched."""
    if _asks_for_menu_only(msg.text or msg.payload or ""):
        return Step([Reply(ctx.t("menu.intro"), menu_buttons(ctx))], ctx.state)
    return Step([ctx.reply("help"), Reply(ctx.t("menu.intro"), menu_buttons(ctx))], ctx.state)


def _asks_for_menu_only(text: str) -> bool:
    return text.strip().strip("/").casefold() in MENU_WORDS


async def on_cancel(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Drops the active flow and its slots, then offers the menu."""
    key = "cancel.done" if ctx.state else "cancel.nothing"
    return Step([menu_reply(ctx, key)], None, clear_slots=True)


async def on_fallback(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Asks to rephrase; after the second miss in a row offers the menu and a person."""
    if fallback_count(ctx) + 1 >= 2:
        return Step([Reply(ctx.t("fallback.repeated"), menu_buttons(ctx))])
    return Step([ctx.reply("fallback.first")])


async def on_change_language(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores the resident's language when it is clear which one, else asks with two buttons.

    Keeps the active flow; the engine repeats its pending question in the new language.
    """
    wanted = nlu.entity("language") or _language_in(msg.text or "")
    if wanted not in ("id", "en"):
        buttons = (
            ctx.button("language.button_id", '/change_language{"language": "id"}'),
            ctx.button("language.button_en", '/change_language{"language": "en"}'),
        )
        return Step([Reply(ctx.t("language.ask"), buttons)], ctx.state)
    key = "language.already" if wanted == ctx.lang else "language.changed"
    text = ctx.texts.render(wanted, key, seed=ctx.turn)
    return Step([Reply(text)], ctx.state, language=wanted)


def _language_in(text: str) -> str | None:
    lowered = text.casefold()
    if any(word in lowered for word in ENGLISH_WORDS):
        return "en"
    if any(word in lowered for word in INDONESIAN_WORDS[:3]):
        return "id"
    return None


async def on_emergency(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Gives 112 and the configured emergency numbers at once (no questions), then offers a person.

    Ends any active flow: an emergency matters more than a half-filled form.
    """
    configured = dict(ctx.settings.get("emergency_numbers", {}))
    lines = (
        [] if EMERGENCY_NUMBER in configured.values() else [(ctx.t("emergency_112_label"), EMERGENCY_NUMBER)]
    )
    lines += sorted(configured.items(), key=lambda item: item[1] != EMERGENCY_NUMBER)
    numbers = "\n".join(f"☎️ {name}: {number}" for name, number in lines)
    staff = ctx.button("emergency_staff_button", "/talk_to_staff")
    return Step([ctx.reply("emergency", staff, numbers=numbers)], None, clear_slots=True)


async def on_talk_to_staff(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Points to the city's staffed complaint line (the console handoff replaces this)."""
    contact = ctx.settings.get("staff_contact") or ctx.settings.get("lapor_url", "")
    return Step([Reply(ctx.t("not_available", contact=contact), menu_buttons(ctx))])


async def on_unsupported(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Says politely which kinds of message the bot can read; keeps the current state."""
    return Step([ctx.reply("unsupported_content")], ctx.state)


def _say(key: str, *, with_menu: bool = False) -> Handler:
    async def start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
        reply = Reply(ctx.t(key), menu_buttons(ctx)) if with_menu else ctx.reply(key)
        return Step([reply])

    start.__doc__ = f"Answers with {key!r} (wording varies by turn); stores nothing."
    return start


def smalltalk_flows() -> list[Flow]:
    """One-turn answers that vary their wording: greeting, goodbye, thanks, bot challenge, out of scope.

    Greeting, thanks and "are you a bot?" are side answers: said in the middle of a flow, they are
    answered and the flow's question is asked again. A goodbye is answered and ends the flow (a
    complaint is kept as a draft: "lanjut" resumes it).
    """
    said = {
        "goodbye": _say("goodbye"),
        "thank_you": _say("thank_you"),
        "bot_challenge": _say("bot_challenge"),
        "out_of_scope": _say("out_of_scope", with_menu=True),
        "affirm": _say("affirm_idle", with_menu=True),
        "deny": _say("deny_idle"),
        "greet": on_greet,
    }
    return [
        Flow(
            name=f"smalltalk.{intent}",
            intents=frozenset({intent}),
            start=handler,
            side=intent in SIDE_SMALLTALK,
            leaves=intent == "goodbye",  # a farewell mid-form: no stale question after "sampai jumpa"
            title_key="flow_title.smalltalk",
        )
        for intent, handler in said.items()
    ]


def core_globals() -> Globals:
    """The engine's global handlers (work from any state) and its fallbacks."""
    return Globals(
        handlers={
            "cancel": on_cancel,
            "help": on_help,
            "talk_to_staff": on_talk_to_staff,
            "emergency": on_emergency,
            "change_language": on_change_language,
        },
        fallback=on_fallback,
        unsupported=on_unsupported,
        interjections=repair_interjections(),
    )
