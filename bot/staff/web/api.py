"""``/api/staff`` for handoffs: the console's actions as JSON (session cookie + X-CSRF-Token, or bearer)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bot.staff.auth import (
    client_ip,
    require_admin,
)
from bot.staff.handoffs import StaffDesk
from bot.staff.web.common import IDEMPOTENCY_PATTERN, ApiChanger, ApiPrincipal, StaffJSONResponse
from bot.web.deps import RuntimeDep

logger = logging.getLogger(__name__)


class ReplyBody(BaseModel):
    """A staff message to the resident."""

    text: str = Field(min_length=1, max_length=4000)
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_PATTERN)


class CloseBody(BaseModel):
    """Closing a handoff: an internal note (not sent to the resident)."""

    note: str = Field(default="", max_length=2000)


class AssignBody(BaseModel):
    """Assigning a handoff to a staff account."""

    username: str = Field(min_length=1, max_length=64)


def api_router() -> APIRouter:
    """``/api/staff``: the console's actions as JSON (session cookie + X-CSRF-Token, or bearer token)."""
    router = APIRouter(prefix="/api/staff", tags=["staff"], default_response_class=StaffJSONResponse)

    @router.get("/me")
    async def me(principal: ApiPrincipal) -> dict[str, Any]:
        """Who is calling, the role, and the CSRF token for cookie sessions."""
        return {
            "username": principal.username,
            "role": principal.role.value,
            "display_name": principal.display_name,
            "csrf_token": principal.csrf_token,
        }

    @router.get("/handoffs")
    async def handoffs(rt: RuntimeDep, principal: ApiPrincipal, closed: bool = False) -> dict[str, Any]:
        """Open handoffs (urgent first, longest waiting first); ``closed=true`` lists all, newest first."""
        items = await StaffDesk(rt).queue(closed=closed)
        return {"handoffs": [item.to_dict() for item in items]}

    @router.get("/handoffs/{handoff_id}")
    async def handoff(
        rt: RuntimeDep, principal: ApiPrincipal, handoff_id: int, reveal: bool = False
    ) -> dict[str, Any]:
        """One handoff with transcript and slots (masked unless ``reveal``, which is audit-logged)."""
        return (await StaffDesk(rt).detail(handoff_id, principal, reveal=reveal)).to_dict()

    @router.post("/handoffs/{handoff_id}/take")
    async def take(
        request: Request, rt: RuntimeDep, principal: ApiChanger, handoff_id: int
    ) -> dict[str, Any]:
        """Assign the handoff to the caller."""
        await StaffDesk(rt).take(handoff_id, principal, ip=client_ip(request))
        return {"ok": True}

    @router.post("/handoffs/{handoff_id}/assign")
    async def assign(
        request: Request, rt: RuntimeDep, principal: ApiChanger, handoff_id: int, body: AssignBody
    ) -> dict[str, Any]:
        """Assign the handoff to a staff account (admins)."""
        require_admin(principal)
        await StaffDesk(rt).assign(handoff_id, body.username, principal, ip=client_ip(request))
        return {"ok": True}

    @router.post("/handoffs/{handoff_id}/reply")
    async def reply(
        request: Request, rt: RuntimeDep, principal: ApiChanger, handoff_id: int, body: ReplyBody
    ) -> dict[str, Any]:
        """Send a message to the resident; a repeat with the same ``idempotency_key`` is sent once."""
        message_id = await StaffDesk(rt).reply(
            handoff_id, principal, body.text, idempotency_key=body.idempotency_key, ip=client_ip(request)
        )
        return {"ok": True, "message_id": message_id, "duplicate": message_id is None}

    @router.post("/handoffs/{handoff_id}/close")
    async def close(
        request: Request, rt: RuntimeDep, principal: ApiChanger, handoff_id: int, body: CloseBody
    ) -> dict[str, Any]:
        """Close with a note; the resident is asked for a 1-5 rating."""
        await StaffDesk(rt).close(handoff_id, principal, body.note, ip=client_ip(request))
        return {"ok": True}

    @router.get("/dashboard")
    async def dashboard(rt: RuntimeDep, principal: ApiPrincipal) -> dict[str, Any]:
        """The dashboard figures of the last 14 days."""
        return (await StaffDesk(rt).dashboard()).to_dict()

    @router.get("/audit")
    async def audit(
        rt: RuntimeDep, principal: ApiPrincipal, what: Annotated[str | None, Query(max_length=48)] = None
    ) -> dict[str, Any]:
        """The newest audit lines (admins)."""
        require_admin(principal)
        return {"entries": await StaffDesk(rt).audit_log(what=what)}

    return router
