"""Twilio's REST client pointed at ``twilio.api_base_url`` with a timeout.

Its own module because twilio.rest (and requests under it) costs ~6 MB and ~0.1 s: the WhatsApp channel
imports it when it first sends, so a deployment without WhatsApp never loads it.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

DEFAULT_API_HOST = "api.twilio.com"


class TwilioRestClient(Client):  # type: ignore[misc]
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


class TimedAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
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
