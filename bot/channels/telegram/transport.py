"""python-telegram-bot's HTTP transport on aiohttp (a Bot API call costs a seventh of httpx's CPU)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

logger = logging.getLogger(__name__)


class AiohttpRequest(BaseRequest):
    """python-telegram-bot's HTTP transport on aiohttp instead of its default httpx.

    Every reply to a Telegram resident is one Bot API call: through httpx it cost about 0.45 ms of
    CPU, through aiohttp 0.06 ms (docs/BENCHMARKS.md), a tenth of the whole turn. python-telegram-bot
    still builds every call and reads every answer (errors, ``retry_after``, objects); only the bytes
    travel differently. Timeouts and connection failures become its ``TimedOut`` / ``NetworkError``,
    as with httpx.
    """

    def __init__(
        self,
        *,
        connection_pool_size: int,
        read_timeout: float | None,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._timeouts = {
            "read": read_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
        }
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout when a call gives none."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the connection pool (in the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One HTTP call: the status and the body (python-telegram-bot reads both)."""
        if self._session is None or self._session.closed:
            await self.initialize()  # like httpx's client, usable before Bot.initialize()
        assert self._session is not None

        def chosen(name: str, given: Any) -> float | None:
            return self._timeouts[name] if given is BaseRequest.DEFAULT_NONE else given  # type: ignore[no-any-return]

        # aiohttp has no write timeout: a stalled upload ends at the read timeout of its answer.
        read, connect, pool = (
            chosen("read", read_timeout),
            chosen("connect", connect_timeout),
            chosen("pool", pool_timeout),
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,  # a free connection
            sock_connect=connect,
            sock_read=read,
        )
        data: Any = None
        if request_data is not None:
            if request_data.contains_files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mime) in request_data.multipart_data.items():
                    form.add_field(name, content, filename=filename, content_type=mime)
                data = form
            else:
                data = request_data.json_parameters
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        # Like httpx's request log; the URL holds the bot token, which the log filter masks.
        logger.debug("Bot API %s %s -> %d", method, url, response.status)
        return response.status, body
