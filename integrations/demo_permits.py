"""The demo licensing system: permit applications seeded from YAML into our database, advanced by hand.

At the booth, staff (or ``pontibot demo advance``) move an application to its next stage; the change is
recorded as an event, so ``changes_since`` reports it and the resident subscribed to it is notified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, func, select

from integrations.base import BackendRejected, Changes, Permit, PermitStage
from integrations.permit_stages import next_stage
from integrations.units import unit_of_work
from storage.backend_models import DemoPermit, DemoPermitEvent
from storage.db import Database, advisory_xact_lock

logger = logging.getLogger(__name__)

DEFAULT_SEED = Path(__file__).parent / "demo_data" / "permits.yml"
PERMIT_TYPES = ("pbg", "slf", "nib", "izin_reklame")


@dataclass(frozen=True, slots=True)
class SeedPermit:
    """One application from the seed file; ``days_ago`` dates its last change relative to today."""

    number: str
    permit_type: str
    stage: PermitStage
    applicant: str | None
    office: str | None
    note: str | None
    days_ago: int


def load_seed(path: Path = DEFAULT_SEED) -> list[SeedPermit]:
    """Read and check the seed file.

    Raises:
        ValueError: an entry lacks a number, has an unknown type or stage, or a number repeats.
    """
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries: list[Any] = raw.get("permits", []) if isinstance(raw, dict) else []
    seeds: list[SeedPermit] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: permits[{index}]"
        if not isinstance(entry, dict) or not entry.get("number"):
            raise ValueError(f"{where}: needs at least a number")
        number = str(entry["number"]).strip().upper()
        if number in seen:
            raise ValueError(f"{where}: {number} appears twice")
        seen.add(number)
        permit_type = str(entry.get("type", "")).strip()
        if permit_type not in PERMIT_TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(PERMIT_TYPES)}")
        try:
            stage = PermitStage(str(entry.get("stage", "")))
        except ValueError:
            raise ValueError(f"{where}: stage must be one of {', '.join(PermitStage)}") from None
        seeds.append(
            SeedPermit(
                number=number,
                permit_type=permit_type,
                stage=stage,
                applicant=entry.get("applicant"),
                office=entry.get("office"),
                note=entry.get("note"),
                days_ago=int(entry.get("days_ago", 0)),
            )
        )
    return seeds


def _to_permit(row: DemoPermit) -> Permit:
    return Permit(
        number=row.number,
        permit_type=row.permit_type,
        stage=PermitStage(row.stage),
        updated_at=row.updated_at,
        applicant=row.applicant,
        note=row.note,
        office=row.office,
    )


class DemoPermitBackend:
    """Permits of the demo licensing system, kept in our database (``demo_permits``)."""

    name = "demo-permits"

    def __init__(
        self,
        db: Database,
        *,
        seed_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.seed_path = seed_path or DEFAULT_SEED
        self._clock = clock or (lambda: datetime.now(UTC))

    async def seed(self, *, replace: bool = False) -> int:
        """Load the seed file when the table is empty (or always, with ``replace``); returns rows added."""
        seeds = load_seed(self.seed_path)
        now = self._clock()
        async with unit_of_work(self.db) as session:
            # Several workers start at once on one PostgreSQL: one seeds, the others then see the rows.
            await advisory_xact_lock(session, "demo-permits-seed")
            if replace:
                await session.execute(delete(DemoPermit))
            elif (await session.execute(select(func.count()).select_from(DemoPermit))).scalar_one():
                return 0
            for seed in seeds:
                session.add(
                    DemoPermit(
                        number=seed.number,
                        permit_type=seed.permit_type,
                        stage=seed.stage.value,
                        applicant=seed.applicant,
                        note=seed.note,
                        office=seed.office,
                        updated_at=now - timedelta(days=seed.days_ago),
                    )
                )
        logger.info("seeded %d demo permits from %s", len(seeds), self.seed_path)
        return len(seeds)

    async def get(self, number: str) -> Permit | None:
        """The application with this number (case-insensitive), or None."""
        async with unit_of_work(self.db) as session:
            row = await session.get(DemoPermit, number.strip().upper())
            return _to_permit(row) if row is not None else None

    async def all(self) -> Sequence[Permit]:
        """Every demo application, by number."""
        async with unit_of_work(self.db) as session:
            rows = (await session.execute(select(DemoPermit).order_by(DemoPermit.number))).scalars().all()
            return [_to_permit(row) for row in rows]

    async def advance(
        self, number: str, to: PermitStage | str | None = None, *, note: str | None = None
    ) -> Permit:
        """Move an application to ``to`` (default: its next stage) and record the change.

        Raises:
            BackendRejected: no such application, it is already final, or ``to`` is not a stage.
        """
        async with unit_of_work(self.db) as session:
            row = await session.get(DemoPermit, number.strip().upper(), with_for_update=True)
            if row is None:
                raise BackendRejected(f"no demo permit {number}", backend=self.name)
            current = PermitStage(row.stage)
            if to is None:
                target = next_stage(row.permit_type, current)
                if target is None:
                    raise BackendRejected(f"{row.number} is already {current.value}", backend=self.name)
            else:
                try:
                    target = PermitStage(to)
                except ValueError:
                    raise BackendRejected(
                        f"unknown stage {to!r}; one of {', '.join(PermitStage)}", backend=self.name
                    ) from None
            now = self._clock()
            row.stage = target.value
            row.note = note
            row.updated_at = now
            session.add(DemoPermitEvent(number=row.number, stage=target.value, note=note, created_at=now))
            await session.flush()
            logger.info("demo permit %s: %s -> %s", row.number, current.value, target.value)
            return _to_permit(row)

    async def changes_since(self, cursor: str | None) -> Changes[Permit]:
        """Applications advanced after ``cursor`` (an event id); None starts from now."""
        async with unit_of_work(self.db) as session:
            last = (await session.execute(select(func.max(DemoPermitEvent.id)))).scalar_one()
            if cursor is None:
                return Changes(items=(), cursor=str(last or 0))
            try:
                after = int(cursor)
            except ValueError:
                raise BackendRejected(f"not a demo permit cursor: {cursor!r}", backend=self.name) from None
            stmt = (
                select(DemoPermitEvent.number, func.max(DemoPermitEvent.id).label("last_id"))
                .where(DemoPermitEvent.id > after)
                .group_by(DemoPermitEvent.number)
                .order_by("last_id")
            )
            changed = (await session.execute(stmt)).all()
            permits: list[Permit] = []
            for number, _ in changed:
                row = await session.get(DemoPermit, number)
                if row is not None:
                    permits.append(_to_permit(row))
            newest = max((last_id for _, last_id in changed), default=after)
            return Changes(items=permits, cursor=str(newest))
