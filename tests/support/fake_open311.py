"""A fake Open311 GeoReport v2 server (JSON) on 127.0.0.1, reusable by any test.

    fake = FakeOpen311().start()          # fake.url is the endpoint (…/open311/v2)
    fake.fail_next(503, times=3)          # inject failures (or an HTML page, invalid JSON, …)
    fake.stop(); fake.start()             # the server goes away and comes back on the same port
    fake.requests_to("POST", "requests.json")   # what it received
    fake.set_status(id, "closed", "Sudah diperbaiki")

It checks what a real server checks: api_key, service_code, jurisdiction_id, a location, and answers
errors in the spec's shape ``[{"code": …, "description": …}]``. ``batch=True`` answers POSTs with a token
that resolves to a service_request_id after ``token_delay_polls`` polls of ``tokens/{token}.json``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.fake_http import Answer, FakeServer, Received

PREFIX = "/open311/v2"
SERVICES = {
    "JLN-01": "Jalan rusak",
    "PJU-02": "Lampu jalan mati",
    "SMP-03": "Sampah",
    "DRN-04": "Drainase / banjir",
    "LN-99": "Lainnya",
}
SERVICE_CODES = {
    "road_damage": "JLN-01",
    "street_light": "PJU-02",
    "garbage": "SMP-03",
    "drainage_flood": "DRN-04",
    "other": "LN-99",
}
API_KEY = "open311-test-key"


def _error(status: int, description: str) -> Answer:
    return Answer.json(status, [{"code": status, "description": description}])


def _w3c(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class FakeOpen311:
    """State and behaviour of one Open311 server; ``server`` does the HTTP."""

    api_key: str = API_KEY
    jurisdiction_id: str | None = None
    batch: bool = False
    token_delay_polls: int = 0
    now: Any = None  # callable returning an aware datetime; defaults to the wall clock
    server: FakeServer = field(default_factory=FakeServer)
    service_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def __post_init__(self) -> None:
        s = self.server
        s.routes[("GET", f"{PREFIX}/services.json")] = self._services
        s.routes[("POST", f"{PREFIX}/requests.json")] = self._create
        s.routes[("GET", f"{PREFIX}/requests.json")] = self._search
        s.prefix_routes.append(("GET", f"{PREFIX}/requests/", self._one))
        s.prefix_routes.append(("GET", f"{PREFIX}/tokens/", self._token))

    # -- control ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.server.base}{PREFIX}"

    def start(self) -> FakeOpen311:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def fail_next(self, status: int = 503, body: bytes | str = b"", **kwargs: Any) -> None:
        self.server.fail_next(status, body, **kwargs)

    def requests_to(self, method: str, path_end: str) -> list[Received]:
        return self.server.requests_to(method, path_end)

    def clock(self) -> datetime:
        return self.now() if self.now is not None else datetime.now(UTC)

    def add_request(
        self,
        *,
        service_code: str,
        lat: float | None,
        lon: float | None,
        description: str = "",
        status: str = "open",
        requested: datetime | None = None,
    ) -> str:
        """A request filed by someone else (another channel of the city)."""
        when = requested or self.clock()
        request_id = str(next(self._ids))
        self.service_requests[request_id] = self._record(
            request_id, service_code, description, lat, lon, None, when
        )
        self.service_requests[request_id]["status"] = status
        return request_id

    def set_status(
        self, request_id: str, status: str, notes: str | None = None, *, at: datetime | None = None
    ) -> None:
        record = self.service_requests[request_id]
        record["status"] = status
        record["status_notes"] = notes
        record["updated_datetime"] = _w3c(at or self.clock())

    # -- endpoints -------------------------------------------------------------------------------

    def _check_jurisdiction(self, values: dict[str, str]) -> Answer | None:
        if self.jurisdiction_id and values.get("jurisdiction_id") != self.jurisdiction_id:
            return _error(404, "jurisdiction_id not found")
        return None

    def _services(self, req: Received) -> Answer:
        if bad := self._check_jurisdiction(req.query):
            return bad
        return Answer.json(
            200,
            [
                {
                    "service_code": code,
                    "service_name": name,
                    "description": name,
                    "metadata": False,
                    "type": "realtime",
                    "keywords": "",
                    "group": "Pengaduan",
                }
                for code, name in SERVICES.items()
            ],
        )

    def _record(
        self,
        request_id: str,
        service_code: str,
        description: str,
        lat: float | None,
        lon: float | None,
        address: str | None,
        when: datetime,
    ) -> dict[str, Any]:
        return {
            "service_request_id": request_id,
            "status": "open",
            "status_notes": None,
            "service_name": SERVICES[service_code],
            "service_code": service_code,
            "description": description,
            "agency_responsible": "Pemerintah Kota Pontianak",
            "service_notice": "Ditangani dalam 5 hari kerja",
            "requested_datetime": _w3c(when),
            "updated_datetime": _w3c(when),
            "expected_datetime": _w3c(when + timedelta(days=7)),
            "address": address,
            "address_id": None,
            "zipcode": None,
            "lat": lat,
            "long": lon,
            "media_url": None,
        }

    def _create(self, req: Received) -> Answer:
        form = req.form
        if form.get("api_key") != self.api_key:
            return _error(403, "Invalid api_key received")
        if bad := self._check_jurisdiction(form):
            return bad
        code = form.get("service_code", "")
        if code not in SERVICES:
            return _error(400, f"service_code {code!r} not found")
        has_point = bool(form.get("lat")) and bool(form.get("long"))
        if not has_point and not form.get("address_string"):
            return _error(400, "lat/long, address_string, or address_id required")
        request_id = str(next(self._ids))
        record = self._record(
            request_id,
            code,
            form.get("description", ""),
            float(form["lat"]) if has_point else None,
            float(form["long"]) if has_point else None,
            form.get("address_string"),
            self.clock(),
        )
        record["media_url"] = form.get("media_url")
        self.service_requests[request_id] = record
        if self.batch:
            token = f"tok-{request_id}"
            self.tokens[token] = {"request_id": request_id, "polls": 0}
            return Answer.json(201, [{"token": token}])
        return Answer.json(
            201, [{"service_request_id": request_id, "service_notice": record["service_notice"]}]
        )

    def _one(self, req: Received) -> Answer:
        if bad := self._check_jurisdiction(req.query):
            return bad
        request_id = req.path.removeprefix(f"{PREFIX}/requests/").removesuffix(".json")
        record = self.service_requests.get(request_id)
        if record is None:
            return _error(404, f"service_request_id {request_id} not found")
        return Answer.json(200, [record])

    def _search(self, req: Received) -> Answer:
        if bad := self._check_jurisdiction(req.query):
            return bad
        q = req.query
        records = list(self.service_requests.values())
        if "start_date" in q:
            start = datetime.fromisoformat(q["start_date"].replace("Z", "+00:00"))
            records = [
                r
                for r in records
                if datetime.fromisoformat(r["requested_datetime"].replace("Z", "+00:00")) >= start
            ]
        if "end_date" in q:
            end = datetime.fromisoformat(q["end_date"].replace("Z", "+00:00"))
            records = [
                r
                for r in records
                if datetime.fromisoformat(r["requested_datetime"].replace("Z", "+00:00")) <= end
            ]
        if "status" in q:
            wanted = set(q["status"].split(","))
            records = [r for r in records if r["status"] in wanted]
        if "service_code" in q:
            codes = set(q["service_code"].split(","))
            records = [r for r in records if r["service_code"] in codes]
        return Answer.json(200, records[:1000])

    def _token(self, req: Received) -> Answer:
        if bad := self._check_jurisdiction(req.query):
            return bad
        token = req.path.removeprefix(f"{PREFIX}/tokens/").removesuffix(".json")
        entry = self.tokens.get(token)
        if entry is None:
            return _error(404, f"token {token} not found")
        entry["polls"] += 1
        if entry["polls"] <= self.token_delay_polls:
            return Answer.json(200, [{"token": token}])
        return Answer.json(200, [{"service_request_id": entry["request_id"], "token": token}])
