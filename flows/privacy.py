"""Residents' rights under UU No. 27/2022: "data saya" shows what is stored, "hapus data saya" erases it.

Neither is an NLU intent (DESIGN 3.1 is a contract, and a right must not depend on a classifier's
guess): both are engine **commands** (``Flow.command``), matched before any other routing on

* a button or command payload: ``/erase_data`` (Telegram ``/hapusdata``), ``/my_data`` (``/datasaya``);
* a deterministic phrase rule over the normalised text (lower case, punctuation dropped, a polite
  word before or after allowed): "hapus data saya", "hapus akun", "delete my data", "data saya",
  "my data" … A message must be only that request: "data saya di KTP salah" is no command.

Erasure asks first (buttons yes/no; anything but yes keeps the data) and then, in the same turn's
transaction, deletes the transcript, subscriptions and queued messages and anonymises the rest
(``storage.privacy_repository.erase_resident``). Complaints keep the case (ticket, category,
location, status history) without the reporter link, NIK/phones in their text masked.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum

from flows.engine import ANY_INTENT, NO_PAYLOAD, YES_PAYLOAD, Flow, FlowContext, Step
from flows.messages import IncomingMessage, Reply
from integrations.base import reporter_ref
from nlu.result import ParseResult
from storage import privacy_repository as privacy_repo
from storage.masking import mask_personal

logger = logging.getLogger(__name__)

ERASE_PAYLOAD = "/erase_data"
MY_DATA_PAYLOAD = "/my_data"
DEFAULT_RETENTION_DAYS = 180
AFFIRM_INTENT = "affirm"

_POLITE = r"(?:tolong|mohon|minta|please|pls|min|kak|pak|bu|bang|mas|mbak|dong|ya|yah|sekarang|now|aja|saja)"
_MINE = r"(?:saya|aku|ku|gue|gw|sy|me)"
_ERASE_CORE = (
    r"(?:hapus(?:kan)?|delete|erase|remove)\s+(?:semua\s+|all\s+(?:of\s+)?)?(?:my\s+)?"
    rf"(?:data|akun|account)(?:\s+(?:pribadi\s+)?{_MINE})?"
    r"|hapusdata|erasedata|deletemydata"
)
_MY_DATA_CORE = (
    rf"(?:(?:lihat|cek|tampilkan|tunjukkan|show|see)\s+)?(?:(?:my\s+)?data\s+(?:pribadi\s+)?{_MINE}|my\s+data)"
    r"|datasaya|mydata|what\s+data\s+do\s+you\s+(?:have|store|keep)(?:\s+(?:about|on)\s+me)?"
)
ERASE_PHRASE = re.compile(rf"^(?:{_POLITE}\s+)*(?:{_ERASE_CORE})(?:\s+{_POLITE})*$")
MY_DATA_PHRASE = re.compile(rf"^(?:{_POLITE}\s+)*(?:{_MY_DATA_CORE})(?:\s+{_POLITE})*$")
_NOT_WORD = re.compile(r"[^\w]+")


class PrivacyState(StrEnum):
    """Where the erasure dialogue stands."""

    CONFIRM_ERASE = "privacy.confirm_erase"


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, whitespace collapsed: "/Hapus-data!" → "hapus data"."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("_", " ")).split())


def _payload_is(msg: IncomingMessage, payload: str) -> bool:
    return msg.payload is not None and msg.payload.split("{", 1)[0].strip() == payload


def asks_erasure(msg: IncomingMessage) -> bool:
    """True for ``/erase_data`` or a message that is only "hapus data saya" (or a variant)."""
    if _payload_is(msg, ERASE_PAYLOAD):
        return True
    return msg.payload is None and bool(msg.text) and bool(ERASE_PHRASE.match(normalise(msg.text or "")))


def asks_my_data(msg: IncomingMessage) -> bool:
    """True for ``/my_data`` or a message that is only "data saya" (or a variant)."""
    if _payload_is(msg, MY_DATA_PAYLOAD):
        return True
    return msg.payload is None and bool(msg.text) and bool(MY_DATA_PHRASE.match(normalise(msg.text or "")))


def _retention_days(ctx: FlowContext) -> int:
    return int(ctx.settings.get("retention_days", DEFAULT_RETENTION_DAYS))


async def on_erase_request(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores nothing yet; asks the resident to confirm erasing their data (yes/no buttons)."""
    return Step([_ask_erase(ctx)], PrivacyState.CONFIRM_ERASE)


