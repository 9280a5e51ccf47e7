"""A licensing system's HTTP/JSON API as a :class:`PermitBackend`: a thin client and a mapper.

Everything that differs between systems is configuration (``permits.http.*``): base URL, the auth
header, path templates, where each of our fields sits in their JSON (dotted paths), and how their
status and type words map onto ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from integrations.base import BackendRejected, BadResponse, Changes, Permit, PermitStage
from integrations.resilience import CallObserver, ResilientClient

WIB = ZoneInfo("Asia/Pontianak")

DEFAULT_FIELDS: Mapping[str, str] = {
    "number": "number",
    "permit_type": "type",
    "stage": "status",
    "updated_at": "updated_at",
    "applicant": "applicant",
    "note": "note",
    "office": "office",
}
_ERROR_KEYS = ("error", "errors", "message", "detail")


@dataclass(frozen=True, slots=True)
class HttpPermitConfig:
    """How to talk to one licensing system (built from ``permits.http`` settings)."""

    base_url: str
    auth_header: str = "Authorization"
    auth_value: str | None = None
    get_path: str = "/permits/{number}"
    changes_path: str = "/permits/changes"
    changes_param: str = "since"
    changes_items: str = "items"
    changes_cursor: str = "cursor"
    fields: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0


def dig(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested mappings (None when any step is missing)."""
    current = data
    for part in path.split(".") if path else ():
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def parse_datetime(value: Any, *, default_zone: ZoneInfo = WIB) -> datetime:
    """An aware datetime from ISO 8601 text (``Z`` allowed; no zone means WIB).

    Raises:
        ValueError: not a date-time.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a date-time: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed.astimezone(UTC)


def error_text(data: Any) -> str | None:
    """The message of an error body (``{"error": ...}``, ``{"errors": [...]}``, …), if it is one."""
    if not isinstance(data, Mapping):
        return None
    for key in _ERROR_KEYS:
        value = data.get(key)
        if value:
            if isinstance(value, list):
                return "; ".join(str(v.get("message", v) if isinstance(v, Mapping) else v) for v in value)
            if isinstance(value, Mapping):
                return str(value.get("message") or value)
            return str(value)
    return None


class PermitMapper:
    """Turns a licensing system's JSON record into our :class:`Permit` (and says clearly when it cannot)."""

    def __init__(self, config: HttpPermitConfig, *, backend: str) -> None:
        self.fields = {**DEFAULT_FIELDS, **config.fields}
        self.statuses = {k.strip().lower(): PermitStage(v) for k, v in config.statuses.items()}
        self.types = {k.strip().lower(): v for k, v in config.types.items()}
        self.backend = backend

    def permit(self, record: Any) -> Permit:
        """One permit from one record.

        Raises:
            BackendRejected: the record is an error body.
            BadResponse: a required field is missing or a status is not in the vocabulary.
        """
        if not isinstance(record, Mapping):
            raise BadResponse(
                f"{self.backend}: expected a JSON object, got {type(record).__name__}", backend=self.backend
            )
        number = dig(record, self.fields["number"])
        raw_stage = dig(record, self.fields["stage"])
        if number is None or raw_stage is None:
            message = error_text(record)
            if message:
                raise BackendRejected(f"{self.backend} answered an error: {message}", backend=self.backend)
            missing = self.fields["number"] if number is None else self.fields["stage"]
            raise BadResponse(f"{self.backend}: the answer has no {missing!r} field", backend=self.backend)
        try:
            updated_at = parse_datetime(dig(record, self.fields["updated_at"]))
        except ValueError as exc:
            raise BadResponse(
                f"{self.backend}: field {self.fields['updated_at']!r} is not a date-time ({exc})",
                backend=self.backend,
            ) from None
        raw_type = str(dig(record, self.fields["permit_type"]) or "")
        return Permit(
            number=str(number),
            permit_type=self.types.get(raw_type.strip().lower(), raw_type.strip().lower()),
            stage=self.stage(raw_stage),
            updated_at=updated_at,
            applicant=_text_or_none(dig(record, self.fields["applicant"])),
            note=_text_or_none(dig(record, self.fields["note"])),
            office=_text_or_none(dig(record, self.fields["office"])),
        )

    def stage(self, raw: Any) -> PermitStage:
        """Our stage for their status word (their vocabulary first, then ours as is)."""
        word = str(raw).strip().lower()
        if word in self.statuses:
            return self.statuses[word]
        try:
            return PermitStage(word)
        except ValueError:
            raise BadResponse(
                f"{self.backend}: unknown permit status {raw!r}; map it in permits.http.statuses",
                backend=self.backend,
            ) from None


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class HttpPermitBackend:
    """Permit status from a licensing system over HTTP/JSON, through a resilient client."""

    name = "http-permits"

    def __init__(
        self,
        config: HttpPermitConfig,
        *,
        client: ResilientClient | None = None,
        clock: Callable[[], datetime] | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.config = config
        headers = {"Accept": "application/json"}
        if config.auth_value:
            headers[config.auth_header] = config.auth_value
        self.client = client or ResilientClient(
            name=self.name,
            base_url=config.base_url,
            timeout=config.timeout,
            headers=headers,
            observer=observer,
        )
        self.mapper = PermitMapper(config, backend=self.name)
        self._clock = clock or (lambda: datetime.now(UTC))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    async def get(self, number: str) -> Permit | None:
        """The application with this number, or None when the system does not know it."""
        path = self.config.get_path.format(number=quote(number.strip(), safe=""))
        status, data = await self.client.request_json("GET", path)
        if status == 404:
            return None
        self._raise_for_status(status, data)
        return self.mapper.permit(data)

    async def changes_since(self, cursor: str | None) -> Changes[Permit]:
        """Applications changed after ``cursor`` (their cursor or an ISO time); None starts from now."""
        params = {self.config.changes_param: cursor} if cursor is not None else None
        status, data = await self.client.request_json("GET", self.config.changes_path, params=params)
        self._raise_for_status(status, data)
        if isinstance(data, list):
            records: Any = data
            next_cursor = None
        else:
            records = dig(data, self.config.changes_items)
            next_cursor = dig(data, self.config.changes_cursor)
            if records is None:
                message = error_text(data)
                if message:
                    raise BackendRejected(f"{self.name} answered an error: {message}", backend=self.name)
        if not isinstance(records, list):
            raise BadResponse(
                f"{self.name}: expected a list of changes at {self.config.changes_items!r}", backend=self.name
            )
        permits = [self.mapper.permit(record) for record in records]
        if next_cursor is None:
            newest = max((p.updated_at for p in permits), default=None)
            next_cursor = newest.isoformat() if newest else (cursor or self._clock().isoformat())
        if cursor is None:
            return Changes(items=(), cursor=str(next_cursor))
        return Changes(items=permits, cursor=str(next_cursor))

    def _raise_for_status(self, status: int, data: Any) -> None:
        if 200 <= status < 300:
            return
        message = error_text(data) or f"HTTP {status}"
        raise BackendRejected(
            f"{self.name} refused the request (HTTP {status}): {message}", backend=self.name
        )
