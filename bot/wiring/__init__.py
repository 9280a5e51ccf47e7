"""The composition root: the only place that knows concrete channels, back ends and the scheduler.

``build_runtime`` opens everything settings describe, ``start_runtime`` starts what runs in the
background (scheduler, retention, channels, booth and staff-group loops), ``close_runtime`` stops it
all in the reverse order. Imported by ``bot.app`` and the CLI only; every other part receives the
pieces it uses (a session factory, a clock, a sender, ``spawn``), never this module.
"""

from __future__ import annotations

from bot.wiring.build import (
    SchemaOutOfDate,
    build_parser_for,
    build_runtime,
    channel_routers,
    flow_settings,
    require_current_schema,
)
from bot.wiring.lifecycle import close_runtime, notification_scheduler, start_runtime

__all__ = [
    "SchemaOutOfDate",
    "build_parser_for",
    "build_runtime",
    "channel_routers",
    "close_runtime",
    "flow_settings",
    "notification_scheduler",
    "require_current_schema",
    "start_runtime",
]
