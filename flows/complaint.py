"""Complaint filing: category, description, location in Kota Pontianak, optional photo, summary, ticket.

The draft lives in slots under ``complaint.`` and every answer moves to the first piece still missing
(category → description → location → photo → summary), so a first message that already says what
is wrong ("jalan berlubang di jl. tanjungpura depan SD 14") skips the questions it answers, and
"Ubah" in the summary clears one piece and comes back to the summary.

Location: a shared pin must lie inside Kota Pontianak (:data:`CITY_BOUNDS`); a typed kelurahan or
kecamatan is resolved to its Kemendagri code; a typed street without one is kept as the address and
the kelurahan is asked next. A pin is checked for an open complaint of the same category within
``duplicate_radius_m`` (settings); the resident may support that one instead (only its ticket,
status, distance and supporter count are shown: never another resident's description or photo).

Filing goes through the complaint desk, which stores the report before the bot says so: the
resident gets the ticket (ADU-YYYY-NNNNNN) and the handling time in working days, or, while the back
end is down, the local reference (``backend.complaint_pending``) and the ticket later by push. Either
way the resident is subscribed to the complaint's updates and it becomes ``last_ticket``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from flows.complaint_text import (
    CITY_BOUNDS,
    SEND_WORDS,
    SKIP_WORDS,
    WORD,
    address_around_place,
    clean_text,
    describe_location,
    describes_problem,
    long_enough,
    looks_like_address,
    names_outside,
    place_code,
    places,
)
from flows.engine import Flow, FlowContext, Step, apply_slots
from flows.messages import Button, IncomingMessage, Reply
from flows.permit_status import format_date
from integrations.base import (
    Complaint,
    ComplaintReport,
    IntegrationError,
    new_local_ref,
    reporter_ref,
)
from integrations.geo import haversine_m
from integrations.sla import is_working_day
from nlu.entities import COMPLAINT_CATEGORIES
from nlu.result import ParseResult
from storage import repositories as repo

logger = logging.getLogger(__name__)


class ComplaintState(StrEnum):
    """Where the complaint dialogue stands."""

    ASK_CATEGORY = "complaint.ask_category"
    ASK_DESCRIPTION = "complaint.ask_description"
    ASK_LOCATION = "complaint.ask_location"
    ASK_KELURAHAN = "complaint.ask_kelurahan"
    OFFER_SUPPORT = "complaint.offer_support"
    ASK_PHOTO = "complaint.ask_photo"
    CONFIRM = "complaint.confirm"
    ASK_EDIT = "complaint.ask_edit"


class Choice(StrEnum):
    """Button choices inside the flow (payload ``/file_complaint{"choice": "..."}``)."""

    SKIP_PHOTO = "skip_photo"
    SEND = "send"
    EDIT = "edit"
    SUPPORT = "support"
    NEW = "new"
    EDIT_CATEGORY = "edit_category"
    EDIT_DESCRIPTION = "edit_description"
    EDIT_LOCATION = "edit_location"
    EDIT_PHOTO = "edit_photo"


INTENT = "file_complaint"
STATUS_INTENT = "complaint_status"
STAFF_PAYLOAD = "/talk_to_staff"
CHOICE_ENTITY = "choice"
MAX_PHOTOS = 3
MAX_MISSES = 2
CLEAR_CONFIDENCE = 0.6  # a typed yes/no files or supports a complaint only when the NLU is this sure
DEFAULT_DUPLICATE_RADIUS_M = 200.0
LAST_TICKET = "last_ticket"

CATEGORY = "complaint.category"
DESCRIPTION = "complaint.description"
LAT = "complaint.lat"
LON = "complaint.lon"
ADDRESS = "complaint.address"
KELURAHAN = "complaint.kelurahan"
MEDIA = "complaint.media"
PHOTO_DONE = "complaint.photo_done"
REF = "complaint.ref"
MISSES = "complaint.misses"
DUPLICATE = "complaint.duplicate"
DECLINED = "complaint.declined"
DRAFT_SLOTS = (CATEGORY, DESCRIPTION, LAT, LON, ADDRESS, KELURAHAN, MEDIA, PHOTO_DONE, REF, MISSES)
ALL_SLOTS = (*DRAFT_SLOTS, DUPLICATE, DECLINED)
LOCATION_SLOTS = (LAT, LON, ADDRESS, KELURAHAN)


@dataclass(frozen=True, slots=True)
class Draft:
    """The complaint being written, read from the slots."""

    category: str | None
    description: str | None
    lat: float | None
    lon: float | None
    address: str | None
    kelurahan: str | None
    media: tuple[str, ...]
    photo_done: bool

    @classmethod
    def of(cls, slots: Mapping[str, Any]) -> Draft:
        """The draft in ``slots``."""
        lat, lon = slots.get(LAT), slots.get(LON)
        media = slots.get(MEDIA)
        return cls(
            category=_str(slots.get(CATEGORY)),
            description=_str(slots.get(DESCRIPTION)),
            lat=float(lat) if isinstance(lat, int | float) else None,
            lon=float(lon) if isinstance(lon, int | float) else None,
            address=_str(slots.get(ADDRESS)),
            kelurahan=_str(slots.get(KELURAHAN)),
            media=tuple(str(k) for k in media) if isinstance(media, list) else (),
            photo_done=bool(slots.get(PHOTO_DONE)),
        )

    @property
    def has_pin(self) -> bool:
        """True when a map pin was shared."""
        return self.lat is not None and self.lon is not None

    @property
    def has_location(self) -> bool:
        """True when the place is known well enough to file: a pin or a kelurahan/kecamatan."""
        return self.has_pin or self.kelurahan is not None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- handlers ----------------------------------------------------------------------------------


async def on_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Starts a fresh draft with what the first message says (category, description, photo), asks the rest."""
    changes: dict[str, Any] = {key: None for key in ALL_SLOTS}
    category = _category_in(nlu)
    if category is not None:
        changes[CATEGORY] = category
    if not msg.payload and msg.text and describes_problem(msg.text):
        changes[DESCRIPTION] = clean_text(msg.text)
    changes.update(_photo_changes(ctx, msg))
    return _advance(ctx, changes)


