"""Twilio's webhooks: ``POST /webhooks/whatsapp`` and ``/webhooks/whatsapp/status``.

Each is verified with twilio's ``RequestValidator`` against the URL Twilio signed (``twilio.webhook_url``)
before the form is used, answered at once with empty TwiML, and processed in the background.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.channels.whatsapp.inbound import BadWebhook, parse_inbound, parse_status
from bot.web.deps import RuntimeDep
from flows.messages import Channel

logger = logging.getLogger(__name__)

MAX_FORM_FIELDS = 200


def signed_url(request: Request, configured: str | None) -> str:
    """The URL Twilio signed: the configured public one, else the one the request arrived at."""
    return configured or str(request.url)


async def verified_form(
    request: Request, validator: RequestValidator, *, signed_url: str
) -> ImmutableMultiDict[str, str]:
    """The form of a request carrying a valid ``X-Twilio-Signature``; 403 otherwise (body not logged)."""
    signature = request.headers.get("X-Twilio-Signature")
    client = request.client.host if request.client else "?"
    if not signature:
        logger.warning(
            "whatsapp webhook refused: no X-Twilio-Signature (path=%s from %s)", request.url.path, client
        )
        raise HTTPException(403, "Akses ditolak: tanda tangan Twilio tidak ada.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Expected application/x-www-form-urlencoded (a Twilio webhook).")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        logger.warning(
            "whatsapp webhook refused: unreadable form (path=%s from %s)", request.url.path, client
        )
        raise HTTPException(400, "The form body cannot be read.") from None
    form = ImmutableMultiDict(pairs)
    if not validator.validate(signed_url, form, signature):
        logger.warning(
            "whatsapp webhook refused: invalid X-Twilio-Signature (path=%s from %s)",
            request.url.path,
            client,
        )
        raise HTTPException(403, "Akses ditolak: tanda tangan Twilio tidak cocok.")
    return form


def twiml_ack() -> Response:
    """Empty TwiML: "received, no reply here" (replies go out through the REST API)."""
    return Response(str(MessagingResponse().to_xml()), media_type="text/xml")


def _channel_of(rt: RuntimeDep) -> WhatsAppChannel:
    channel = rt.channels.get(Channel.WHATSAPP)
    if not isinstance(channel, WhatsAppChannel):
        raise HTTPException(404, "WhatsApp is not configured on this server.")
    return channel


def whatsapp_router() -> APIRouter:
    """Twilio's webhooks: inbound messages and message status callbacks."""
    router = APIRouter(tags=["whatsapp"])

    @router.post("/webhooks/whatsapp")
    async def inbound(request: Request, rt: RuntimeDep) -> Response:
        """Verify the signature, acknowledge with empty TwiML, process the message in the background."""
        channel = _channel_of(rt)
        form = await verified_form(
            request, channel.validator, signed_url=signed_url(request, channel.webhook_url)
        )
        try:
            message = parse_inbound(form)
        except BadWebhook as exc:
            logger.warning("whatsapp webhook refused: %s", exc)
            raise HTTPException(400, f"Not a usable WhatsApp message: {exc}.") from None
        channel.accept(message)
        return twiml_ack()

    @router.post("/webhooks/whatsapp/status")
    async def status(request: Request, rt: RuntimeDep) -> Response:
        """Verify the signature, store the delivery status of an outbox message (unknown SIDs ignored)."""
        channel = _channel_of(rt)
        form = await verified_form(
            request, channel.validator, signed_url=signed_url(request, channel.status_url)
        )
        try:
            update = parse_status(form)
        except BadWebhook as exc:
            logger.warning("whatsapp status callback refused: %s", exc)
            raise HTTPException(400, f"Not a usable status callback: {exc}.") from None
        await channel.record_status(update)
        return twiml_ack()

    return router
