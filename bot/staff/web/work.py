"""Console pages and API for complaints, dead letters, demo permits and announcements.

Same rules as :mod:`bot.staff.web`: pages need a session (else the login page), forms carry the
session's CSRF token; the API takes the session cookie (+ ``X-CSRF-Token`` for changes) or the bearer
token (else 401). Every change, and every view of a complaint photo, is audit-logged.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from bot.notifications.changes import MAX_BROADCAST_CHARS, SEGMENTS
from bot.staff.auth import check_csrf, client_ip, require_admin
from bot.staff.complaint_views import (
    ACTION_LABELS,
    CATEGORY_LABELS,
    STATUS_LABELS,
    ComplaintFilters,
    agencies_of,
    kelurahan_names,
)
from bot.staff.complaints import ComplaintWork
from bot.staff.handoffs import StaffActionError
from bot.staff.operations import SEGMENT_LABELS, STAGE_LABELS, Operations, dead_letter_dict
from bot.staff.web.common import FLASH_COOKIE, ApiChanger, ApiPrincipal, PagePrincipal, render
from bot.web.deps import RuntimeDep
from integrations.base import ComplaintStatus

STATUS_PATTERN = "^(" + "|".join(s.value for s in ComplaintStatus) + ")$"
PRIVATE_FILE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


def _labels() -> dict[str, Any]:
    return {
        "status_label": lambda s: STATUS_LABELS.get(s or "", s or "—"),
        "action_label": lambda s: ACTION_LABELS.get(s, s),
        "category_label": lambda c: CATEGORY_LABELS.get(c or "", c or "—"),
        "stage_label": lambda s: STAGE_LABELS.get(s or "", s or "—"),
    }


def _done(url: str, message: str) -> RedirectResponse:
    """Back to ``url`` with a success message shown once."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLASH_COOKIE, quote("✓ " + message), max_age=30, httponly=True, samesite="lax", path="/staff"
    )
    return response


# A filter date outside these years is a typo, and one at the calendar's ends overflows once it is
# turned into a WIB day boundary in UTC (0001-01-01 minus 7 hours; 9999-12-31 plus one day).
FIRST_DATE = date(2000, 1, 1)
LAST_DATE = date(2099, 12, 31)


def _parse_date(text: str | None) -> date | None:
    """A filter date (``TTTT-BB-HH``, years 2000-2099), else a 422 the page shows as a message."""
    if not text:
        return None
    try:
        parsed = date.fromisoformat(text.strip())
    except ValueError:
        parsed = None
    if parsed is None or not FIRST_DATE <= parsed <= LAST_DATE:
        raise StaffActionError("Tanggal tidak valid (format TTTT-BB-HH, tahun 2000–2099).", 422)
    return parsed


Text64 = Annotated[str | None, Query(max_length=64)]
Text128 = Annotated[str | None, Query(max_length=128)]
Text10 = Annotated[str | None, Query(max_length=10)]


