"""What every console page and API route shares: who is calling, rendering, flash messages, labels."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from bot.privacy import neutralise_bidi
from bot.runtime import Runtime
from bot.staff.auth import (
    CSRF_HEADER,
    LoginRequired,
    Principal,
    check_csrf,
    principal_of,
)
from bot.staff.handoffs import StaffDesk
from bot.web.deps import RuntimeDep

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent.parent  # bot/staff: templates/ and static/
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


def wib(value: datetime | None, tz: Any = None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(tz) if tz is not None else value
    return f"{local.day} {MONTHS[local.month - 1]} {local.hour:02d}.{local.minute:02d}"


def duration(minutes: int) -> str:
    if minutes < 1:
        return "< 1 mnt"
    if minutes < 60:
        return f"{minutes} mnt"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} j {rest} mnt" if rest else f"{hours} j"
    days, rest = divmod(minutes, 24 * 60)
    return f"{days} hr {rest // 60} j"


def finalize(value: Any) -> Any:
    """Every ``{{ … }}`` of the console: bidi controls shown as visible marks, whatever the source."""
    if isinstance(value, Markup):
        return Markup(neutralise_bidi(str(value)))  # noqa: S704 - the same markup, marks added
    return neutralise_bidi(value) if isinstance(value, str) else value


class StaffJSONResponse(JSONResponse):
    """JSON of the staff API: bidi controls in any string shown as visible marks (``[U+202E]``)."""

    def render(self, content: Any) -> bytes:
        """The JSON body; a control can only sit inside a string, and its mark is plain ASCII."""
        return neutralise_bidi(super().render(content).decode("utf-8")).encode("utf-8")


templates.env.finalize = finalize
templates.env.filters["duration"] = duration
templates.env.globals.update(
    intent_label=lambda name: INTENT_LABELS.get(name or "", name or "—"),
    reason_label=lambda name: REASON_LABELS.get(name, name),
    channel_label=lambda name: CHANNEL_LABELS.get(name, name),
)


# --- who is calling -------------------------------------------------------------------------------


async def caller(request: Request, rt: Runtime) -> Principal | None:
    desk = StaffDesk(rt)
    async with rt.db.session() as session:
        return await principal_of(request, session, rt.settings, desk.now())


async def page_principal(request: Request, rt: RuntimeDep) -> Principal:
    """The signed-in staff member of a console page (else → the login page)."""
    principal = await caller(request, rt)
    if principal is None:
        raise LoginRequired(signed_out(request))
    return principal


def signed_out(request: Request) -> str:
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
    principal = await caller(request, rt)
    if principal is None:
        raise LoginRequired(signed_out(request))
    return principal


async def api_changer(request: Request, principal: Annotated[Principal, Depends(api_principal)]) -> Principal:
    """The caller of a state-changing API route: a session also needs its CSRF token in a header."""
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]
ApiPrincipal = Annotated[Principal, Depends(api_principal)]
ApiChanger = Annotated[Principal, Depends(api_changer)]


def same_site(url: str) -> str:
    """Only paths of this console as redirect targets (never another site)."""
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
    return path if path.startswith("/staff") and not path.startswith("//") else "/staff"


def render(
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
            "wib": lambda value: wib(value, rt.dispatcher.timezone),
            "wib_iso": lambda text: wib(datetime.fromisoformat(text), rt.dispatcher.timezone),
            **context,
        },
        status_code=status_code,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/staff")
    return response
