"""``POST /webhooks/telegram``: verify the secret header, parse, acknowledge, process in the background."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from bot.channels.telegram.channel import TelegramChannel
from bot.web.deps import RuntimeDep
from bot.web.http import error_body
from flows.messages import Channel

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret


def telegram_router() -> APIRouter:
    """``POST /webhooks/telegram``: verify the secret header, parse, acknowledge, process in background."""
    router = APIRouter()

    @router.post("/webhooks/telegram", tags=["telegram"], status_code=200, response_class=Response)
    async def telegram_webhook(
        request: Request,
        rt: RuntimeDep,
        secret_token: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> Response:
        """One update from Telegram; 403 without our secret token, 400 when it is not an Update."""
        channel = rt.channels.get(Channel.TELEGRAM)
        if not isinstance(channel, TelegramChannel) or channel.mode != "webhook":
            raise HTTPException(status_code=404)
        if not channel.verify_secret(secret_token):
            client = request.client.host if request.client else "?"
            logger.warning("telegram webhook: wrong or missing secret token from %s; refused", client)
            raise HTTPException(status_code=403)
        update = channel.parse_update(await request.body())
        if update is None:
            return JSONResponse(error_body(400, "invalid_update"), status_code=400)
        channel.accept(update)
        return Response(status_code=200)

    return router
