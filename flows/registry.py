"""Every flow the bot knows, assembled into one engine."""

from __future__ import annotations

from flows import handoff
from flows.core import core_globals, smalltalk_flows
from flows.documents import documents_flow
from flows.engine import FlowEngine
from flows.offices import offices_flow
from flows.privacy import privacy_flows
from flows.subscriptions import subscriptions_flows


def build_engine() -> FlowEngine:
    """The flow engine with every journey registered."""
    reroute = handoff.Reroute()
    engine = FlowEngine(
        [
            *smalltalk_flows(),
            handoff.handoff_flow(reroute),
            documents_flow(),
            offices_flow(),
            *subscriptions_flows(),
            *privacy_flows(),
        ],
        handoff.with_handoff(core_globals()),
    )
    reroute.bind(engine)
    return engine
