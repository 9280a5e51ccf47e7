"""The staff console under /staff (server-rendered pages) and its JSON API under /api/staff.

Pages need a session (else → the login page); the API takes the session cookie (with the CSRF token in
``X-CSRF-Token`` for changes) or ``Authorization: Bearer <PONTIBOT_STAFF__API_TOKEN>`` (else → 401).
Every action is audit-logged.

    common.py    who is calling (page, API, API change), rendering, flash messages, labels
    console.py   pages: sign-in, queue, a handoff, dashboard, audit log
    api.py       /api/staff for handoffs
    work.py      pages and API for complaints, dead letters, demo permits, announcements
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bot.staff.auth import IDLE, SESSION_COOKIE, Forbidden, LoginRequired
from bot.staff.handoffs import StaffActionError
from bot.staff.web.api import api_router
from bot.staff.web.common import FLASH_COOKIE, HERE, render, same_site
from bot.staff.web.console import console_router
from bot.staff.web.work import work_api_router, work_router
from bot.web.http import error_body

logger = logging.getLogger(__name__)


def install_staff(app: FastAPI) -> None:
    """Mount the console's static files, pages and API, and how their auth errors are answered."""
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
        return render(request, "forbidden.html", None, status_code=403, message=text)

    @app.exception_handler(StaffActionError)
    async def _action_error(request: Request, exc: StaffActionError) -> Response:
        if request.url.path.startswith("/api/"):
            code = {404: "not_found", 403: "forbidden", 422: "invalid_request"}.get(exc.status, "conflict")
            return JSONResponse(error_body(exc.status, code, message=str(exc)), status_code=exc.status)
        # Back to the conversation or complaint the action was about (else where the form was).
        match = re.match(r"^(/staff/(?:handoffs|complaints)/[^/]+)/", request.url.path)
        back = match.group(1) if match else same_site(request.headers.get("referer") or "/staff")
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            FLASH_COOKIE, quote(str(exc)), max_age=30, httponly=True, samesite="lax", path="/staff"
        )
        return response
