"""A fake licensing system (DPMPTSP-style HTTP/JSON) on 127.0.0.1 with its own words for everything.

Its records look like ``{"data": {"nomor_permohonan": …, "jenis_izin": "PBG", "status_terakhir": "SURVEI",
"tgl_update": "2026-11-20 10:00:00", …}}`` and it wants an ``X-Api-Key`` header, so the client's field,
status and type mappings and its auth header all come from configuration, as they will in a city.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from integrations.http_permits import HttpPermitConfig
from tests.support.fake_http import Answer, FakeServer, Received

WIB = ZoneInfo("Asia/Pontianak")
API_KEY = "perizinan-test-key"
STATUSES = {
    "BARU": "diterima",
    "VERIFIKASI": "verifikasi_berkas",
    "SURVEI": "survei_lapangan",
    "BAYAR": "menunggu_pembayaran",
    "SETUJU": "disetujui",
    "TOLAK": "ditolak",
    "SELESAI": "selesai",
}
ORDER = list(STATUSES)


def config_for(fake: FakePermitSystem) -> HttpPermitConfig:
    """The client configuration that fits this fake (what docs/config-examples/permits-http.yml shows)."""
    return HttpPermitConfig(
        base_url=f"{fake.server.base}/api/v1",
        auth_header="X-Api-Key",
        auth_value=API_KEY,
        get_path="/permohonan/{number}",
        changes_path="/permohonan/perubahan",
        changes_param="sejak",
        changes_items="data",
        changes_cursor="meta.kursor",
        fields={
            "number": "data.nomor_permohonan",
            "permit_type": "data.jenis_izin",
            "stage": "data.status_terakhir",
            "updated_at": "data.tgl_update",
            "applicant": "data.pemohon",
            "note": "data.keterangan",
            "office": "data.lokasi_layanan",
        },
        statuses=STATUSES,
        types={"PBG": "pbg", "SLF": "slf", "NIB": "nib", "REKLAME": "izin_reklame"},
        timeout=2.0,
    )


@dataclass
class FakePermitSystem:
    """Permit records by number, a change log with numeric cursors, and the HTTP server serving them."""

    server: FakeServer = field(default_factory=FakeServer)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # numbers, in change order; cursor = index

    def __post_init__(self) -> None:
        self.server.prefix_routes.append(("GET", "/api/v1/permohonan/perubahan", self._changes))
        self.server.prefix_routes.append(("GET", "/api/v1/permohonan/", self._one))

    def start(self) -> FakePermitSystem:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def add(
        self, number: str, jenis: str, status: str, *, note: str | None = None, at: datetime | None = None
    ) -> None:
        when = at or datetime(2026, 11, 20, 10, 0, tzinfo=WIB)
        self.records[number] = {
            "nomor_permohonan": number,
            "jenis_izin": jenis,
            "status_terakhir": status,
            "tgl_update": when.strftime("%Y-%m-%d %H:%M:%S"),  # local time without a zone, as many systems do
            "pemohon": "Pemohon Uji",
            "keterangan": note,
            "lokasi_layanan": "MPP Kota Pontianak",
        }

    def advance(self, number: str, status: str | None = None, *, note: str | None = None) -> None:
        record = self.records[number]
        current = ORDER.index(record["status_terakhir"])
        record["status_terakhir"] = status or ORDER[current + 1]
        record["keterangan"] = note
        updated = datetime.strptime(record["tgl_update"], "%Y-%m-%d %H:%M:%S") + timedelta(hours=1)
        record["tgl_update"] = updated.strftime("%Y-%m-%d %H:%M:%S")
        self.log.append(number)

    def _authorised(self, req: Received) -> Answer | None:
        if req.headers.get("x-api-key") != API_KEY:
            return Answer.json(401, {"error": "kunci API tidak valid"})
        return None

    def _one(self, req: Received) -> Answer:
        if bad := self._authorised(req):
            return bad
        number = req.path.removeprefix("/api/v1/permohonan/")
        record = self.records.get(number)
        if record is None:
            return Answer.json(404, {"error": "permohonan tidak ditemukan"})
        return Answer.json(200, {"data": record})

    def _changes(self, req: Received) -> Answer:
        if bad := self._authorised(req):
            return bad
        since = int(req.query.get("sejak", len(self.log)))
        numbers = list(dict.fromkeys(self.log[since:]))
        return Answer.json(
            200,
            {"data": [{"data": self.records[n]} for n in numbers], "meta": {"kursor": str(len(self.log))}},
        )
