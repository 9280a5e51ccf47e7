"""Permit status: the number (asked when missing), then stage, status, last update and the next step.

The number must match the configured format (``permits.number_pattern``, in ``ctx.settings`` as
``permit_pattern``); a wrong format or an unknown number is re-asked twice, then a person is offered.
A found permit is remembered as ``last_permit`` (conversation memory: "kabari saya" afterwards
follows it) and the resident is offered updates with a button handled by the subscriptions flow.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from enum import StrEnum

from flows.engine import Flow, FlowContext, Step
from flows.messages import Button, IncomingMessage, Reply
from integrations.base import IntegrationError, Permit, PermitStage
from nlu.result import ParseResult

logger = logging.getLogger(__name__)


class PermitState(StrEnum):
    """Where the permit dialogue stands."""

    ASK_NUMBER = "permit_status.ask_number"


INTENT = "permit_status"
LAST_PERMIT = "last_permit"
MISSES_SLOT = "permit_status.misses"
MAX_MISSES = 2
DEFAULT_PERMIT_PATTERN = r"[A-Z]{2,6}-\d{4}-\d{3,6}"
STAFF_PAYLOAD = "/talk_to_staff"
KNOWN_TYPES = frozenset({"pbg", "slf", "nib", "izin_reklame"})
# Separators residents type instead of the dash ("PBG 2026 00123", "PBG/2026/00123").
_SEPARATORS = re.compile(r"\s*[\s/_.–—-]\s*")
_CANDIDATE = re.compile(r"[A-Za-z]{2,6}\s*[\s/_.–—-]\s*\d{4}\s*[\s/_.–—-]\s*\d{1,8}")


class StageStatus(StrEnum):
    """Who has to act on a permit at its stage (the plain-words status shown beside the stage)."""

    IN_PROGRESS = "status_in_progress"
    WAITING_YOU = "status_waiting_you"
    DONE = "status_done"
    REJECTED = "status_rejected"


STATUS_OF_STAGE = {
    PermitStage.RECEIVED: StageStatus.IN_PROGRESS,
    PermitStage.DOCUMENT_CHECK: StageStatus.IN_PROGRESS,
    PermitStage.FIELD_SURVEY: StageStatus.IN_PROGRESS,
    PermitStage.AWAITING_PAYMENT: StageStatus.WAITING_YOU,
    PermitStage.APPROVED: StageStatus.IN_PROGRESS,
    PermitStage.REJECTED: StageStatus.REJECTED,
    PermitStage.COMPLETED: StageStatus.DONE,
}


async def on_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Looks up the permit named in the message; else asks for its number (offering the last one)."""
    number = permit_number_in(ctx, msg, nlu)
    if number is not None:
        return await _look_up(ctx, number)
    return Step(prompt_ask_number(ctx), PermitState.ASK_NUMBER, {MISSES_SLOT: None})


