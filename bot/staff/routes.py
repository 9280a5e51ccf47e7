"""The staff console under /staff (server-rendered pages) and its JSON API under /api/staff.

Pages need a session (else → the login page); the API takes the session cookie (with the CSRF token in
``X-CSRF-Token`` for changes) or ``Authorization: Bearer <PONTIBOT_STAFF__API_TOKEN>`` (else → 401).
Every action is audit-logged.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field

from bot.privacy import neutralise_bidi
from bot.runtime import Runtime
from bot.staff import charts
from bot.staff.auth import (
    CSRF_HEADER,
    IDLE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    LoginRequired,
    Principal,
    check_csrf,
    client_ip,
    cookie_secure,
    new_token,
    normalize_username,
    principal_of,
    require_admin,
    same_token,
    throttle_key,
    token_digest,
    verify_password,
)
from bot.staff.complaints import CATEGORY_LABELS
from bot.staff.handoffs import StaffActionError, StaffDesk
from bot.web.deps import RuntimeDep
from bot.web.http import error_body
from storage import staff_repository as staff_repo

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
FLASH_COOKIE = "pontibot_staff_flash"
IDEMPOTENCY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

INTENT_LABELS = {
    "greet": "Sapaan",
    "goodbye": "Pamit",
    "thank_you": "Terima kasih",
    "affirm": "Ya",
    "deny": "Tidak",
    "help": "Menu / bantuan",
    "cancel": "Batal",
    "permit_status": "Status izin",
    "document_requirements": "Syarat dokumen",
    "service_fee": "Biaya layanan",
    "processing_time": "Lama proses",
    "office_hours": "Jam kantor",
    "office_location": "Lokasi kantor",
    "file_complaint": "Pengaduan baru",
    "complaint_status": "Status pengaduan",
    "talk_to_staff": "Minta petugas",
    "subscribe_updates": "Langganan kabar",
    "unsubscribe": "Berhenti langganan",
    "emergency": "Darurat",
    "bot_challenge": "Tanya bot",
    "change_language": "Ganti bahasa",
    "out_of_scope": "Di luar layanan",
    "nlu_fallback": "Tidak dipahami",
}
REASON_LABELS = {"requested": "Diminta warga", "fallback": "Bot tidak paham", "emergency": "Darurat"}
CHANNEL_LABELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat", "console": "Konsol"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")


# --- template helpers -----------------------------------------------------------------------------


def _wib(value: datetime | None, tz: Any = None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(tz) if tz is not None else value
    return f"{local.day} {MONTHS[local.month - 1]} {local.hour:02d}.{local.minute:02d}"


def _duration(minutes: int) -> str:
    if minutes < 1:
        return "< 1 mnt"
    if minutes < 60:
        return f"{minutes} mnt"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} j {rest} mnt" if rest else f"{hours} j"
    days, rest = divmod(minutes, 24 * 60)
    return f"{days} hr {rest // 60} j"


def _finalize(value: Any) -> Any:
    """Every ``{{ … }}`` of the console: bidi controls shown as visible marks, whatever the source."""
    if isinstance(value, Markup):
        return Markup(neutralise_bidi(str(value)))  # noqa: S704 - the same markup, marks added
    return neutralise_bidi(value) if isinstance(value, str) else value


class StaffJSONResponse(JSONResponse):
    """JSON of the staff API: bidi controls in any string shown as visible marks (``[U+202E]``)."""

    def render(self, content: Any) -> bytes:
        """The JSON body; a control can only sit inside a string, and its mark is plain ASCII."""
        return neutralise_bidi(super().render(content).decode("utf-8")).encode("utf-8")


templates.env.finalize = _finalize
templates.env.filters["duration"] = _duration
templates.env.globals.update(
    intent_label=lambda name: INTENT_LABELS.get(name or "", name or "—"),
    reason_label=lambda name: REASON_LABELS.get(name, name),
    channel_label=lambda name: CHANNEL_LABELS.get(name, name),
)


# --- who is calling -------------------------------------------------------------------------------


async def _caller(request: Request, rt: Runtime) -> Principal | None:
    desk = StaffDesk(rt)
    async with rt.db.session() as session:
        return await principal_of(request, session, rt.settings, desk.now())


async def page_principal(request: Request, rt: RuntimeDep) -> Principal:
    """The signed-in staff member of a console page (else → the login page)."""
    principal = await _caller(request, rt)
    if principal is None:
        raise LoginRequired(_signed_out(request))
    return principal


def _signed_out(request: Request) -> str:
    """Why the request's session cookie no longer signs in (:data:`IDLE`), or ""."""
    return str(getattr(request.state, "staff_signed_out", ""))


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="StaffApiToken",
    description="PONTIBOT_STAFF__API_TOKEN (or the console's session cookie)",
)


