"""Every flow the bot knows, assembled into one engine."""

from __future__ import annotations

from flows.core import core_globals, smalltalk_flows
from flows.documents import documents_flow
from flows.engine import FlowEngine
from flows.offices import offices_flow
from flows.subscriptions import subscriptions_flows


def build_engine() -> FlowEngine:
    """The flow engine with every journey registered."""
    return FlowEngine(
        [*smalltalk_flows(), documents_flow(), offices_flow(), *subscriptions_flows()],
        core_globals(),
    )
