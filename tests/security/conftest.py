"""Security fixtures: the Telegram channel over real HTTP against the fake Bot API, and the staff
fixtures (settings with an API token, a fixed WIB clock, web chat residents, the staff API client)."""

from __future__ import annotations

from tests.bot.channels.conftest import serve_telegram_bot  # noqa: F401  (fixture)
from tests.bot.staff.conftest import (  # noqa: F401  (fixtures)
    api,
    clock,
    complaint_clock,
    console,
    outbox,
    resident,
    settings_overrides,
)
