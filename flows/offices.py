"""Office hours and locations, from flows/knowledge/offices.yml, on today's calendar in WIB.

"Sabtu buka?", "besok tanggal merah buka?", "tanggal 25 Desember buka?" are answered for that date:
weekday hours, libur nasional and cuti bersama (lokal-id, from the SKB 3 Menteri) and, for today,
whether the office is open right now. Locations come with a map pin (``Reply.venue``); the channel
shows it where it can. Remembers ``last_office`` so "kalau Sabtu?" follows up on the same office.
A side flow: asked in the middle of another journey, it answers and that journey resumes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from flows.engine import Flow, FlowContext, Step
from flows.knowledge import WEEKDAYS, Interval, Office, WeeklyHours, load_offices
from flows.messages import Button, IncomingMessage, Reply, Venue
from nlu.entities import load_locations
from nlu.result import ParseResult

if TYPE_CHECKING:
    import lokal


class OfficesState(StrEnum):
    """Where the offices dialogue stands."""

    ASK_OFFICE = "offices.ask_office"
    ASK_CAMAT = "offices.ask_camat"


class Aspect(StrEnum):
    """Hours or location."""

    HOURS = "hours"
    LOCATION = "location"


INTENTS = {"office_hours": Aspect.HOURS, "office_location": Aspect.LOCATION}
ASPECT_SLOT = "offices.aspect"
DATE_SLOT = "offices.date"
HOLIDAY_SLOT = "offices.holiday"
MISSES_SLOT = "offices.misses"
LAST_OFFICE = "last_office"
LAST_KELURAHAN = "last_kelurahan"
LURAH = "kantor_lurah"
CAMAT = "kantor_camat"
MAX_MISSES = 2
MENU_OFFICES = ("disdukcapil", "mpp", "dpmptsp", CAMAT, LURAH)
_CLEAR = {ASPECT_SLOT: None, DATE_SLOT: None, HOLIDAY_SLOT: None, MISSES_SLOT: None}

# Words residents use for days and dates (input vocabulary, not texts shown to residents).
DAY_WORDS = {
    "senin": 0, "selasa": 1, "rabu": 2, "kamis": 3, "jumat": 4, "jumaat": 4, "jum'at": 4, "sabtu": 5,
    "minggu": 6, "ahad": 6, "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4,
    "saturday": 5, "sunday": 6,
}  # fmt: skip
RELATIVE_WORDS = {"hari ini": 0, "sekarang": 0, "today": 0, "now": 0, "besok": 1, "besuk": 1, "bsk": 1,
                  "tomorrow": 1, "lusa": 2}  # fmt: skip
MONTH_WORDS = {
    "januari": 1, "january": 1, "jan": 1, "februari": 2, "february": 2, "feb": 2, "maret": 3, "march": 3,
    "mar": 3, "april": 4, "apr": 4, "mei": 5, "may": 5, "juni": 6, "june": 6, "jun": 6, "juli": 7,
    "july": 7, "jul": 7, "agustus": 8, "august": 8, "agu": 8, "agt": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "oktober": 10, "october": 10, "okt": 10, "oct": 10, "november": 11, "nov": 11,
    "desember": 12, "december": 12, "des": 12, "dec": 12,
}  # fmt: skip
HOLIDAY_WORDS = ("tanggal merah", "tgl merah", "libur", "holiday", "cuti bersama", "lebaran", "hari raya")
_DAY_MONTH = re.compile(r"\b(\d{1,2})\s*(?:-|/|\s)\s*([a-z]+|\d{1,2})\b")
_DAY_OF_MONTH = re.compile(r"\b(?:tanggal|tgl|tang|date)\s*(\d{1,2})\b")
CAMAT_WORDS = frozenset({"camat", "kecamatan", "district"})
LURAH_WORDS = frozenset({"lurah", "kelurahan"})
_NEXT_WEEK = ("minggu depan", "next week", "pekan depan")


@dataclass(frozen=True, slots=True)
class AskedDate:
    """The day a question is about, and whether it asked about a holiday."""

    day: date
    holiday_asked: bool


@dataclass(frozen=True, slots=True)
class Target:
    """Which office a question is about: a named office, or a kelurahan office (by code or generic)."""

    office: Office | None = None
    kelurahan_code: str | None = None
    generic_camat: bool = False
    generic_lurah: bool = False


async def on_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Answers hours or location for the named or remembered office; asks which office when unclear."""
    aspect = INTENTS.get(nlu.intent_name, _slot_aspect(ctx))
    asked = asked_date(nlu.text, ctx.services.now().date())
    target = _target_in(nlu) or _remembered(ctx)
    return _respond(ctx, target, aspect, asked, misses=0, state=None)


