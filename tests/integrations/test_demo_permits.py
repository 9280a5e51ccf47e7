"""The demo licensing system: seed data that covers every type and stage, advancing, change detection."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from integrations.base import BackendRejected, PermitStage
from integrations.demo_permits import DemoPermitBackend, load_seed
from storage.db import Database

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_the_seed_covers_every_type_and_stage_and_gives_rejections_a_reason() -> None:
    seeds = load_seed()

    assert len(seeds) >= 8
    assert set(Counter(s.permit_type for s in seeds)) == {"pbg", "slf", "nib", "izin_reklame"}
    assert {s.stage for s in seeds} == set(PermitStage)
    assert all(s.note for s in seeds if s.stage is PermitStage.REJECTED)


async def test_seeding_fills_an_empty_table_once(db: Database) -> None:
    demo = DemoPermitBackend(db, clock=lambda: NOW)

    first, second = await demo.seed(), await demo.seed()
    permit = await demo.get("pbg-2026-00123")

    assert (first, second, len(await demo.all())) == (len(load_seed()), 0, len(load_seed()))
    assert permit is not None
    assert (permit.stage, permit.updated_at) == (PermitStage.FIELD_SURVEY, NOW.replace(day=20))


async def test_advance_moves_to_the_next_stage_and_is_seen_as_a_change(db: Database) -> None:
    demo = DemoPermitBackend(db, clock=lambda: NOW)
    await demo.seed()
    cursor = (await demo.changes_since(None)).cursor

    moved = await demo.advance("PBG-2026-00123", note="Silakan bayar retribusi")
    nib = await demo.advance("NIB-2026-00311", PermitStage.DOCUMENT_CHECK)
    nib = await demo.advance("NIB-2026-00311")  # NIB has no survey and no fee
    changes = await demo.changes_since(cursor)

    assert (moved.stage, moved.note, moved.updated_at) == (
        PermitStage.AWAITING_PAYMENT,
        "Silakan bayar retribusi",
        NOW,
    )
    assert nib.stage is PermitStage.APPROVED
    assert [(p.number, p.stage) for p in changes.items] == [
        ("PBG-2026-00123", PermitStage.AWAITING_PAYMENT),
        ("NIB-2026-00311", PermitStage.APPROVED),
    ]
    assert list((await demo.changes_since(changes.cursor)).items) == []


@pytest.mark.parametrize(
    ("number", "to", "message"),
    [
        ("NIB-2026-00310", None, "already selesai"),
        ("PBG-2026-99999", None, "no demo permit"),
        ("PBG-2026-00123", "dibatalkan", "unknown stage"),
    ],
)
async def test_advance_refuses_what_cannot_be_done(
    db: Database, number: str, to: str | None, message: str
) -> None:
    demo = DemoPermitBackend(db)
    await demo.seed()

    with pytest.raises(BackendRejected, match=message):
        await demo.advance(number, to)