def complaint_filters(
    status: Text64 = None,
    category: Text64 = None,
    agency: Text128 = None,
    kelurahan: Text64 = None,
    q: Text128 = None,
    overdue: Text10 = None,
    date_from: Text10 = None,
    date_to: Text10 = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> ComplaintFilters:
    """The complaints list's query parameters (page and API alike), validated (422 when not)."""
    if status and status not in STATUS_LABELS:
        raise StaffActionError("Status tidak dikenal.", 422)
    return ComplaintFilters(
        status=status or None,
        category=category or None,
        agency=agency or None,
        kelurahan=kelurahan or None,
        text=(q or "").strip() or None,
        overdue=(overdue or "").lower() in {"1", "true", "on", "yes"},
        date_from=_parse_date(date_from),
        date_to=_parse_date(date_to),
        page=max(1, page),
    )


Filters = Annotated[ComplaintFilters, Depends(complaint_filters)]


# --- pages ----------------------------------------------------------------------------------------


def work_router() -> APIRouter:
    """Console pages: complaints, dead letters, demo permits, announcements."""
    router = APIRouter(prefix="/staff", include_in_schema=False)

    @router.get("/complaints")
    async def complaints_page(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        filters: Filters,
    ) -> HTMLResponse:
        """Complaints with filters and paging (or, with Open311, what the bot filed there)."""
        work = ComplaintWork(rt)
        if not work.local:
            filed, total = await work.filed_in_open311(page=filters.page)
            return render(
                request,
                "complaints_open311.html",
                me,
                filed=filed,
                total=total,
                page=filters.page,
                base_url=rt.settings.complaints.open311.base_url,
                nav="complaints",
                **_labels(),
            )
        found = await work.search(filters)
        return render(
            request,
            "complaints.html",
            me,
            found=found,
            counts=await work.status_counts(),
            f=filters,
            statuses=[s for s in STATUS_LABELS if s != "pending"],
            categories=CATEGORY_LABELS,
            agencies=agencies_of(rt),
            kelurahan_names=sorted(kelurahan_names().items(), key=lambda kv: kv[1]),
            urlencode=urlencode,
            nav="complaints",
            refresh=0,
            **_labels(),
        )

    @router.get("/complaints/{ticket}")
    async def complaint_page(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        ticket: str,
    ) -> HTMLResponse:
        """One complaint: description, photos, location, supporters, history, and the status form."""
        work = ComplaintWork(rt)
        detail = await work.detail(ticket)
        return render(
            request,
            "complaint.html",
            me,
            d=detail,
            agencies=agencies_of(rt),
            default_agency=rt.backends.local_complaints.levels.agency_for(detail.row.category)
            if rt.backends.local_complaints
            else None,
            nav="complaints",
            **_labels(),
        )

    @router.post("/complaints/{ticket}/status")
    async def complaint_status(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        ticket: str,
        to: Annotated[str, Form(pattern=STATUS_PATTERN)],
        note: Annotated[str, Form(max_length=1000)] = "",
        agency: Annotated[str, Form(max_length=128)] = "",
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """Change the status with a note; the resident (and supporters who subscribed) are notified."""
        check_csrf(me, csrf_token)
        complaint, queued = await ComplaintWork(rt).transition(
            ticket, to, me, note=note, agency=agency or None, ip=client_ip(request)
        )
        told = f"{queued} warga diberi tahu" if queued else "tidak ada warga yang berlangganan kabar"
        message = f"{complaint.ticket} kini {STATUS_LABELS[complaint.status.value]}; {told}."
        return _done(f"/staff/complaints/{quote(complaint.ticket)}", message)

    @router.get("/complaints/{ticket}/photos/{index}")
    async def complaint_photo(
        request: Request, rt: RuntimeDep, me: PagePrincipal, ticket: str, index: int
    ) -> FileResponse:
        """A complaint photo, for signed-in staff only (each view is audit-logged)."""
        path = await ComplaintWork(rt).photo(ticket, index, me, ip=client_ip(request))
        return FileResponse(path, headers=PRIVATE_FILE)

    @router.get("/outbox")
    async def outbox_page(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        channel: Annotated[str | None, Query(pattern="^(telegram|whatsapp|webchat)?$")] = None,
    ) -> HTMLResponse:
        """Messages that could not be delivered, with a requeue button each."""
        letters, total = await Operations(rt).dead_letters(page=page, channel=channel)
        return render(
            request,
            "outbox.html",
            me,
            letters=letters,
            total=total,
            page=page,
            channel=channel or "",
            nav="outbox",
        )

    @router.post("/outbox/{outbox_id}/requeue")
    async def requeue(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        outbox_id: int,
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """Send a dead letter again."""
        check_csrf(me, csrf_token)
        await Operations(rt).requeue(outbox_id, me, ip=client_ip(request))
        return _done("/staff/outbox", f"Pesan #{outbox_id} dijadwalkan untuk dikirim ulang.")

    @router.get("/demo")
    async def demo_page(request: Request, rt: RuntimeDep, me: PagePrincipal) -> HTMLResponse:
        """Demo permits with their stage and a button to move each on (the booth's control too)."""
        ops = Operations(rt)
        permits = await ops.demo_permits() if ops.demo is not None else []
        return render(
            request,
            "demo.html",
            me,
            permits=permits,
            enabled=ops.demo is not None,
            nav="demo",
            refresh=0,
            **_labels(),
        )

    @router.post("/demo/{number}/advance")
    async def demo_advance(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        number: str,
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """Move a demo permit to its next stage; subscribers get their push at once."""
        check_csrf(me, csrf_token)
        permit, queued = await Operations(rt).advance(number, me, ip=client_ip(request))
        told = f"{queued} warga diberi tahu" if queued else "belum ada warga yang berlangganan"
        stage = STAGE_LABELS.get(permit.stage.value, permit.stage.value)
        return _done(f"/staff/demo#p-{permit.number}", f"{permit.number} kini {stage}; {told}.")

    @router.get("/broadcast")
    async def broadcast_page(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        sent: Annotated[int | None, Query(ge=1)] = None,
    ) -> HTMLResponse:
        """The announcement form (admins) with the progress of recent announcements."""
        require_admin(me)
        ops = Operations(rt)
        recent = await ops.broadcasts()
        current = next((b for b in recent if b.id == sent), None)
        if sent is not None and current is None:
            current = await ops.broadcast_line(sent)
        running = any(not b.progress.finished for b in recent)
        return render(
            request,
            "broadcast.html",
            me,
            recent=recent,
            current=current,
            segments=SEGMENT_LABELS,
            max_chars=MAX_BROADCAST_CHARS,
            nav="broadcast",
            refresh=3 if running else 0,
        )

    @router.post("/broadcast")
    async def broadcast(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        text: Annotated[str, Form(max_length=4000)] = "",
        segment: Annotated[str, Form(pattern="^(subscribers|all)$")] = "subscribers",
        language: Annotated[str, Form(pattern="^(id|en)?$")] = "",
        urgent: Annotated[str, Form(max_length=8)] = "",
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """Queue an announcement (admins)."""
        check_csrf(me, csrf_token)
        require_admin(me)
        queued = await Operations(rt).broadcast(
            me,
            text=text,
            segment=segment,
            language=language or None,
            urgent=bool(urgent),
            ip=client_ip(request),
        )
        return _done(
            f"/staff/broadcast?sent={queued.id}",
            f"Pengumuman #{queued.id} diantrekan untuk {queued.recipients} warga.",
        )

    return router


# --- JSON API -------------------------------------------------------------------------------------


class StatusBody(BaseModel):
    """A complaint status change: the new status, a note residents read, the OPD when forwarding."""

    status: str = Field(pattern=STATUS_PATTERN)
    note: str = Field(min_length=1, max_length=1000)
    agency: str | None = Field(default=None, max_length=128)


class BroadcastBody(BaseModel):
    """An announcement to residents."""

    text: str = Field(min_length=1, max_length=MAX_BROADCAST_CHARS)
    segment: str = Field(default="subscribers", pattern="^(" + "|".join(SEGMENTS) + ")$")
    language: str | None = Field(default=None, pattern="^(id|en)$")
    urgent: bool = False


def work_api_router() -> APIRouter:
    """``/api/staff``: complaints, dead letters, demo permits and announcements as JSON."""
    router = APIRouter(prefix="/api/staff", tags=["staff"])

    @router.get("/complaints")
    async def complaints(
        rt: RuntimeDep,
        principal: ApiPrincipal,
        filters: Filters,
    ) -> dict[str, Any]:
        """Local complaints matching the filters, newest first, 25 a page (reporters masked).

        With ``complaints.backend: open311`` the complaints the bot filed there (read-only).
        """
        work = ComplaintWork(rt)
        if not work.local:
            filed, total = await work.filed_in_open311(page=filters.page)
            return {
                "backend": "open311",
                "complaints": [f.to_dict() for f in filed],
                "total": total,
                "page": filters.page,
            }
        return {"backend": "local", **(await work.search(filters)).to_dict()}

    @router.get("/complaints/{ticket}")
    async def complaint(rt: RuntimeDep, principal: ApiPrincipal, ticket: str) -> dict[str, Any]:
        """One complaint with history, supporters (masked), photo URLs, location and next statuses."""
        return (await ComplaintWork(rt).detail(ticket)).to_dict()

    @router.post("/complaints/{ticket}/status")
    async def complaint_status(
        request: Request, rt: RuntimeDep, principal: ApiChanger, ticket: str, body: StatusBody
    ) -> dict[str, Any]:
        """Change a complaint's status with a note; subscribers are notified once."""
        complaint, queued = await ComplaintWork(rt).transition(
            ticket, body.status, principal, note=body.note, agency=body.agency, ip=client_ip(request)
        )
        return {
            "ok": True,
            "ticket": complaint.ticket,
            "status": complaint.status.value,
            "agency": complaint.agency,
            "notified": queued,
        }

    @router.get(
        "/complaints/{ticket}/photos/{index}",
        response_class=FileResponse,
        responses={200: {"content": {"image/*": {}}, "description": "The photo"}},
    )
    async def complaint_photo(
        request: Request, rt: RuntimeDep, principal: ApiPrincipal, ticket: str, index: int
    ) -> FileResponse:
        """A complaint photo (audit-logged)."""
        path = await ComplaintWork(rt).photo(ticket, index, principal, ip=client_ip(request))
        return FileResponse(path, headers=PRIVATE_FILE)

    @router.get("/outbox/dead")
    async def dead(
        rt: RuntimeDep,
        principal: ApiPrincipal,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        channel: Annotated[str | None, Query(pattern="^(telegram|whatsapp|webchat)$")] = None,
    ) -> dict[str, Any]:
        """Dead letters, newest first, 50 a page (chat ids masked)."""
        letters, total = await Operations(rt).dead_letters(page=page, channel=channel)
        return {"dead_letters": [dead_letter_dict(d) for d in letters], "total": total, "page": page}

    @router.post("/outbox/{outbox_id}/requeue")
    async def requeue(
        request: Request, rt: RuntimeDep, principal: ApiChanger, outbox_id: int
    ) -> dict[str, Any]:
        """Send a dead letter again (404 when it is not a dead letter)."""
        await Operations(rt).requeue(outbox_id, principal, ip=client_ip(request))
        return {"ok": True, "id": outbox_id}

    @router.get("/demo/permits")
    async def demo_permits(rt: RuntimeDep, principal: ApiPrincipal) -> dict[str, Any]:
        """Demo permits with stage and next stage (409 unless permits.backend is demo)."""
        return {"permits": [p.to_dict() for p in await Operations(rt).demo_permits()]}

    @router.post("/demo/permits/{number}/advance")
    async def demo_advance(
        request: Request, rt: RuntimeDep, principal: ApiChanger, number: str
    ) -> dict[str, Any]:
        """Move a demo permit to its next stage; its subscribers are notified."""
        permit, queued = await Operations(rt).advance(number, principal, ip=client_ip(request))
        return {"ok": True, "number": permit.number, "stage": permit.stage.value, "notified": queued}

    @router.get("/broadcasts")
    async def broadcasts(rt: RuntimeDep, principal: ApiPrincipal) -> dict[str, Any]:
        """The ten newest announcements with their delivery progress (admins)."""
        require_admin(principal)
        return {"broadcasts": [b.to_dict() for b in await Operations(rt).broadcasts()]}

    @router.post("/broadcasts")
    async def broadcast(
        request: Request, rt: RuntimeDep, principal: ApiChanger, body: BroadcastBody
    ) -> dict[str, Any]:
        """Queue an announcement through the outbox (admins)."""
        require_admin(principal)
        queued = await Operations(rt).broadcast(
            principal,
            text=body.text,
            segment=body.segment,
            language=body.language,
            urgent=body.urgent,
            ip=client_ip(request),
        )
        return {"ok": True, "id": queued.id, "recipients": queued.recipients}

    @router.get("/broadcasts/{broadcast_id}")
    async def broadcast_progress(
        rt: RuntimeDep, principal: ApiPrincipal, broadcast_id: int
    ) -> dict[str, Any]:
        """How far one announcement's delivery has come (admins)."""
        require_admin(principal)
        return (await Operations(rt).broadcast_line(broadcast_id)).to_dict()

    return router
