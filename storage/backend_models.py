"""Tables of the service back ends: demo permits, the complaints the bot accepted, their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, BigId
from storage.types import JSONType, utcnow


class DemoPermit(Base):
    """A permit application of the demo licensing system (seeded from YAML, advanced by staff/CLI)."""

    __tablename__ = "demo_permits"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    permit_type: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(24))
    applicant: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    office: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DemoPermitEvent(Base):
    """A stage change of a demo permit; its id is the ``changes_since`` cursor."""

    __tablename__ = "demo_permit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(ForeignKey("demo_permits.number", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplaintRecord(Base):
    """A complaint the bot accepted (local reference), and — for the local back end — the complaint itself.

    ``backend`` says who owns it: ``local`` (worked from the staff console) or ``open311`` (this row
    caches the server's ticket and status). ``ticket`` is None while the report waits to be filed.
    """

    __tablename__ = "complaints"
    __table_args__ = (
        Index("ix_complaints_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_complaints_category_lat_lon", "category", "lat", "lon"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    local_ref: Mapped[str] = mapped_column(String(64), unique=True)
    ticket: Mapped[str | None] = mapped_column(String(64), unique=True)
    backend: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    reporter: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(Text)
    kelurahan_code: Mapped[str | None] = mapped_column(String(16))
    media_keys: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    agency: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None]
    supporters: Mapped[int] = mapped_column(Integer, default=0)
    backend_token: Mapped[str | None] = mapped_column(String(128))
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplaintEvent(Base):
    """One status change of a complaint, with who made it and why; its id is the local change cursor."""

    __tablename__ = "complaint_events"
    __table_args__ = (Index("ix_complaint_events_complaint_id_id", "complaint_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplaintSupporter(Base):
    """A resident who reported the same problem and was added to an existing complaint."""

    __tablename__ = "complaint_supporters"

    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), primary_key=True
    )
    reporter: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketCounter(Base):
    """The last ticket number handed out per year (ADU-YYYY-NNNNNN), incremented atomically."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)
