"""``pontibot demo permits`` and ``pontibot demo advance`` as the booth staff run them."""

from __future__ import annotations

import json
from pathlib import Path

from integrations.demo_permits import load_seed
from tests.support import cli_env, pontibot


def test_list_and_advance_demo_permits(tmp_path: Path) -> None:
    env = cli_env(database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    assert pontibot("db", "upgrade", env=env).returncode == 0

    listed = pontibot("demo", "permits", "--json", env=env)
    moved = pontibot("demo", "advance", "pbg-2026-00124", env=env)
    rejected = pontibot(
        "demo", "advance", "REK-2026-00079", "--to", "ditolak", "--note", "Titik dilarang", env=env
    )
    final = pontibot("demo", "advance", "NIB-2026-00310", env=env)
    after = json.loads(pontibot("demo", "permits", "--json", env=env).stdout)

    permits = json.loads(listed.stdout)
    assert [p["number"] for p in permits] == sorted(s.number for s in load_seed())
    assert permits[0].keys() == {
        "number",
        "type",
        "stage",
        "next_stage",
        "updated_at",
        "applicant",
        "office",
        "note",
    }
    assert moved.stdout == "PBG-2026-00124: diterima -> verifikasi_berkas\n"
    assert rejected.stdout == "REK-2026-00079: diterima -> ditolak\n"
    assert (final.returncode, "already selesai" in final.stderr) == (1, True)
    stages = {p["number"]: (p["stage"], p["note"]) for p in after}
    assert stages["PBG-2026-00124"] == ("verifikasi_berkas", None)
    assert stages["REK-2026-00079"] == ("ditolak", "Titik dilarang")
