"""Twilio's REST client pointed at ``twilio.api_base_url`` with a timeout, and the errors of sending.

WhatsAppError (a ChannelError of bot.channels.base)
├── SendFailed         Twilio refused the message or could not be reached (code, status, retryable;
│   │                  also the port's SendFailed, permanent when not retryable)
│   └── SendRateLimited    still 429 after the channel's retries (also the port's RateLimited)
└── TemplateRequired   outside the 24-hour window with no approved template (a permanent SendFailed)
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.channels import base
from bot.channels.base import ChannelError

DEFAULT_API_HOST = "api.twilio.com"
ERROR_WINDOW_CLOSED = 63016  # free-form message outside the 24-hour window
RATE_LIMITED_CODES = frozenset({20429, 14107})


class WhatsAppError(ChannelError):
    """Something this channel could not do."""


class SendFailed(WhatsAppError, base.SendFailed):
    """Twilio did not accept a message; ``retryable`` when trying later may work (429, network)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None, retryable: bool):
        base.SendFailed.__init__(self, message, permanent=not retryable)
        self.status = status
        self.code = code
        self.retryable = retryable


class SendRateLimited(SendFailed, base.RateLimited):
    """Twilio still answers 429 (or 20429/14107) after the channel's own retries."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message, status=status, code=code, retryable=True)
        self.retry_after = None


class TemplateRequired(WhatsAppError, base.SendFailed):
    """The resident wrote more than 24 hours ago and no approved template is configured for this kind."""

    def __init__(self, message: str) -> None:
        base.SendFailed.__init__(self, message, permanent=True)


class _TwilioRestClient(Client):  # type: ignore[misc]
    """twilio's Client whose REST host is ``twilio.api_base_url`` (Twilio's own unless configured).

    Every twilio-python request passes through ``Client.get_hostname`` (its edge/region hook), so
    moving the host there covers every resource without touching twilio's URL building.
    """

    def __init__(self, api_base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_base = urlsplit(api_base_url.rstrip("/"))

    def get_hostname(self, uri: str) -> str:
        """The URL for ``uri``: Twilio's (edge and region applied) or the same path on the configured host."""
        uri = super().get_hostname(uri)
        if self.api_base.netloc == DEFAULT_API_HOST and self.api_base.scheme == "https":
            return str(uri)
        parts = urlsplit(uri)
        path = self.api_base.path + parts.path
        return urlunsplit((self.api_base.scheme, self.api_base.netloc, path, parts.query, parts.fragment))


class _TimedAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """AsyncTwilioHttpClient with a default timeout and basic auth sent as a plain header.

    twilio passes ``timeout=None`` to aiohttp (no limit at all) unless told otherwise, and wraps the
    credentials in ``aiohttp.BasicAuth``, which aiohttp 3.14 deprecates; the header is the same bytes.
    """

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (twilio's HttpClient signature)
        allow_redirects: bool = False,
    ) -> Any:
        """One request, bounded by the client's timeout unless the caller gave one."""
        headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
