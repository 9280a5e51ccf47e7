"""Tables of the notifications: change cursors, broadcasts, and APScheduler's persisted job store.

Dead letters are not a table of their own: they are outbox rows with status ``dead``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, LargeBinary, String, Text, Unicode
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, BigId
from storage.types import utcnow

SCHEDULER_JOBS_TABLE = "apscheduler_jobs"


class ChangeCursor(Base):
    """Where change detection stands for one source (``permits``, ``complaints``): the back end's cursor."""

    __tablename__ = "notify_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(256))
    polled_at: Mapped[datetime] = mapped_column(default=utcnow)
    changes: Mapped[int] = mapped_column(Integer, default=0)  # changes seen in total (for the dashboard)


class Broadcast(Base):
    """An announcement queued to many residents; its outbox rows carry the key ``broadcast:<id>:…``."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    segment: Mapped[str] = mapped_column(String(16))  # subscribers | all
    language: Mapped[str | None] = mapped_column(String(2))  # only residents speaking it, or everyone
    actor: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerJob(Base):
    """APScheduler 3's ``SQLAlchemyJobStore`` table, made by our migrations (its own columns and types).

    The job store reads and writes it through its own synchronous engine; declaring it here keeps the
    schema in one place and lets the migrations check match the models.
    """

    __tablename__ = SCHEDULER_JOBS_TABLE

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)
