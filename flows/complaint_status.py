"""Complaint status: by ticket number, or "laporan saya" lists the resident's own complaints.

Privacy (UU 27/2022): a complaint's details (description, place, photos, office notes) are shown only
to the resident who filed it. Anyone else who types its ticket learns that it exists and its status,
nothing more: a ticket number is printed on notices and shared between neighbours, and "is it being
handled?" is public-service information, while what a resident wrote and where they stood is theirs.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum

from flows.complaint import category_name
from flows.complaint_text import describe_location
from flows.engine import Flow, FlowContext, Step
from flows.messages import Button, IncomingMessage, Reply
from flows.permit_status import format_date, format_moment
from integrations.base import Complaint, IntegrationError, reporter_ref
from nlu.result import ParseResult

logger = logging.getLogger(__name__)


class ComplaintStatusState(StrEnum):
    """Where the complaint status dialogue stands."""

    ASK_TICKET = "complaint_status.ask_ticket"


INTENT = "complaint_status"
LAST_TICKET = "last_ticket"
MISSES_SLOT = "complaint_status.misses"
MAX_MISSES = 2
MAX_LISTED = 5
MAX_DESCRIPTION = 200
STAFF_PAYLOAD = "/talk_to_staff"
# ADU-2026-000123 as typed ("adu 2026 000123", "ADU/2026/000123"), or a pending report's REF-XXXXXXXX.
_TICKET = re.compile(r"(?<![A-Za-z0-9])ADU\s*[-/ ]\s*(\d{4})\s*[-/ ]\s*(\d{6})(?!\d)", re.IGNORECASE)
_LOCAL_REF = re.compile(r"(?<![A-Za-z0-9])REF-[2-9A-HJKMNP-Z]{8}(?![A-Za-z0-9])", re.IGNORECASE)


async def on_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Shows the named complaint; else lists the resident's own and asks which (or for a number)."""
    ticket = ticket_in(msg, nlu)
    if ticket is not None:
        return await _show(ctx, ticket)
    try:
        mine = await ctx.services.complaints.for_reporter(reporter_ref(ctx.resident.id), limit=MAX_LISTED)
    except IntegrationError:
        logger.warning("complaint back end unavailable while listing a resident's complaints", exc_info=True)
        return Step([ctx.reply("backend.complaints_down")], None, {MISSES_SLOT: None})
    if not mine:
        new = ctx.button("complaints.button_new_complaint", "/file_complaint")
        return Step(
            [ctx.reply("complaints.mine_none", new)], ComplaintStatusState.ASK_TICKET, {MISSES_SLOT: None}
        )
    lines = [ctx.t("complaints.mine_intro")]
    lines += [
        ctx.t(
            "complaints.mine_line",
            ticket=c.ticket,
            category=category_name(ctx, c.category),
            status=ctx.t(f"complaints.status.{c.status.value}"),
            date=format_date(ctx, c.created_at),
        )
        for c in mine
    ]
    buttons = tuple(Button(c.ticket, _payload(c.ticket)) for c in mine)
    replies = [Reply("\n".join(lines)), Reply(ctx.t("complaints.mine_pick"), buttons)]
    return Step(replies, ComplaintStatusState.ASK_TICKET, {MISSES_SLOT: None})


async def on_ask_ticket(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes a ticket number (typed or a button); re-asks twice, then offers a person."""
    ticket = ticket_in(msg, nlu)
    if ticket is not None:
        return await _show(ctx, ticket)
    return _miss(ctx, [], [ctx.reply("complaints.ask_ticket_again")])


def prompt_ask_ticket(ctx: FlowContext) -> list[Reply]:
    """The pending "which report number?" question."""
    return [ctx.reply("complaints.ask_ticket")]


async def _show(ctx: FlowContext, ticket: str) -> Step:
    """The complaint's details for its reporter; only existence and status for anyone else."""
    try:
        complaint = await ctx.services.complaints.get(ticket)
    except IntegrationError:
        logger.warning("complaint back end unavailable for a status check", exc_info=True)
        return Step([ctx.reply("backend.complaints_down")], None, {MISSES_SLOT: None})
    if complaint is None:
        return _miss(ctx, [ctx.reply("complaints.ticket_not_found", ticket=ticket)], prompt_ask_ticket(ctx))
    status = ctx.t(f"complaints.status.{complaint.status.value}")
    if complaint.reporter != reporter_ref(ctx.resident.id):
        reply = ctx.reply("complaints.other_resident", ticket=complaint.ticket, status=status)
        return Step([reply], None, {MISSES_SLOT: None})
    return Step(
        [Reply(detail_text(ctx, complaint))], None, {MISSES_SLOT: None, LAST_TICKET: complaint.ticket}
    )


def detail_text(ctx: FlowContext, complaint: Complaint) -> str:
    """Everything the reporter may see of their complaint."""
    description = complaint.description
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1].rstrip() + "…"
    lines = [
        ctx.t(
            "complaints.detail",
            ticket=complaint.ticket,
            category=category_name(ctx, complaint.category),
            status=ctx.t(f"complaints.status.{complaint.status.value}"),
            description=description,
            location=describe_location(
                ctx, complaint.lat, complaint.lon, complaint.address, complaint.kelurahan_code
            ),
            created=format_moment(ctx, complaint.created_at),
            updated=format_moment(ctx, complaint.updated_at),
        )
    ]
    if complaint.agency:
        lines.append(ctx.t("complaints.detail_agency", agency=complaint.agency))
    if complaint.due_at is not None and complaint.status.is_open:
        lines.append(ctx.t("complaints.detail_due", due=format_date(ctx, complaint.due_at)))
    if complaint.note:
        lines.append(ctx.t("complaints.detail_note", note=complaint.note))
    if complaint.supporters:
        lines.append(ctx.t("complaints.detail_supporters", supporters=complaint.supporters))
    return "\n".join(lines)


def _miss(ctx: FlowContext, lead: list[Reply], reask: list[Reply]) -> Step:
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0) + 1
    if misses > MAX_MISSES:
        staff = ctx.button("menu.staff", STAFF_PAYLOAD)
        return Step([*lead, ctx.reply("complaints.give_up", staff)], None, {MISSES_SLOT: None})
    return Step([*lead, *reask], ComplaintStatusState.ASK_TICKET, {MISSES_SLOT: misses}, missed=True)


def ticket_in(msg: IncomingMessage, nlu: ParseResult) -> str | None:
    """The ticket (or pending reference) named by a button entity or in the typed text."""
    for candidate in (nlu.entity("ticket_number") or "", msg.text or ""):
        match = _TICKET.search(candidate)
        if match:
            return f"ADU-{match.group(1)}-{match.group(2)}"
        local = _LOCAL_REF.search(candidate)
        if local:
            return local.group(0).upper()
    entity = nlu.entity("ticket_number")
    return entity.strip() if entity and entity.strip() else None


def _payload(ticket: str) -> str:
    return f'/{INTENT}{{"ticket_number": "{ticket}"}}'


def complaint_status_flow() -> Flow:
    """The complaint status journey."""
    return Flow(
        name="complaint_status",
        intents=frozenset({INTENT}),
        start=on_start,
        handlers={ComplaintStatusState.ASK_TICKET: on_ask_ticket},
        prompts={ComplaintStatusState.ASK_TICKET: prompt_ask_ticket},
        title_key="flow_title.complaint_status",
    )