async def on_ask_category(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores the category (button or words); a description typed instead is kept, the category re-asked."""
    changes = _photo_changes(ctx, msg)
    category = _category_in(nlu)
    if category is not None:
        changes[CATEGORY] = category
        if not ctx.slots.get(DESCRIPTION) and msg.text and not msg.payload and describes_problem(msg.text):
            changes[DESCRIPTION] = clean_text(msg.text)
        return _advance(ctx, changes)
    if msg.text and not msg.payload and describes_problem(msg.text) and not ctx.slots.get(DESCRIPTION):
        changes[DESCRIPTION] = clean_text(msg.text)
    return _miss(
        ctx, changes, ComplaintState.ASK_CATEGORY, [_category_reply(ctx, "complaints.ask_category_again")]
    )


async def on_ask_description(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores the description when it says enough; a photo is kept and the description asked again."""
    changes = _photo_changes(ctx, msg)
    text = (msg.text or "").strip()
    if text and not msg.payload and long_enough(text):
        changes[DESCRIPTION] = clean_text(text)
        return _advance(ctx, changes)
    lead = [ctx.reply("complaints.photo_received")] if changes else []
    if changes and not text:
        return _advance(ctx, changes, lead=lead)
    return _miss(
        ctx,
        changes,
        ComplaintState.ASK_DESCRIPTION,
        [ctx.reply("complaints.ask_description_again")],
        attempt=bool(text),
    )


async def on_ask_location(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes a pin inside the city (then looks for a nearby duplicate), a kelurahan, or an address."""
    changes = _photo_changes(ctx, msg)
    if msg.location is not None:
        return await _pin(ctx, msg, changes)
    text = (msg.text or "").strip()
    code = place_code(nlu, text)
    if code is not None:
        changes.update({LAT: None, LON: None, ADDRESS: address_around_place(nlu, text), KELURAHAN: code})
        return _advance(ctx, changes)
    if text and names_outside(text):
        return _outside(ctx, changes, ComplaintState.ASK_LOCATION)
    if text and looks_like_address(text):
        changes.update({LAT: None, LON: None, ADDRESS: clean_text(text), KELURAHAN: None})
        return _advance(ctx, changes)
    if changes and not text:
        return _advance(ctx, changes, lead=[ctx.reply("complaints.photo_received")])
    return _miss(
        ctx, changes, ComplaintState.ASK_LOCATION, [_location_reply(ctx, "complaints.ask_location_again")]
    )


async def on_ask_kelurahan(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Completes a typed address with its kelurahan/kecamatan (or takes a pin instead)."""
    changes = _photo_changes(ctx, msg)
    if msg.location is not None:
        return await _pin(ctx, msg, changes)
    text = (msg.text or "").strip()
    code = place_code(nlu, text)
    if code is not None:
        changes[KELURAHAN] = code
        return _advance(ctx, changes)
    if text and names_outside(text):
        return _outside(ctx, changes, ComplaintState.ASK_KELURAHAN)
    if changes and not text:
        return _advance(ctx, changes, lead=[ctx.reply("complaints.photo_received")])
    merged = apply_slots(ctx.slots, Step((), slots=changes))
    return _miss(ctx, changes, ComplaintState.ASK_KELURAHAN, _ask_kelurahan(_in(ctx, merged)))


async def on_offer_support(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Adds the resident to the nearby complaint (and ends), or continues with a new report."""
    ticket = _str(ctx.slots.get(DUPLICATE))
    choice = _choice(nlu)
    if ticket is None:
        return _advance(ctx, {DUPLICATE: None})
    if choice is Choice.SUPPORT or (choice is None and _clearly(nlu, "affirm")):
        return await _support(ctx, ticket)
    if choice is Choice.NEW or (choice is None and _clearly(nlu, "deny")):
        declined = [*_declined(ctx.slots), ticket]
        return _advance(ctx, {DUPLICATE: None, DECLINED: declined})
    return Step(
        [_support_buttons(ctx, ctx.t("complaints.duplicate_again"))],
        ComplaintState.OFFER_SUPPORT,
        missed=True,
    )


async def on_ask_photo(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Stores a photo, or notes that there is none ("lewati"); anything else re-asks."""
    changes = _photo_changes(ctx, msg)
    if changes:
        changes[PHOTO_DONE] = True
        return _advance(ctx, changes, lead=[ctx.reply("complaints.photo_received")])
    if _choice(nlu) is Choice.SKIP_PHOTO or _clearly(nlu, "deny") or _said(msg, SKIP_WORDS):
        return _advance(ctx, {PHOTO_DONE: True})
    return _miss(ctx, {}, ComplaintState.ASK_PHOTO, [_photo_reply(ctx, "complaints.ask_photo_again")])


async def on_confirm(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Files the report on "Kirim"; "Ubah" asks what to change; a late photo is added to the summary."""
    choice = _choice(nlu)
    changes = _photo_changes(ctx, msg)
    if changes:
        return _advance(ctx, changes, lead=[ctx.reply("complaints.photo_received")])
    if choice is Choice.SEND or (choice is None and _clearly(nlu, "affirm")) or _said(msg, SEND_WORDS):
        return await _file(ctx)
    if choice is Choice.EDIT or (choice is None and _clearly(nlu, "deny")):
        return Step(prompt_ask_edit(ctx), ComplaintState.ASK_EDIT)
    return Step([_confirm_reply(ctx, ctx.t("complaints.confirm_again"))], ComplaintState.CONFIRM, missed=True)


async def on_ask_edit(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Clears the chosen part of the draft and asks it again (then back to the summary)."""
    choice = _choice(nlu)
    cleared: dict[Choice, dict[str, Any]] = {
        Choice.EDIT_CATEGORY: {CATEGORY: None},
        Choice.EDIT_DESCRIPTION: {DESCRIPTION: None},
        Choice.EDIT_LOCATION: {key: None for key in LOCATION_SLOTS},
        Choice.EDIT_PHOTO: {MEDIA: None, PHOTO_DONE: None},
    }
    if choice in cleared:
        return _advance(ctx, cleared[choice])
    category = _category_in(nlu)
    if category is not None:
        return _advance(ctx, {CATEGORY: category})
    if choice is Choice.SEND or _clearly(nlu, "affirm"):
        return await _file(ctx)
    return Step(prompt_ask_edit(ctx), ComplaintState.ASK_EDIT, missed=True)


# -- moving on ----------------------------------------------------------------------------------


def _advance(ctx: FlowContext, changes: Mapping[str, Any], *, lead: Sequence[Reply] = ()) -> Step:
    """Applies ``changes`` and asks for the first missing piece, or shows the summary."""
    changes = {**changes, MISSES: None}
    merged = apply_slots(ctx.slots, Step((), slots=changes))
    draft = Draft.of(merged)
    if draft.has_location or draft.address is None:
        state = _next_state(draft)
    else:
        state = ComplaintState.ASK_KELURAHAN
    if state is ComplaintState.CONFIRM and not merged.get(REF):
        changes[REF] = new_local_ref()
        merged[REF] = changes[REF]
    replies = PROMPTS[state](_in(ctx, merged, state))
    return Step([*lead, *replies], state, changes)


def _next_state(draft: Draft) -> ComplaintState:
    if draft.category is None:
        return ComplaintState.ASK_CATEGORY
    if draft.description is None:
        return ComplaintState.ASK_DESCRIPTION
    if not draft.has_location:
        return ComplaintState.ASK_LOCATION
    if not draft.media and not draft.photo_done:
        return ComplaintState.ASK_PHOTO
    return ComplaintState.CONFIRM


def _miss(
    ctx: FlowContext,
    changes: Mapping[str, Any],
    state: ComplaintState,
    replies: list[Reply],
    *,
    attempt: bool = False,
) -> Step:
    """A wrong answer: re-ask helpfully; from the third miss on, a person is offered beside the question.

    ``attempt``: the message did try to answer (a description too short, a place outside the city),
    so it does not count towards leaving the flow (``Step.missed``)."""
    misses = int(ctx.slots.get(MISSES, 0) or 0) + 1
    if misses > MAX_MISSES:
        replies = [*replies, ctx.reply("complaints.more_help", ctx.button("menu.staff", STAFF_PAYLOAD))]
    return Step(replies, state, {**changes, MISSES: misses}, missed=not attempt)


def _in(ctx: FlowContext, slots: Mapping[str, Any], state: str | None = None) -> FlowContext:
    return ctx.with_changes(state=state or ctx.state, slots=slots)


async def _pin(ctx: FlowContext, msg: IncomingMessage, changes: dict[str, Any]) -> Step:
    """A shared pin: refused outside the city; else stored and checked for a nearby open complaint."""
    assert msg.location is not None
    lat, lon = msg.location.lat, msg.location.lon
    state = ComplaintState(ctx.state) if ctx.state in set(ComplaintState) else ComplaintState.ASK_LOCATION
    if not CITY_BOUNDS.contains(lat, lon):
        return _outside(ctx, changes, state)
    address = msg.location.address or msg.location.label or _str(ctx.slots.get(ADDRESS))
    changes.update({LAT: lat, LON: lon, ADDRESS: address, KELURAHAN: None})
    category = _str(ctx.slots.get(CATEGORY))
    nearby = await _nearby(ctx, category, lat, lon) if category else None
    if nearby is None:
        return _advance(ctx, changes)
    changes.update({DUPLICATE: nearby.ticket, MISSES: None})
    distance = haversine_m(lat, lon, nearby.lat or lat, nearby.lon or lon)
    text = ctx.t(
        "complaints.duplicate_found",
        category=category_name(ctx, nearby.category),
        distance=max(10, int(round(distance / 10.0) * 10)),
        ticket=nearby.ticket,
        status=ctx.t(f"complaints.status.{nearby.status.value}"),
        supporters=nearby.supporters + 1,
    )
    return Step([_support_buttons(ctx, text)], ComplaintState.OFFER_SUPPORT, changes)


async def _nearby(ctx: FlowContext, category: str, lat: float, lon: float) -> Complaint | None:
    """The nearest open complaint of ``category`` within the duplicate radius (not one declined before)."""
    radius = float(ctx.settings.get("duplicate_radius_m", DEFAULT_DUPLICATE_RADIUS_M))
    if radius <= 0:
        return None
    try:
        found = await ctx.services.complaints.nearby(category=category, lat=lat, lon=lon, radius_m=radius)
    except IntegrationError:
        logger.warning("nearby complaint search failed; filing without the duplicate check", exc_info=True)
        return None
    declined = set(_declined(ctx.slots))
    for complaint in found:
        if complaint.ticket not in declined and complaint.status.is_open:
            return complaint
    return None


async def _support(ctx: FlowContext, ticket: str) -> Step:
    """Counts the resident in on an existing complaint, subscribes them to it, and ends the flow."""
    try:
        complaint = await ctx.services.complaints.add_supporter(ticket, reporter_ref(ctx.resident.id))
    except IntegrationError:
        logger.warning("adding a supporter failed; continuing with a new report", exc_info=True)
        complaint = None
    if complaint is None:
        return _advance(
            ctx,
            {DUPLICATE: None, DECLINED: [*_declined(ctx.slots), ticket]},
            lead=[ctx.reply("complaints.duplicate_gone")],
        )
    await repo.subscribe(
        ctx.services.session,
        resident_id=ctx.resident.id,
        topic="complaint",
        ref=complaint.ticket,
        last_status=complaint.status.value,
    )
    reply = ctx.reply("complaints.supported", ticket=complaint.ticket, supporters=complaint.supporters + 1)
    return Step([reply], None, _ended())


async def _file(ctx: FlowContext) -> Step:
    """Files the draft through the desk (stored first), subscribes the resident, and says the ticket."""
    draft = Draft.of(ctx.slots)
    if draft.category is None or draft.description is None or not draft.has_location:
        return _advance(ctx, {})
    local_ref = _str(ctx.slots.get(REF)) or new_local_ref()
    report = ComplaintReport(
        category=draft.category,
        description=draft.description,
        reporter=reporter_ref(ctx.resident.id),
        local_ref=local_ref,
        lat=draft.lat,
        lon=draft.lon,
        address=draft.address,
        kelurahan_code=draft.kelurahan,
        media_keys=draft.media,
    )
    try:
        filing = await ctx.services.complaints.file(report)
    except IntegrationError:
        logger.warning("complaint %s could not be stored", local_ref, exc_info=True)
        return Step([ctx.reply("backend.complaints_down")], ComplaintState.CONFIRM, {REF: local_ref})
    complaint = filing.complaint
    ticket = filing.ticket
    if filing.pending or ticket is None or complaint is None:
        replies = [ctx.reply("backend.complaint_pending", ref=filing.local_ref)]
        followed, status = filing.local_ref, "pending"
    else:
        replies = [Reply(_filed_text(ctx, complaint))]
        followed, status = ticket, complaint.status.value
    await repo.subscribe(
        ctx.services.session, resident_id=ctx.resident.id, topic="complaint", ref=followed, last_status=status
    )
    logger.info("complaint %s filed (pending=%s)", filing.local_ref, filing.pending)
    return Step(replies, None, {**_ended(), LAST_TICKET: followed})


def _filed_text(ctx: FlowContext, complaint: Complaint) -> str:
    lines = [ctx.t("complaints.filed", ticket=complaint.ticket)]
    if complaint.agency:
        lines.append(ctx.t("complaints.filed_agency", agency=complaint.agency))
    if complaint.due_at is not None:
        today = ctx.services.now().date()
        due = complaint.due_at.astimezone(ctx.services.now().tzinfo)
        days = working_days_between(today, due.date())
        lines.append(ctx.t("complaints.filed_due", days=days, due=format_date(ctx, due)))
    return "\n".join(lines) + "\n\n" + ctx.t("complaints.filed_follow")


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (weekends and holidays not counted)."""
    days = 0
    current = start
    while current < end:
        current += timedelta(days=1)
        if is_working_day(current):
            days += 1
    return days


def _ended() -> dict[str, Any]:
    return {key: None for key in ALL_SLOTS}


# -- prompts ------------------------------------------------------------------------------------


def prompt_ask_category(ctx: FlowContext) -> list[Reply]:
    """The category question with one button per category."""
    return [_category_reply(ctx, "complaints.ask_category")]


def prompt_ask_description(ctx: FlowContext) -> list[Reply]:
    """The "what is wrong?" question."""
    return [ctx.reply("complaints.ask_description")]


def prompt_ask_location(ctx: FlowContext) -> list[Reply]:
    """The location question (a location-request keyboard where the channel has one)."""
    return [_location_reply(ctx, "complaints.ask_location")]


def prompt_ask_kelurahan(ctx: FlowContext) -> list[Reply]:
    """The kelurahan question after a typed address (kecamatan buttons)."""
    return _ask_kelurahan(ctx)


def prompt_offer_support(ctx: FlowContext) -> list[Reply]:
    """The support-or-new question about a nearby complaint."""
    return [_support_buttons(ctx, ctx.t("complaints.duplicate_again"))]


def prompt_ask_photo(ctx: FlowContext) -> list[Reply]:
    """The optional photo question with a skip button."""
    return [_photo_reply(ctx, "complaints.ask_photo")]


def prompt_confirm(ctx: FlowContext) -> list[Reply]:
    """The summary of the draft with send / change / cancel buttons."""
    draft = Draft.of(ctx.slots)
    photo = (
        ctx.t("complaints.summary_photos", count=len(draft.media))
        if draft.media
        else ctx.t("complaints.summary_no_photo")
    )
    text = ctx.t(
        "complaints.summary",
        category=category_name(ctx, draft.category or "other"),
        description=draft.description or "",
        location=describe_location(ctx, draft.lat, draft.lon, draft.address, draft.kelurahan),
        photo=photo,
    )
    return [_confirm_reply(ctx, text)]


def prompt_ask_edit(ctx: FlowContext) -> list[Reply]:
    """Which part of the draft to change (buttons)."""
    buttons = tuple(
        ctx.button(f"complaints.button_{choice.value}", _choice_payload(choice))
        for choice in (Choice.EDIT_CATEGORY, Choice.EDIT_DESCRIPTION, Choice.EDIT_LOCATION, Choice.EDIT_PHOTO)
    )
    return [Reply(ctx.t("complaints.ask_edit"), buttons)]


PROMPTS: dict[str, Callable[[FlowContext], Sequence[Reply]]] = {
    ComplaintState.ASK_CATEGORY: prompt_ask_category,
    ComplaintState.ASK_DESCRIPTION: prompt_ask_description,
    ComplaintState.ASK_LOCATION: prompt_ask_location,
    ComplaintState.ASK_KELURAHAN: prompt_ask_kelurahan,
    ComplaintState.OFFER_SUPPORT: prompt_offer_support,
    ComplaintState.ASK_PHOTO: prompt_ask_photo,
    ComplaintState.CONFIRM: prompt_confirm,
    ComplaintState.ASK_EDIT: prompt_ask_edit,
}


def _category_reply(ctx: FlowContext, key: str) -> Reply:
    buttons = tuple(
        Button(category_name(ctx, category), f'/{INTENT}{{"complaint_category": "{category}"}}')
        for category in COMPLAINT_CATEGORIES
    )
    return Reply(ctx.t(key), buttons)


def _location_reply(ctx: FlowContext, key: str) -> Reply:
    return Reply(ctx.t(key), request_location=True)


def _ask_kelurahan(ctx: FlowContext) -> list[Reply]:
    buttons = tuple(
        Button(place.name, f'/{INTENT}{{"location": "{place.code}"}}')
        for place in places().values()
        if place.level == "kecamatan"
    )
    address = _str(ctx.slots.get(ADDRESS)) or ""
    return [Reply(ctx.t("complaints.ask_kelurahan", address=address), buttons)]


def _support_buttons(ctx: FlowContext, text: str) -> Reply:
    return Reply(
        text,
        (
            ctx.button("complaints.button_support", _choice_payload(Choice.SUPPORT)),
            ctx.button("complaints.button_new", _choice_payload(Choice.NEW)),
        ),
    )


def _photo_reply(ctx: FlowContext, key: str) -> Reply:
    return Reply(
        ctx.t(key), (ctx.button("complaints.button_skip_photo", _choice_payload(Choice.SKIP_PHOTO)),)
    )


def _confirm_reply(ctx: FlowContext, text: str) -> Reply:
    buttons = (
        ctx.button("complaints.button_send", _choice_payload(Choice.SEND)),
        ctx.button("complaints.button_edit", _choice_payload(Choice.EDIT)),
        ctx.button("complaints.button_cancel", "/cancel"),
    )
    return Reply(text, buttons)


def _outside(ctx: FlowContext, changes: Mapping[str, Any], state: ComplaintState) -> Step:
    """A place outside Kota Pontianak: refused politely (with SP4N-LAPOR!), the question stays open."""
    text = ctx.t("complaints.outside_city", lapor_url=ctx.settings.get("lapor_url", ""))
    return _miss(ctx, changes, state, [Reply(text, request_location=True)], attempt=True)


# -- understanding answers ------------------------------------------------------------------------


def _category_in(nlu: ParseResult) -> str | None:
    category = nlu.entity("complaint_category")
    return category if category in COMPLAINT_CATEGORIES else None


def _clearly(nlu: ParseResult, intent: str) -> bool:
    """True when the message is ``intent`` with confidence enough to act on (filing, supporting)."""
    return nlu.intent_name == intent and nlu.confidence >= CLEAR_CONFIDENCE


def _choice(nlu: ParseResult) -> Choice | None:
    value = nlu.entity(CHOICE_ENTITY)
    return Choice(value) if value in set(Choice) else None


def _choice_payload(choice: Choice) -> str:
    return f'/{INTENT}{{"{CHOICE_ENTITY}": "{choice.value}"}}'


def _said(msg: IncomingMessage, words: frozenset[str]) -> bool:
    text = " ".join(WORD.findall((msg.text or "").casefold()))
    return bool(text) and text in words


def _declined(slots: Mapping[str, Any]) -> list[str]:
    raw = slots.get(DECLINED)
    return [str(t) for t in raw] if isinstance(raw, list) else []


def _photo_changes(ctx: FlowContext, msg: IncomingMessage) -> dict[str, Any]:
    """Slot changes for the photos in ``msg`` (kept up to :data:`MAX_PHOTOS`); empty when none came."""
    images = [m.key for m in msg.media if m.content_type.startswith("image/")]
    if not images:
        return {}
    kept = Draft.of(ctx.slots).media
    return {MEDIA: list(dict.fromkeys([*kept, *images]))[:MAX_PHOTOS]}


def category_name(ctx: FlowContext, category: str) -> str:
    """A complaint category as residents read it (unknown ones as "other")."""
    key = category if category in COMPLAINT_CATEGORIES else "other"
    return ctx.t(f"complaints.category.{key}")


def complaint_flow() -> Flow:
    """The complaint filing journey (office questions mid-way are side questions; "batal" cancels)."""
    return Flow(
        name="complaint",
        intents=frozenset({INTENT}),
        start=on_start,
        handlers={
            ComplaintState.ASK_CATEGORY: on_ask_category,
            ComplaintState.ASK_DESCRIPTION: on_ask_description,
            ComplaintState.ASK_LOCATION: on_ask_location,
            ComplaintState.ASK_KELURAHAN: on_ask_kelurahan,
            ComplaintState.OFFER_SUPPORT: on_offer_support,
            ComplaintState.ASK_PHOTO: on_ask_photo,
            ComplaintState.CONFIRM: on_confirm,
            ComplaintState.ASK_EDIT: on_ask_edit,
        },
        prompts=dict(PROMPTS),
        # "depan kantor camat Pontianak Kota" answers "where?" here, though it reads as an office question.
        accepts={
            ComplaintState.ASK_LOCATION: frozenset({"office_location"}),
            ComplaintState.ASK_KELURAHAN: frozenset({"office_location"}),
        },
        title_key="flow_title.complaint",
        creates_records=True,
        drafts=True,
    )
