"""The booth screen ``/booth``: live counters, a large QR code, and a staff-only demo-permit control."""

from __future__ import annotations

import io
import logging
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from bot.booth.stats import booth_stats
from bot.runtime import Runtime
from bot.staff.auth import Principal, check_csrf, client_ip, principal_of
from bot.staff.handoffs import StaffActionError
from bot.staff.operations import Operations
from bot.web import TEMPLATES
from bot.web.deps import RuntimeDep
from flows.texts import LANGUAGES
from integrations.base import IntegrationError
from storage.types import utcnow

logger = logging.getLogger(__name__)
FLASH_DONE = "advance_done"  # message keys the screen shows (booth.<key> in flows/texts)
FLASH_FAILED = "advance_failed"


def qr_svg(url: str) -> str:
    """An inline SVG QR code (no image request, sharp on any screen)."""
    import qrcode.image.svg  # deferred, with the poster's PIL: only the booth screen needs them

    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=20, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg") :]


async def _stats_json(rt: Runtime, lang: str) -> dict[str, Any]:
    async with rt.db.session() as session:
        stats = await booth_stats(session, now=utcnow(), timezone=ZoneInfo(rt.settings.timezone))
    return {
        "visitors": stats.visitors,
        "conversations": stats.conversations,
        "complaints": stats.complaints,
        "top_questions": [
            {"intent": intent, "label": rt.texts.render(lang, f"booth.intent.{intent}"), "count": n}
            for intent, n in stats.top_questions
        ],
    }


async def _flash_text(rt: Runtime, lang: str, key: str, number: str) -> str | None:
    """The text of a known message key about a demo permit that exists, else nothing.

    The address only names the message and the permit; every word shown comes from the texts and the
    database, so a link cannot put its own words on the booth's screen.
    """
    if key not in (FLASH_DONE, FLASH_FAILED) or not number or rt.backends.demo_permits is None:
        return None
    permit = await rt.backends.demo_permits.get(number[:32])
    if permit is None:
        return None
    return rt.texts.render(lang, f"booth.{key}", number=permit.number, stage=permit.stage.value)


async def _staff(request: Request, rt: Runtime) -> Principal | None:
    async with rt.db.session() as session:
        return await principal_of(request, session, rt.settings, utcnow())


def booth_router() -> APIRouter:
    """Routes of the booth screen."""
    router = APIRouter(prefix="/booth", include_in_schema=False)

    @router.get("")
    async def screen(
        request: Request, rt: RuntimeDep, lang: str = "id", flash: str = "", number: str = ""
    ) -> HTMLResponse:
        """The booth screen (refreshes its counters by itself); ``flash`` is a message key, never text."""
        chosen = lang if lang in LANGUAGES else "id"
        staff = await _staff(request, rt)
        permits = await rt.backends.demo_permits.all() if staff and rt.backends.demo_permits else []
        from bot.booth.poster import booth_webchat_url  # deferred: it brings PIL and qrcode

        url = booth_webchat_url(rt.settings)
        html = TEMPLATES.get_template("booth.html").render(
            lang=chosen,
            t=rt.texts.section(chosen, "booth"),
            url=url,
            qr=qr_svg(url),
            stats=await _stats_json(rt, chosen),
            staff=staff,
            permits=permits,
            flash=await _flash_text(rt, chosen, flash, number),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @router.get("/stats")
    async def stats(rt: RuntimeDep, lang: str = "id") -> JSONResponse:
        """Today's counters as JSON (no personal data)."""
        return JSONResponse(await _stats_json(rt, lang if lang in LANGUAGES else "id"))

    @router.post("/advance")
    async def advance(
        request: Request,
        rt: RuntimeDep,
        number: Annotated[str, Form(max_length=32)],
        csrf_token: Annotated[str, Form(max_length=128)] = "",
        lang: Annotated[str, Form(max_length=2)] = "id",
    ) -> RedirectResponse:
        """Move a demo permit on (staff only); its subscribers get their push on the spot."""
        staff = await _staff(request, rt)
        if staff is None:
            return RedirectResponse("/staff/login?next=/booth", status_code=303)
        check_csrf(staff, csrf_token)
        chosen = lang if lang in LANGUAGES else "id"
        try:
            permit, _ = await Operations(rt).advance(number, staff, ip=client_ip(request))
            flash, number = FLASH_DONE, permit.number
        except (StaffActionError, IntegrationError) as exc:
            logger.info("booth: demo permit %s not advanced: %s", number[:32], exc)
            flash = FLASH_FAILED
        query = urlencode({"lang": chosen, "flash": flash, "number": number})
        return RedirectResponse(f"/booth?{query}", status_code=303)

    return router
