"""Staff hours: ``Mon-Fri 07:30-16:00``-style schedules in WIB, closed on Indonesian public holidays.

Grammar: segments separated by ``;``, each ``DAYS WINDOWS``. DAYS is a day (``Mon``/``Sen``), a range
(``Mon-Fri``) or a comma list (``Mon,Wed``); WINDOWS is ``HH:MM-HH:MM`` or several separated by commas
(``07:30-11:30, 13:00-16:00``). ``always`` (or ``24/7``) means people answer at any time. Public holidays
and cuti bersama come from lokal-id (``lokal.holidays_on``); a year it has no data for counts as none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

DAY_NAMES = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "sen": 0, "sel": 1, "rab": 2, "kam": 3, "jum": 4, "sab": 5, "min": 6,
}  # fmt: skip
ALWAYS = frozenset({"always", "24/7", "24x7"})
_WINDOW = re.compile(r"^([01]?\d|2[0-3])[:.]([0-5]\d)-([01]?\d|2[0-4])[:.]([0-5]\d)$")
LOOKAHEAD_DAYS = 60


class HoursError(ValueError):
    """A staff-hours text that cannot be read; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Window:
    """People answer on ``weekday`` (0 = Monday) from ``start`` to ``end`` (local time)."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class StaffHours:
    """When people answer handoffs; ``windows`` empty and ``always`` true means round the clock."""

    spec: str
    windows: tuple[Window, ...]
    timezone: str = "Asia/Pontianak"
    closed_on_holidays: bool = True
    always: bool = False

    @classmethod
    def parse(
        cls, spec: str, *, timezone: str = "Asia/Pontianak", closed_on_holidays: bool = True
    ) -> StaffHours:
        """Read ``spec``; raises :class:`HoursError` naming the part it cannot read."""
        text = spec.strip()
        if text.casefold() in ALWAYS:
            return cls(text, (), timezone, closed_on_holidays, always=True)
        windows: list[Window] = []
        for segment in filter(None, (s.strip() for s in text.split(";"))):
            days_part, _, windows_part = segment.partition(" ")
            days = _parse_days(days_part)
            spans = [_parse_window(w) for w in windows_part.replace(" ", "").split(",") if w]
            if not spans:
                raise HoursError(f"{segment!r}: expected DAYS HH:MM-HH:MM, e.g. Mon-Fri 07:30-16:00")
            windows.extend(Window(day, start, end) for day in days for start, end in spans)
        if not windows:
            raise HoursError("expected e.g. 'Mon-Fri 07:30-16:00' (or 'always')")
        windows.sort(key=lambda w: (w.weekday, w.start))
        return cls(text, tuple(windows), timezone, closed_on_holidays)

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone (WIB)."""
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """True when people answer at ``at`` (an aware datetime)."""
        if self.always:
            return True
        local = at.astimezone(self.zone)
        if self._holiday(local.date()):
            return False
        now = local.time()
        return any(w.weekday == local.weekday() and w.start <= now < w.end for w in self.windows)

    def next_opening(self, at: datetime) -> datetime | None:
        """``at`` itself when open, else when people next answer (local time); None if never."""
        if self.is_open(at):
            return at.astimezone(self.zone)
        local = at.astimezone(self.zone)
        for offset in range(LOOKAHEAD_DAYS):
            day = local.date() + timedelta(days=offset)
            if self._holiday(day):
                continue
            for window in self.windows:
                if window.weekday != day.weekday():
                    continue
                start = datetime.combine(day, window.start, tzinfo=self.zone)
                if start > local:
                    return start
        return None

    def summary(self, day_names: Sequence[str]) -> str:
        """A short human text, e.g. ``Senin–Jumat 07.30–16.00``, with the given day names (Monday first)."""
        if self.always:
            return "24/7"
        by_day: dict[int, tuple[tuple[time, time], ...]] = {}
        for window in self.windows:
            by_day[window.weekday] = (*by_day.get(window.weekday, ()), (window.start, window.end))
        parts: list[str] = []
        days = sorted(by_day)
        i = 0
        while i < len(days):
            j = i
            while j + 1 < len(days) and days[j + 1] == days[j] + 1 and by_day[days[j + 1]] == by_day[days[i]]:
                j += 1
            label = day_names[days[i]] if i == j else f"{day_names[days[i]]}–{day_names[days[j]]}"
            spans = ", ".join(f"{_hhmm(s)}–{_hhmm(e)}" for s, e in by_day[days[i]])
            parts.append(f"{label} {spans}")
            i = j + 1
        return "; ".join(parts)

    def _holiday(self, day: date) -> bool:
        if not self.closed_on_holidays:
            return False
        import lokal  # deferred: importing lokal-id costs ~0.2 s of start-up

        try:
            return bool(lokal.holidays_on(day))
        except ValueError:
            # lokal-id has no decree for that year yet: count it as an ordinary day.
            return False


def _hhmm(value: time) -> str:
    return f"{value.hour:02d}.{value.minute:02d}"


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for item in filter(None, text.casefold().split(",")):
        first, _, last = item.partition("-")
        try:
            start = DAY_NAMES[first[:3]]
            end = DAY_NAMES[last[:3]] if last else start
        except KeyError:
            raise HoursError(f"{item!r}: expected days like Mon-Fri, Sat or Sen-Jum") from None
        span = (end - start) % 7
        days.extend((start + k) % 7 for k in range(span + 1))
    if not days:
        raise HoursError(f"{text!r}: expected days like Mon-Fri")
    return days


def _parse_window(text: str) -> tuple[time, time]:
    match = _WINDOW.match(text)
    if match is None:
        raise HoursError(f"{text!r}: expected HH:MM-HH:MM, e.g. 07:30-16:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start = time(h1, m1)
    end = time.max if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    if end <= start:
        raise HoursError(f"{text!r}: the window must end after it starts (same day)")
    return start, end
