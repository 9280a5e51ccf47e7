"""Every flow the bot knows, assembled into one engine."""

from __future__ import annotations

from flows import handoff
from flows.complaint import complaint_flow
from flows.complaint_status import complaint_status_flow
from flows.core import core_globals, smalltalk_flows
from flows.documents import documents_flow
from flows.engine import FlowEngine
from flows.offices import offices_flow
from flows.permit_status import permit_status_flow
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
            permit_status_flow(),
            complaint_flow(),
            complaint_status_flow(),
        ],
        handoff.with_handoff(core_globals()),
    )
    reroute.bind(engine)
    return engine
