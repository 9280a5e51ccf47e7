"""The console's pages for handoffs (queue, conversation, reply, close), sign-in, dashboard and audit log."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.runtime import Runtime
from bot.staff import charts
from bot.staff.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    client_ip,
    cookie_secure,
    new_token,
    normalize_username,
    require_admin,
    same_token,
    throttle_key,
    token_digest,
    verify_password,
)
from bot.staff.complaint_views import CATEGORY_LABELS
from bot.staff.handoffs import StaffDesk
from bot.staff.web.common import IDEMPOTENCY_PATTERN, INTENT_LABELS, PagePrincipal, render, same_site, wib
from bot.web.deps import RuntimeDep
from storage import staff_repository as staff_repo

logger = logging.getLogger(__name__)


def console_router() -> APIRouter:
    """Server-rendered console pages (Indonesian), usable on a phone."""
    router = APIRouter(prefix="/staff", include_in_schema=False)

    @router.get("/login")
    async def login_page(request: Request, next: str = "/staff") -> HTMLResponse:
        """The sign-in form (with a login CSRF token in a cookie and the form)."""
        return login_form(request, next_url=next)

    @router.post("/login")
    async def login(
        request: Request,
        rt: RuntimeDep,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=256)],
        csrf_token: Annotated[str, Form(max_length=128)] = "",
        next: Annotated[str, Form(max_length=512)] = "/staff",
    ) -> Response:
        """Check the password (throttled per user name and address); on success start a session."""
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie_token or not csrf_token or not same_token(cookie_token, csrf_token):
            return login_form(
                request, next_url=next, error="Formulir kedaluwarsa; silakan coba lagi.", status=403
            )
        # One spelling for the throttle, the lookup and the audit log (" sari" and "SARI" are "sari").
        username = normalize_username(username)
        if not username:
            return login_form(request, next_url=next, error="Isi nama pengguna.", status=422)
        desk = StaffDesk(rt)
        now = desk.now()
        ip = client_ip(request)
        key = throttle_key(username, ip)
        settings = rt.settings.staff
        async with rt.db.session() as session:
            locked_until = await staff_repo.login_lock(session, key=key, now=now)
            if locked_until is not None:
                await staff_repo.add_audit(
                    session,
                    who=username[:64],
                    what="login.blocked",
                    target=f"user:{username[:64]}",
                    ip=ip,
                    now=now,
                )
                until = wib(locked_until, rt.dispatcher.timezone)
                error = f"Terlalu banyak percobaan gagal. Coba lagi setelah {until} WIB."
                return login_form(request, next_url=next, error=error, status=429)
            user = await staff_repo.find_staff_user(session, username=username)
            valid = verify_password(user.password_hash if user else None, password)
            if user is None or not valid or not user.active:
                lock = await staff_repo.record_login_failure(
                    session,
                    key=key,
                    now=now,
                    max_failures=settings.login_max_failures,
                    lock_for=timedelta(minutes=settings.login_lock_minutes),
                )
                await staff_repo.add_audit(
                    session,
                    who=username[:64],
                    what="login.locked" if lock else "login.failed",
                    target=f"user:{username[:64]}",
                    details={"locked_until": lock.isoformat()} if lock else {},
                    ip=ip,
                    now=now,
                )
                error = "Nama pengguna atau kata sandi salah."
                if lock is not None:
                    until = wib(lock, rt.dispatcher.timezone)
                    error = f"Terlalu banyak percobaan gagal. Coba lagi setelah {until} WIB."
                return login_form(request, next_url=next, error=error, status=429 if lock else 401)
            await staff_repo.clear_login_failures(session, key=key)
            token, csrf = new_token(), new_token()
            await staff_repo.create_staff_session(
                session,
                token_hash=token_digest(token),
                user_id=user.id,
                csrf_token=csrf,
                expires_at=now + timedelta(hours=settings.session_hours),
                now=now,
                ip=ip,
                user_agent=request.headers.get("user-agent"),
            )
            user.last_login_at = now
            await staff_repo.add_audit(
                session,
                who=user.username,
                staff_user_id=user.id,
                what="login",
                target=f"user:{user.username}",
                ip=ip,
                now=now,
            )
        response = RedirectResponse(same_site(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=settings.session_hours * 3600,
            httponly=True,
            samesite="lax",
            secure=cookie_secure(rt.settings),
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/staff")
        return response

    @router.post("/logout")
    async def logout(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """End the session."""
        check_csrf(me, csrf_token)
        async with rt.db.session() as session:
            if me.token_hash:
                await staff_repo.delete_staff_session(session, token_hash=me.token_hash)
            await staff_repo.add_audit(
                session, who=me.username, staff_user_id=me.user_id, what="logout", ip=client_ip(request)
            )
        response = RedirectResponse("/staff/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("")
    @router.get("/")
    async def queue_page(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        show: Annotated[str, Query(pattern="^(open|closed)$")] = "open",
    ) -> HTMLResponse:
        """The queue: open handoffs, urgent first then longest waiting (or recently closed ones)."""
        desk = StaffDesk(rt)
        items = await desk.queue(closed=show == "closed")
        if show == "closed":
            items = [i for i in items if i.closed_at is not None][:100]
        return render(request, "queue.html", me, items=items, show=show, nav="queue", refresh=20)

    @router.get("/handoffs/{handoff_id}")
    async def handoff_page(
        request: Request, rt: RuntimeDep, me: PagePrincipal, handoff_id: int, reveal: bool = False
    ) -> HTMLResponse:
        """One conversation: transcript, collected data, reply box, take/assign, close with a note."""
        desk = StaffDesk(rt)
        detail = await desk.detail(handoff_id, me, reveal=reveal)
        names = await desk.staff_names() if me.is_admin else []
        async with rt.db.session() as session:
            handoff = await staff_repo.get_handoff(session, handoff_id=handoff_id)
        may_reveal = handoff is not None and desk.may_reveal(me, handoff)
        return render(
            request,
            "handoff.html",
            me,
            d=detail,
            names=names,
            may_reveal=may_reveal,
            reply_key=uuid.uuid4().hex,
            nav="queue",
            refresh=0 if reveal else 15,
        )

    @router.post("/handoffs/{handoff_id}/take")
    async def take(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        handoff_id: int,
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        """Assign the handoff to me."""
        check_csrf(me, csrf_token)
        await StaffDesk(rt).take(handoff_id, me, ip=client_ip(request))
        return RedirectResponse(f"/staff/handoffs/{handoff_id}", status_code=303)

    @router.post("/handoffs/{handoff_id}/assign")
    async def assign(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        handoff_id: int,
        username: Annotated[str, Form(max_length=64)],
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        """Assign the handoff to a colleague (admins)."""
        check_csrf(me, csrf_token)
        require_admin(me)
        await StaffDesk(rt).assign(handoff_id, username, me, ip=client_ip(request))
        return RedirectResponse(f"/staff/handoffs/{handoff_id}", status_code=303)

    @router.post("/handoffs/{handoff_id}/reply")
    async def reply(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        handoff_id: int,
        text: Annotated[str, Form(max_length=4000)],
        csrf_token: Annotated[str, Form()] = "",
        idempotency_key: Annotated[str, Form(pattern=IDEMPOTENCY_PATTERN)] = "",
    ) -> Response:
        """Send a message to the resident through their own channel."""
        check_csrf(me, csrf_token)
        await StaffDesk(rt).reply(
            handoff_id, me, text, idempotency_key=idempotency_key or None, ip=client_ip(request)
        )
        return RedirectResponse(f"/staff/handoffs/{handoff_id}#reply", status_code=303)

    @router.post("/handoffs/{handoff_id}/close")
    async def close(
        request: Request,
        rt: RuntimeDep,
        me: PagePrincipal,
        handoff_id: int,
        note: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        """Close with a note; the resident is thanked and asked for a 1-5 rating."""
        check_csrf(me, csrf_token)
        await StaffDesk(rt).close(handoff_id, me, note, ip=client_ip(request))
        return RedirectResponse("/staff", status_code=303)

    @router.get("/dashboard")
    async def dashboard_page(request: Request, rt: RuntimeDep, me: PagePrincipal) -> HTMLResponse:
        """Messages per day, top intents, fallback rate, open handoffs, complaint SLA breaches,
        satisfaction, as inline SVG."""
        board = await StaffDesk(rt).dashboard()
        per_day = [(f"{d.day}/{d.month}", n) for d, n in board.messages_per_day]
        intents = [(INTENT_LABELS.get(i, i), n) for i, n in board.top_intents]
        ratings = [(f"{s} ★", n) for s, n in sorted(board.ratings.items(), reverse=True)]
        breaches = [(CATEGORY_LABELS.get(c, c), n) for c, n in board.sla_breaches]
        return render(
            request,
            "dashboard.html",
            me,
            board=board,
            messages_chart=charts.column_chart(per_day, label="Pesan warga per hari"),
            intents_chart=charts.bar_chart(intents, label="Pertanyaan terbanyak"),
            ratings_chart=charts.bar_chart(ratings, label="Penilaian warga"),
            breaches_chart=charts.bar_chart(breaches, label="Pengaduan lewat tenggat per kategori"),
            nav="dashboard",
        )

    @router.get("/audit")
    async def audit_page(request: Request, rt: RuntimeDep, me: PagePrincipal) -> HTMLResponse:
        """The audit log (admins)."""
        require_admin(me)
        entries = await StaffDesk(rt).audit_log(limit=300)
        return render(request, "audit.html", me, entries=entries, nav="audit")

    return router


def login_form(
    request: Request, *, next_url: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = new_token()
    response = render(
        request,
        "login.html",
        None,
        login_csrf=token,
        next_url=same_site(next_url),
        error=error,
        status_code=status,
    )
    rt: Runtime = request.app.state.runtime
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(rt.settings),
        path="/staff",
    )
    return response
