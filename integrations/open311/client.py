"""A thin client of the Open311 GeoReport v2 wire format (JSON variant), nothing more.

Endpoints: ``GET services.json``, ``POST requests.json`` (form-encoded), ``GET requests/{id}.json``,
``GET requests.json`` (by date, status, service), ``GET tokens/{token}.json`` (batch services).
Errors in the spec's shape ``[{"code": 400, "description": "..."}]`` become :class:`Open311Error`
(a :class:`BackendRejected`), whatever the HTTP status they come with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from integrations.base import BackendRejected, BadResponse
from integrations.resilience import CallObserver, ResilientClient

NAME = "open311"


class Open311Error(BackendRejected):
    """The server answered with the spec's error array (bad api_key, unknown service_code, …)."""

    def __init__(self, message: str, *, errors: Sequence[tuple[str, str]], status: int) -> None:
        super().__init__(message, backend=NAME)
        self.errors = tuple(errors)
        self.status = status


def _error_array(data: Any) -> list[tuple[str, str]] | None:
    """The (code, description) pairs when ``data`` is an Open311 error answer."""
    items = data if isinstance(data, list) else [data] if isinstance(data, Mapping) else None
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    if all("description" in item and "code" in item for item in items) and not any(
        key in item for item in items for key in ("service_request_id", "token", "service_code")
    ):
        return [(str(item["code"]), str(item["description"])) for item in items]
    return None


def open311_time(moment: datetime) -> str:
    """A date-time in the W3C format the spec uses (``2026-11-22T09:30:00+07:00``)."""
    return moment.isoformat(timespec="seconds")


class Open311Client:
    """GeoReport v2 calls over a resilient HTTP client; answers are the spec's plain JSON objects."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        jurisdiction_id: str | None = None,
        timeout: float = 10.0,
        client: ResilientClient | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.api_key = api_key
        self.jurisdiction_id = jurisdiction_id
        self.http = client or ResilientClient(
            name=NAME,
            base_url=base_url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            observer=observer,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    def _params(self, **extra: Any) -> dict[str, Any]:
        params = {k: v for k, v in extra.items() if v is not None}
        if self.jurisdiction_id:
            params["jurisdiction_id"] = self.jurisdiction_id
        return params

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        missing_is_none: bool = False,
    ) -> Any:
        status, body = await self.http.request_json(method, path, params=params, data=data)
        errors = _error_array(body)
        if status == 404 and missing_is_none:
            return None
        if errors is not None:
            text = "; ".join(f"{code} {description}" for code, description in errors)
            raise Open311Error(
                f"Open311 refused the request (HTTP {status}): {text}", errors=errors, status=status
            )
        if not 200 <= status < 300:
            raise BackendRejected(f"Open311 refused the request (HTTP {status})", backend=NAME)
        return body

    async def services(self) -> list[dict[str, Any]]:
        """``GET services.json``: the service types the server accepts."""
        return _list_of_objects(
            await self._call("GET", "services.json", params=self._params()), "services.json"
        )

    async def create_request(
        self,
        *,
        service_code: str,
        description: str,
        lat: float | None = None,
        lon: float | None = None,
        address: str | None = None,
        media_url: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``POST requests.json``: the first answer object (``service_request_id`` or ``token``)."""
        if lat is None or lon is None:
            if not address:
                raise BackendRejected("Open311 needs lat/long or an address_string", backend=NAME)
            lat = lon = None
        form = self._params(
            api_key=self.api_key,
            service_code=service_code,
            description=description,
            lat=None if lat is None else f"{lat:.7f}",
            long=None if lon is None else f"{lon:.7f}",
            address_string=address,
            media_url=media_url,
        )
        for code, value in (attributes or {}).items():
            form[f"attribute[{code}]"] = value
        answer = _list_of_objects(await self._call("POST", "requests.json", data=form), "requests.json")
        if not answer:
            raise BadResponse("Open311 answered an empty list to POST requests.json", backend=NAME)
        first = answer[0]
        if not first.get("service_request_id") and not first.get("token"):
            raise BadResponse(
                "Open311 answered neither a service_request_id nor a token to POST requests.json",
                backend=NAME,
            )
        return first

    async def request(self, service_request_id: str) -> dict[str, Any] | None:
        """``GET requests/{id}.json``: one service request, or None when the server does not know it."""
        path = f"requests/{quote(service_request_id, safe='')}.json"
        body = await self._call("GET", path, params=self._params(), missing_is_none=True)
        if body is None:
            return None
        items = _list_of_objects(body, path)
        return items[0] if items else None

    async def requests(
        self,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        status: str | None = None,
        service_code: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET requests.json`` filtered by date range, status and service."""
        params = self._params(
            start_date=open311_time(start_date) if start_date else None,
            end_date=open311_time(end_date) if end_date else None,
            status=status,
            service_code=service_code,
        )
        return _list_of_objects(await self._call("GET", "requests.json", params=params), "requests.json")

    async def token(self, token: str) -> dict[str, Any] | None:
        """``GET tokens/{token}.json``: the request a token became (no ``service_request_id``: not ready)."""
        path = f"tokens/{quote(token, safe='')}.json"
        body = await self._call("GET", path, params=self._params(), missing_is_none=True)
        if body is None:
            return None
        items = _list_of_objects(body, path)
        return items[0] if items else None


def _list_of_objects(body: Any, what: str) -> list[dict[str, Any]]:
    if isinstance(body, Mapping):
        body = [body]
    if not isinstance(body, list) or not all(isinstance(item, Mapping) for item in body):
        raise BadResponse(f"Open311 {what}: expected a JSON array of objects", backend=NAME)
    return [dict(item) for item in body]