async def on_ask_number(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes a permit number and looks it up; a wrong format is re-asked twice, then a person offered."""
    number = permit_number_in(ctx, msg, nlu)
    if number is not None:
        return await _look_up(ctx, number)
    return _miss(ctx, [], [ctx.reply("permits.ask_number_again")])


def prompt_ask_number(ctx: FlowContext) -> list[Reply]:
    """The pending "which permit number?" question (with the last permit discussed as a button)."""
    last = ctx.slots.get(LAST_PERMIT)
    buttons: tuple[Button, ...] = ()
    if isinstance(last, str) and last:
        buttons = (Button(ctx.t("permits.button_last", number=last), _check_payload(last)),)
    return [Reply(ctx.t("permits.ask_number"), buttons)]


async def _look_up(ctx: FlowContext, number: str) -> Step:
    """Asks the licensing system; shows the permit, says it is unknown (re-ask), or that it is down."""
    try:
        permit = await ctx.services.permits.get(number)
    except IntegrationError:
        logger.warning("permit back end unavailable for a status check", exc_info=True)
        return Step([ctx.reply("backend.permits_down")], None, {MISSES_SLOT: None})
    if permit is None:
        return _miss(ctx, [ctx.reply("permits.not_found", number=number)], prompt_ask_number(ctx))
    return Step(permit_replies(ctx, permit), None, {MISSES_SLOT: None, LAST_PERMIT: permit.number})


def _miss(ctx: FlowContext, lead: list[Reply], reask: list[Reply]) -> Step:
    """One more failed attempt: ``lead`` then the re-ask (twice), then a person is offered instead."""
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0) + 1
    if misses > MAX_MISSES:
        staff = ctx.button("menu.staff", STAFF_PAYLOAD)
        return Step([*lead, ctx.reply("permits.give_up", staff)], None, {MISSES_SLOT: None})
    return Step([*lead, *reask], PermitState.ASK_NUMBER, {MISSES_SLOT: misses}, missed=True)


def permit_replies(ctx: FlowContext, permit: Permit) -> list[Reply]:
    """The status card (stage, status, last update, office note, next step) and the updates offer."""
    lines = [
        ctx.t(
            "permits.status",
            type=_type_label(ctx, permit.permit_type),
            number=permit.number,
            stage=ctx.t(f"permits.stage.{permit.stage.value}"),
            status=ctx.t(f"permits.{STATUS_OF_STAGE[permit.stage].value}"),
            updated=format_moment(ctx, permit.updated_at),
        )
    ]
    if permit.note and permit.stage is not PermitStage.REJECTED:
        lines.append(ctx.t("permits.note", note=permit.note))
    lines.append(ctx.t("permits.next_step", step=_next_step(ctx, permit)))
    buttons = (
        ctx.button("permits.button_subscribe", f'/subscribe_updates{{"permit_number": "{permit.number}"}}'),
        ctx.button("permits.button_other", f"/{INTENT}"),
    )
    return [Reply("\n\n".join(lines)), Reply(ctx.t("permits.offer_subscribe"), buttons)]


def _next_step(ctx: FlowContext, permit: Permit) -> str:
    """What happens next at this stage, in plain words (a rejection gives the office's reason)."""
    if permit.stage is PermitStage.REJECTED:
        reason = (permit.note or "").strip() or ctx.t("permits.no_reason")
        return ctx.t("permits.step.ditolak", reason=reason)
    return ctx.t(f"permits.step.{permit.stage.value}")


def _type_label(ctx: FlowContext, permit_type: str) -> str:
    key = permit_type if permit_type in KNOWN_TYPES else "other"
    return ctx.t(f"permits.type.{key}")


def format_moment(ctx: FlowContext, moment: datetime) -> str:
    """A moment as residents read it, in WIB: "Senin, 12 Januari 2026 pukul 14.30 WIB"."""
    local = moment.astimezone(ctx.services.now().tzinfo)
    return ctx.t("permits.at", date=format_date(ctx, local), time=f"{local.hour:02d}.{local.minute:02d}")


def format_date(ctx: FlowContext, moment: datetime) -> str:
    """A date in the resident's language, in WIB: "Senin, 12 Januari 2026"."""
    local = moment.astimezone(ctx.services.now().tzinfo)
    day = ctx.t("permits.days").split(",")[local.weekday()]
    month = ctx.t("permits.months").split(",")[local.month - 1]
    return f"{day}, {local.day} {month} {local.year}"


def permit_number_in(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> str | None:
    """A permit number in the configured format: the NLU entity, else one found in the typed text."""
    pattern = re.compile(str(ctx.settings.get("permit_pattern") or DEFAULT_PERMIT_PATTERN))
    candidates = [nlu.entity("permit_number") or "", *_CANDIDATE.findall(msg.text or "")]
    for candidate in candidates:
        normalised = _SEPARATORS.sub("-", candidate.strip().upper())
        if normalised and pattern.fullmatch(normalised) and not normalised.startswith("ADU-"):
            return normalised
    return None


def _check_payload(number: str) -> str:
    return f'/{INTENT}{{"permit_number": "{number}"}}'


def permit_status_flow() -> Flow:
    """The permit status journey (ticket numbers and other intents interrupt it as usual)."""
    return Flow(
        name="permit_status",
        intents=frozenset({INTENT}),
        start=on_start,
        handlers={PermitState.ASK_NUMBER: on_ask_number},
        prompts={PermitState.ASK_NUMBER: prompt_ask_number},
        title_key="flow_title.permit_status",
    )