async def on_ask_office(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes the chosen office and answers the kept question; re-asks on anything else, then gives up."""
    aspect = INTENTS.get(nlu.intent_name, _slot_aspect(ctx))
    asked = asked_date(nlu.text, ctx.services.now().date()) or _slot_date(ctx)
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0)
    return _respond(ctx, _target_in(nlu), aspect, asked, misses=misses, state=OfficesState.ASK_OFFICE)


async def on_ask_camat(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    """Takes the chosen kecamatan and answers for its kantor camat; re-asks otherwise, then gives up."""
    aspect = INTENTS.get(nlu.intent_name, _slot_aspect(ctx))
    asked = asked_date(nlu.text, ctx.services.now().date()) or _slot_date(ctx)
    target = _target_in(nlu, prefer_camat=True)
    if target is not None and target.office is None:
        target = _camat_of_kelurahan(target.kelurahan_code) if target.kelurahan_code else None
    misses = int(ctx.slots.get(MISSES_SLOT, 0) or 0)
    return _respond(ctx, target, aspect, asked, misses=misses, state=OfficesState.ASK_CAMAT)


def prompt_ask_office(ctx: FlowContext) -> list[Reply]:
    """The pending "which office?" question."""
    return [_ask_office(ctx, _slot_aspect(ctx), "offices.ask")]


def prompt_ask_camat(ctx: FlowContext) -> list[Reply]:
    """The pending "which kecamatan?" question."""
    return [_ask_camat(ctx, _slot_aspect(ctx), "offices.ask_camat")]


def _respond(
    ctx: FlowContext,
    target: Target | None,
    aspect: Aspect,
    asked: AskedDate | None,
    *,
    misses: int,
    state: OfficesState | None,
) -> Step:
    kept: dict[str, object] = {ASPECT_SLOT: aspect.value}
    if asked is not None:
        kept |= {DATE_SLOT: asked.day.isoformat(), HOLIDAY_SLOT: asked.holiday_asked}
    if target is not None and target.generic_camat:
        return Step([_ask_camat(ctx, aspect, "offices.ask_camat")], OfficesState.ASK_CAMAT, kept)
    if target is None or (target.office is None and not (target.kelurahan_code or target.generic_lurah)):
        if state is not None and misses + 1 > MAX_MISSES:
            staff = ctx.button("menu.staff", "/talk_to_staff")
            return Step([ctx.reply("offices.give_up", staff)], None, dict(_CLEAR))
        key = "offices.ask" if state is None else "offices.ask_again"
        next_state = state or OfficesState.ASK_OFFICE
        if next_state == OfficesState.ASK_CAMAT:
            reply = _ask_camat(ctx, aspect, "offices.ask_camat_again")
        else:
            reply = _ask_office(ctx, aspect, key)
        return Step(
            [reply], next_state, kept | {MISSES_SLOT: misses + 1 if state else None}, missed=state is not None
        )
    if target.office is not None:
        step = _office_answer(ctx, target.office, aspect, asked)
        memory = {LAST_OFFICE: target.office.key, LAST_KELURAHAN: None}
    else:
        step = _kelurahan_answer(ctx, target.kelurahan_code, aspect, asked)
        memory = {LAST_OFFICE: LURAH, LAST_KELURAHAN: target.kelurahan_code}
    return Step(step, None, {**_CLEAR, **memory})


# -- answers ---------------------------------------------------------------------------------------


def _office_answer(ctx: FlowContext, office: Office, aspect: Aspect, asked: AskedDate | None) -> list[Reply]:
    name = office.name.get(ctx.lang)
    if aspect is Aspect.LOCATION:
        lines = [ctx.t("offices.location_title", name=name), f"📍 {office.address}"]
        lines.append(ctx.t("offices.services", services=office.services.get(ctx.lang)))
        if office.notes.get(ctx.lang):
            lines.append(f"ℹ️ {office.notes.get(ctx.lang)}")
        venue = Venue(office.lat, office.lon, office.short.get(ctx.lang), office.address)
        hours = ctx.button("offices.button_hours", _payload("office_hours", office=office.key))
        return [Reply("\n".join(lines), (hours,), venue=venue)]
    lines = _hours_lines(ctx, office.short.get(ctx.lang), office.hours, office.open_on_cuti_bersama, asked)
    if office.notes.get(ctx.lang) and asked is None:
        lines.append(f"ℹ️ {office.notes.get(ctx.lang)}")
    where = ctx.button("offices.button_location", _payload("office_location", office=office.key))
    return [Reply("\n".join(lines), (where,))]


def _kelurahan_answer(
    ctx: FlowContext, code: str | None, aspect: Aspect, asked: AskedDate | None
) -> list[Reply]:
    rule = load_offices().kelurahan
    place = _kelurahan(code) if code else None
    if place is None:
        lines = [ctx.t("offices.lurah_generic")]
        lines += _hours_lines(ctx, ctx.t("offices.lurah_name_generic"), rule.hours, False, asked)
        return [Reply("\n".join(lines))]
    name, kecamatan, kecamatan_code = place
    label = ctx.t("offices.lurah_name", name=name)
    if aspect is Aspect.LOCATION:
        lines = [
            ctx.t("offices.location_title", name=label),
            rule.where.get(ctx.lang).format(name=name, kecamatan=kecamatan),
        ]
        lines.append(ctx.t("offices.services", services=rule.services.get(ctx.lang)))
    else:
        lines = _hours_lines(ctx, label, rule.hours, False, asked)
    buttons: tuple[Button, ...] = ()
    camat = load_offices().camat_of(kecamatan_code)
    if camat is not None:
        buttons = (Button(camat.short.get(ctx.lang), _payload("office_location", office=camat.key)),)
    return [Reply("\n".join(lines), buttons)]


def _hours_lines(
    ctx: FlowContext, name: str, hours: WeeklyHours, open_on_cuti: bool, asked: AskedDate | None
) -> list[str]:
    now = ctx.services.now()
    if asked is None:
        lines = [ctx.t("offices.hours_title", name=name)]
        lines += [f"• {days}: {text}" for days, text in _week_summary(ctx, hours)]
        lines.append(ctx.t("offices.holiday_rule"))
        lines.append(_today_line(ctx, hours, open_on_cuti, now))
        return lines
    return _day_lines(ctx, name, hours, open_on_cuti, asked, now)


def _day_lines(
    ctx: FlowContext, name: str, hours: WeeklyHours, open_on_cuti: bool, asked: AskedDate, now: datetime
) -> list[str]:
    day = asked.day
    label = _day_label(ctx, day, now.date())
    holidays, known = _holidays(day)
    closing = [h for h in holidays if h.type == "libur_nasional" or not open_on_cuti]
    intervals = hours.on(day.weekday())
    lines: list[str] = []
    if closing:
        key = "offices.closed_holiday" if closing[0].type == "libur_nasional" else "offices.closed_cuti"
        lines.append(ctx.t(key, name=name, day=label, holiday=closing[0].name))
    elif not intervals:
        lines.append(ctx.t("offices.closed_day", name=name, day=label))
    else:
        if asked.holiday_asked and known:
            lines.append(ctx.t("offices.not_a_holiday", day=label))
        lines.append(ctx.t("offices.open_day", name=name, day=label, hours=_intervals_text(ctx, intervals)))
        if day == now.date():
            lines.append(_today_line(ctx, hours, open_on_cuti, now))
    if not known:
        lines.append(ctx.t("offices.no_holiday_data", year=day.year))
    if closing or not intervals:
        following = _next_open(hours, open_on_cuti, day)
        if following is not None:
            nxt, nxt_intervals = following
            text = _intervals_text(ctx, nxt_intervals)
            lines.append(ctx.t("offices.next_open", day=_day_label(ctx, nxt, now.date()), hours=text))
    return lines


def _today_line(ctx: FlowContext, hours: WeeklyHours, open_on_cuti: bool, now: datetime) -> str:
    today = now.date()
    holidays, _ = _holidays(today)
    if any(h.type == "libur_nasional" or not open_on_cuti for h in holidays):
        return ctx.t("offices.now_holiday", holiday=holidays[0].name)
    intervals = hours.on(today.weekday())
    clock = now.time().replace(tzinfo=None)
    for opens, closes in intervals:
        if opens <= clock < closes:
            return ctx.t("offices.now_open", until=_clock(ctx, closes))
    upcoming = [opens for opens, _ in intervals if opens > clock]
    if upcoming and clock >= intervals[0][1]:
        return ctx.t("offices.now_break", at=_clock(ctx, upcoming[0]))
    if upcoming:
        return ctx.t("offices.now_before", at=_clock(ctx, upcoming[0]))
    return ctx.t("offices.now_closed")


def _next_open(
    hours: WeeklyHours, open_on_cuti: bool, after: date
) -> tuple[date, tuple[Interval, ...]] | None:
    day = after
    for _ in range(21):
        day += timedelta(days=1)
        holidays, _known = _holidays(day)
        if any(h.type == "libur_nasional" or not open_on_cuti for h in holidays):
            continue
        if hours.on(day.weekday()):
            return day, hours.on(day.weekday())
    return None


def _holidays(day: date) -> tuple[list[lokal.Holiday], bool]:
    """Holidays on ``day`` and whether lokal-id has that year's decree at all."""
    import lokal  # deferred: importing lokal-id costs ~0.2 s of start-up

    try:
        return list(lokal.holidays_on(day)), True
    except ValueError:
        return [], False


def _week_summary(ctx: FlowContext, hours: WeeklyHours) -> list[tuple[str, str]]:
    """Consecutive weekdays with the same hours grouped: ("Senin–Kamis", "07.30–12.00, 13.00–16.00")."""
    groups: list[tuple[int, int, tuple[Interval, ...]]] = []
    for weekday in range(7):
        intervals = hours.on(weekday)
        if groups and groups[-1][2] == intervals:
            groups[-1] = (groups[-1][0], weekday, intervals)
        else:
            groups.append((weekday, weekday, intervals))
    summary = []
    for first, last, intervals in groups:
        days = _weekday_name(ctx, first)
        if last != first:
            days = f"{days}–{_weekday_name(ctx, last)}"
        summary.append((days, _intervals_text(ctx, intervals) if intervals else ctx.t("offices.closed")))
    return summary


def _intervals_text(ctx: FlowContext, intervals: tuple[Interval, ...]) -> str:
    text = ", ".join(f"{_clock(ctx, a)}–{_clock(ctx, b)}" for a, b in intervals)
    breaks = [
        f"{_clock(ctx, intervals[i][1])}–{_clock(ctx, intervals[i + 1][0])}"
        for i in range(len(intervals) - 1)
    ]
    if breaks:
        text = f"{text} {ctx.t('offices.break', ranges=', '.join(breaks))}"
    return text


def _clock(ctx: FlowContext, moment: time) -> str:
    return ctx.t("offices.clock", h=f"{moment.hour:02d}", m=f"{moment.minute:02d}")


def _weekday_name(ctx: FlowContext, weekday: int) -> str:
    return ctx.t(f"offices.day_{WEEKDAYS[weekday]}")


def _day_label(ctx: FlowContext, day: date, today: date) -> str:
    name = f"{_weekday_name(ctx, day.weekday())} {day.day}/{day.month}"
    if day == today:
        return ctx.t("offices.today", day=name)
    if day == today + timedelta(days=1):
        return ctx.t("offices.tomorrow", day=name)
    return name


# -- understanding the question ----------------------------------------------------------------


def asked_date(text: str, today: date) -> AskedDate | None:
    """The date a question is about ("sabtu", "besok", "17 agustus", "tanggal 25"), if it names one."""
    lowered = " ".join(text.casefold().replace("’", "'").split())
    holiday = any(word in lowered for word in HOLIDAY_WORDS)
    day = _explicit_date(lowered, today) or _relative_date(lowered, today) or _weekday_date(lowered, today)
    return AskedDate(day, holiday) if day is not None else None


def _explicit_date(text: str, today: date) -> date | None:
    for match in _DAY_MONTH.finditer(text):
        day_number, month_word = int(match.group(1)), match.group(2)
        month = int(month_word) if month_word.isdigit() else MONTH_WORDS.get(month_word)
        if month is not None and 1 <= month <= 12:
            found = _future_date(today, month, day_number)
            if found is not None:
                return found
    of_month = _DAY_OF_MONTH.search(text)
    if of_month:
        day_number = int(of_month.group(1))
        found = _future_date(today, today.month, day_number, month_only=True)
        if found is not None:
            return found
    return None


def _future_date(today: date, month: int, day_number: int, *, month_only: bool = False) -> date | None:
    """The next date with that day (and month) on or after today."""
    for step in range(13 if month_only else 2):
        year = today.year + (today.month - 1 + step) // 12 if month_only else today.year + step
        candidate_month = (today.month - 1 + step) % 12 + 1 if month_only else month
        try:
            candidate = date(year, candidate_month, day_number)
        except ValueError:
            if month_only:
                continue
            return None
        if candidate >= today:
            return candidate
    return None


def _relative_date(text: str, today: date) -> date | None:
    for phrase, offset in sorted(RELATIVE_WORDS.items(), key=lambda item: -len(item[0])):
        if re.search(rf"\b{re.escape(phrase)}\b", text):
            return today + timedelta(days=offset)
    return None


def _weekday_date(text: str, today: date) -> date | None:
    if any(phrase in text for phrase in _NEXT_WEEK):
        wanted = [
            d for w, d in DAY_WORDS.items() if re.search(rf"\b{re.escape(w)}\b", text) and w != "minggu"
        ]
        start = today + timedelta(days=7 - today.weekday())
        return start + timedelta(days=wanted[0]) if wanted else start
    for word, weekday in DAY_WORDS.items():
        if re.search(rf"(?<![\w']){re.escape(word)}(?![\w'])", text):
            return today + timedelta(days=(weekday - today.weekday()) % 7)
    return None


def _target_in(nlu: ParseResult, *, prefer_camat: bool = False) -> Target | None:
    offices = load_offices()
    named = [v for v in nlu.entity_values("office") if v != LURAH]
    for value in named:
        if value in offices.offices:
            return Target(office=offices.offices[value])
        if value == CAMAT:
            return Target(generic_camat=True)
    for code in nlu.entity_values("location"):
        if code.count(".") == 2:
            camat = offices.camat_of(code)
            if camat is not None:
                return Target(office=camat)
        if code.count(".") == 3 and _kelurahan(code) is not None:
            if prefer_camat:
                return _camat_of_kelurahan(code)
            return Target(kelurahan_code=code)
    words = set(re.findall(r"[a-z]+", nlu.text.casefold()))
    if LURAH in nlu.entity_values("office") or words & LURAH_WORDS:
        return Target(generic_lurah=True)
    if words & CAMAT_WORDS:
        return Target(generic_camat=True)
    return None


def _camat_of_kelurahan(code: str) -> Target | None:
    place = _kelurahan(code)
    camat = load_offices().camat_of(place[2]) if place else None
    return Target(office=camat) if camat is not None else None


def _remembered(ctx: FlowContext) -> Target | None:
    last = ctx.slots.get(LAST_OFFICE)
    if last == LURAH:
        code = ctx.slots.get(LAST_KELURAHAN)
        return Target(kelurahan_code=code if isinstance(code, str) else None, generic_lurah=True)
    offices = load_offices().offices
    return Target(office=offices[last]) if isinstance(last, str) and last in offices else None


def _kelurahan(code: str) -> tuple[str, str, str] | None:
    """(name, kecamatan name, kecamatan code) of a kelurahan code of Kota Pontianak."""
    for place in load_locations():
        if place.code == code and place.level == "kelurahan":
            return (
                place.aliases[1] if len(place.aliases) > 1 else place.name,
                place.kecamatan,
                code.rsplit(".", 1)[0],
            )
    return None


def _slot_aspect(ctx: FlowContext) -> Aspect:
    value = ctx.slots.get(ASPECT_SLOT)
    return Aspect(value) if value in set(Aspect) else Aspect.HOURS


def _slot_date(ctx: FlowContext) -> AskedDate | None:
    value = ctx.slots.get(DATE_SLOT)
    if not isinstance(value, str):
        return None
    try:
        return AskedDate(date.fromisoformat(value), bool(ctx.slots.get(HOLIDAY_SLOT)))
    except ValueError:
        return None


def _ask_office(ctx: FlowContext, aspect: Aspect, key: str) -> Reply:
    intent = "office_location" if aspect is Aspect.LOCATION else "office_hours"
    offices = load_offices().offices
    buttons = []
    for office_key in MENU_OFFICES:
        if office_key in offices:
            title = offices[office_key].short.get(ctx.lang)
        else:
            title = ctx.t(f"offices.button_{office_key}")
        buttons.append(Button(title, _payload(intent, office=office_key)))
    return Reply(ctx.t(key), tuple(buttons))


def _ask_camat(ctx: FlowContext, aspect: Aspect, key: str) -> Reply:
    intent = "office_location" if aspect is Aspect.LOCATION else "office_hours"
    buttons = tuple(
        Button(office.short.get(ctx.lang), _payload(intent, office=office.key))
        for office in load_offices().offices.values()
        if office.kecamatan
    )
    return Reply(ctx.t(key), buttons)


def _payload(intent: str, **entities: str) -> str:
    return f"/{intent}{json.dumps(entities, ensure_ascii=False)}"


def offices_flow() -> Flow:
    """The office hours and location journey (a side flow)."""
    return Flow(
        name="offices",
        intents=frozenset(INTENTS),
        start=on_start,
        handlers={OfficesState.ASK_OFFICE: on_ask_office, OfficesState.ASK_CAMAT: on_ask_camat},
        prompts={OfficesState.ASK_OFFICE: prompt_ask_office, OfficesState.ASK_CAMAT: prompt_ask_camat},
        side=True,
        title_key="flow_title.offices",
    )
