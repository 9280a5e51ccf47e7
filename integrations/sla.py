"""Service levels of complaints: handling time in working days (lokal-id holidays and cuti bersama)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

WIB = ZoneInfo("Asia/Pontianak")

# Working days until a complaint of each category should be handled (complaints.sla_working_days overrides).
DEFAULT_SLA_WORKING_DAYS: Mapping[str, int] = {
    "road_damage": 10,
    "street_light": 5,
    "garbage": 2,
    "drainage_flood": 5,
    "fallen_tree": 2,
    "clean_water": 3,
    "illegal_parking": 3,
    "public_facility": 10,
    "public_service": 5,
    "other": 10,
}
FALLBACK_SLA_WORKING_DAYS = 10

# The office (OPD) each category is forwarded to (complaints.agencies overrides).
DEFAULT_AGENCIES: Mapping[str, str] = {
    "road_damage": "Dinas PUPR",
    "street_light": "Dinas Perkim",
    "garbage": "Dinas Lingkungan Hidup",
    "drainage_flood": "Dinas PUPR",
    "fallen_tree": "Dinas Lingkungan Hidup",
    "clean_water": "Perumda Air Minum Tirta Khatulistiwa",
    "illegal_parking": "Dinas Perhubungan",
    "public_facility": "Dinas Perkim",
    "public_service": "Inspektorat",
    "other": "Diskominfo",
}


def is_working_day(day: date) -> bool:
    """Whether government offices work on ``day`` (weekends, libur nasional and cuti bersama are off)."""
    import lokal  # deferred: importing lokal-id costs ~0.2 s of start-up

    try:
        return lokal.is_working_day(day)
    except ValueError:
        # lokal-id has no decree for that year yet: count weekdays only rather than refuse.
        logger.warning("no holiday data for %s; counting weekdays only", day.year)
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after ``start``."""
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            left -= 1
    return current


class ServiceLevels:
    """Working-day handling times and responsible offices per complaint category."""

    def __init__(
        self,
        working_days: Mapping[str, int] | None = None,
        agencies: Mapping[str, str] | None = None,
        *,
        timezone: ZoneInfo = WIB,
    ) -> None:
        self.working_days = {**DEFAULT_SLA_WORKING_DAYS, **(working_days or {})}
        self.agencies = {**DEFAULT_AGENCIES, **(agencies or {})}
        self.timezone = timezone

    def days_for(self, category: str) -> int:
        """Working days allowed for ``category``."""
        return self.working_days.get(category, FALLBACK_SLA_WORKING_DAYS)

    def due_at(self, category: str, filed_at: datetime) -> datetime:
        """The end (23:59 local time) of the last working day the complaint may take."""
        local_day = filed_at.astimezone(self.timezone).date()
        due_day = add_working_days(local_day, self.days_for(category))
        return datetime.combine(due_day, time(23, 59, 59), self.timezone)

    def agency_for(self, category: str) -> str:
        """The office complaints of ``category`` are forwarded to."""
        return self.agencies.get(category, self.agencies["other"])
