"""Every flow the bot knows, assembled into one engine."""

from __future__ import annotations

from flows.core import core_globals, smalltalk_flows
from flows.engine import FlowEngine


def build_engine() -> FlowEngine:
    """The flow engine with every journey registered."""
    return FlowEngine([*smalltalk_flows()], core_globals())