async def api_principal(
    request: Request,
    rt: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller of an API route: bearer token or session cookie (else → 401)."""
    principal = await _caller(request, rt)
    if principal is None:
        raise LoginRequired(_signed_out(request))
    return principal


async def api_changer(request: Request, principal: Annotated[Principal, Depends(api_principal)]) -> Principal:
    """The caller of a state-changing API route: a session also needs its CSRF token in a header."""
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]
ApiPrincipal = Annotated[Principal, Depends(api_principal)]
ApiChanger = Annotated[Principal, Depends(api_changer)]


def install_staff(app: FastAPI) -> None:
    """Mount the console's static files, pages and API, and how their auth errors are answered."""
    # Imported here: those routes use this module's helpers and dependencies.
    from bot.staff.work_routes import work_api_router, work_router

    app.mount("/staff/static", StaticFiles(directory=HERE / "static"), name="staff-static")
    app.include_router(console_router())
    app.include_router(work_router())
    app.include_router(api_router())
    app.include_router(work_api_router())

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                error_body(401, "unauthorized"), status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/staff/login?next={quote(target)}", status_code=303)
        if str(exc) == IDLE:
            minutes = request.app.state.runtime.settings.staff.idle_minutes
            message = (
                f"Sesi Anda berakhir karena tidak ada aktivitas selama {minutes} menit. Silakan masuk lagi."
            )
            response.set_cookie(
                FLASH_COOKIE, quote(message), max_age=30, httponly=True, samesite="lax", path="/staff"
            )
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        message = "Token CSRF tidak valid; muat ulang halaman." if str(exc) == "csrf" else None
        if request.url.path.startswith("/api/"):
            return JSONResponse(error_body(403, "forbidden", message=message), status_code=403)
        text = message or "Akun Anda tidak punya akses ke halaman ini."
        return _render(request, "forbidden.html", None, status_code=403, message=text)

    @app.exception_handler(StaffActionError)
    async def _action_error(request: Request, exc: StaffActionError) -> Response:
        if request.url.path.startswith("/api/"):
            code = {404: "not_found", 403: "forbidden", 422: "invalid_request"}.get(exc.status, "conflict")
            return JSONResponse(error_body(exc.status, code, message=str(exc)), status_code=exc.status)
        # Back to the conversation or complaint the action was about (else where the form was).
        match = re.match(r"^(/staff/(?:handoffs|complaints)/[^/]+)/", request.url.path)
        back = match.group(1) if match else _same_site(request.headers.get("referer") or "/staff")
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            FLASH_COOKIE, quote(str(exc)), max_age=30, httponly=True, samesite="lax", path="/staff"
        )
        return response


def _same_site(url: str) -> str:
    """Only paths of this console as redirect targets (never another site)."""
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
    return path if path.startswith("/staff") and not path.startswith("//") else "/staff"


def _render(
    request: Request, name: str, principal: Principal | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    rt: Runtime = request.app.state.runtime
    flash = request.cookies.get(FLASH_COOKIE)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "me": principal,
            "csrf": principal.csrf_token if principal else None,
            "flash": unquote(flash) if flash else None,
            "wib": lambda value: _wib(value, rt.dispatcher.timezone),
            "wib_iso": lambda text: _wib(datetime.fromisoformat(text), rt.dispatcher.timezone),
            **context,
        },
        status_code=status_code,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/staff")
    return response


# --- pages ----------------------------------------------------------------------------------------


def console_router() -> APIRouter:
    """Server-rendered console pages (Indonesian), usable on a phone."""
    router = APIRouter(prefix="/staff", include_in_schema=False)

    @router.get("/login")
    async def login_page(request: Request, next: str = "/staff") -> HTMLResponse:
        """The sign-in form (with a login CSRF token in a cookie and the form)."""
        return _login_form(request, next_url=next)

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
            return _login_form(
                request, next_url=next, error="Formulir kedaluwarsa; silakan coba lagi.", status=403
            )
        # One spelling for the throttle, the lookup and the audit log (" sari" and "SARI" are "sari").
        username = normalize_username(username)
        if not username:
            return _login_form(request, next_url=next, error="Isi nama pengguna.", status=422)
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
                until = _wib(locked_until, rt.dispatcher.timezone)
                error = f"Terlalu banyak percobaan gagal. Coba lagi setelah {until} WIB."
                return _login_form(request, next_url=next, error=error, status=429)
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
                    until = _wib(lock, rt.dispatcher.timezone)
                    error = f"Terlalu banyak percobaan gagal. Coba lagi setelah {until} WIB."
                return _login_form(request, next_url=next, error=error, status=429 if lock else 401)
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
        response = RedirectResponse(_same_site(next), status_code=303)
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
        return _render(request, "queue.html", me, items=items, show=show, nav="queue", refresh=20)

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
        return _render(
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
        return _render(
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
        return _render(request, "audit.html", me, entries=entries, nav="audit")

    return router


def _login_form(
    request: Request, *, next_url: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = new_token()
    response = _render(
        request,
        "login.html",
        None,
        login_csrf=token,
        next_url=_same_site(next_url),
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


# --- JSON API -------------------------------------------------------------------------------------


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