def _ask_erase(ctx: FlowContext) -> Reply:
    yes = ctx.button("privacy.erase_yes", YES_PAYLOAD)
    no = ctx.button("privacy.erase_no", NO_PAYLOAD)
    return ctx.reply("privacy.erase_ask", yes, no)


def prompt_confirm_erase(ctx: FlowContext) -> list[Reply]:
    """The pending "really erase?" question."""
    return [_ask_erase(ctx)]


async def on_confirm_erase(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Yes: erases the resident's data and says so; anything else keeps it and resumes what was open."""
    if nlu.intent_name != AFFIRM_INTENT:
        return Step([ctx.reply("privacy.erase_kept")])
    erasure = await privacy_repo.erase_resident(
        ctx.services.session,
        resident_id=ctx.resident.id,
        reporter=reporter_ref(ctx.resident.id),
        mask=mask_personal,
        at=ctx.services.now(),
    )
    logger.info(
        "resident erased on request: %d messages, %d subscriptions, %d queued, %d complaints anonymised",
        erasure.messages,
        erasure.subscriptions,
        erasure.outbox,
        erasure.complaints,
    )
    return Step([ctx.reply("privacy.erased")], None, clear_slots=True)


async def on_my_data(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores nothing; shows what is stored about the resident and how long, with an erase button."""
    stored = await privacy_repo.stored_data(
        ctx.services.session, resident_id=ctx.resident.id, reporter=reporter_ref(ctx.resident.id)
    )
    nothing = ctx.t("privacy.nothing")
    if stored is None:
        return Step([ctx.reply("privacy.no_data")])
    subscriptions = ", ".join(_subscription(ctx, topic, ref) for topic, ref in stored.subscriptions)
    complaints = ", ".join(
        f"{c.ref} ({ctx.t(f'privacy.status_{c.status}') if _known_status(ctx, c.status) else c.status})"
        for c in stored.complaints
    )
    tz = ctx.services.now().tzinfo
    consent = (
        ctx.t("privacy.consent_given", date=stored.consent_at.astimezone(tz).date().isoformat())
        if stored.consent_at is not None
        else ctx.t("privacy.consent_none")
    )
    erase = ctx.button("privacy.button_erase", ERASE_PAYLOAD)
    reply = ctx.reply(
        "privacy.my_data",
        erase,
        channel=ctx.t(f"privacy.channel_{stored.channel}"),
        language=ctx.t(f"privacy.language_{ctx.lang}"),
        source=stored.source or nothing,
        consent=consent,
        since=stored.created_at.astimezone(tz).date().isoformat(),
        subscriptions=subscriptions or nothing,
        complaints=complaints or nothing,
        messages=stored.messages,
        days=_retention_days(ctx),
    )
    return Step([reply])


def _subscription(ctx: FlowContext, topic: str, ref: str) -> str:
    if topic == "announcements":
        return ctx.t("privacy.sub_announcements")
    return f"{ref}"


def _known_status(ctx: FlowContext, status: str) -> bool:
    return f"privacy.status_{status}" in ctx.texts.keys(ctx.lang)


def privacy_flows() -> list[Flow]:
    """The two rights as command flows: erase (with its confirmation) and "data saya"."""
    return [
        Flow(
            name="erase_data",
            intents=frozenset(),
            start=on_erase_request,
            handlers={PrivacyState.CONFIRM_ERASE: on_confirm_erase},
            prompts={PrivacyState.CONFIRM_ERASE: prompt_confirm_erase},
            accepts={PrivacyState.CONFIRM_ERASE: frozenset({ANY_INTENT})},
            side=True,
            title_key="flow_title.erase_data",
            command=asks_erasure,
        ),
        Flow(
            name="my_data",
            intents=frozenset(),
            start=on_my_data,
            side=True,
            title_key="flow_title.my_data",
            command=asks_my_data,
        ),
    ]
