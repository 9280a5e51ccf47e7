"""Staff tables: console accounts and sessions, login throttling, handoffs, ratings, the audit log, and
the Telegram staff group's forum topics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, BigId
from storage.types import utcnow


class StaffUser(Base):
    """A person who works the console: ``admin`` (everything) or ``agent`` (handoffs)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # admin | agent
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who this person is in the Telegram staff group (``pontibot staff link-telegram``).
    telegram_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)


class StaffSession(Base):
    """A signed-in browser: the SHA-256 of its cookie token (never the token), CSRF token, expiry."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginThrottle(Base):
    """Failed logins per username and address; ``locked_until`` set after too many."""

    __tablename__ = "staff_login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "<username>|<ip>"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class Handoff(Base):
    """A conversation handed to a person: why, when, who has it, when and how it was closed."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_closed_at_opened_at", "closed_at", "opened_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(16))  # requested | fallback | emergency
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)  # slots and state when it opened
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    first_reply_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(64))  # a staff username, or "resident"
    close_note: Mapped[str | None] = mapped_column(Text)


class Rating(Base):
    """The resident's 1-5 satisfaction score for one closed handoff."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditEntry(Base):
    """One staff action: who, what, when, on what target, with details (never secrets)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    who: Mapped[str] = mapped_column(String(64))  # staff username, "api-token" or "system"
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    what: Mapped[str] = mapped_column(String(48), index=True)  # e.g. handoff.reply, login.failed
    target: Mapped[str | None] = mapped_column(String(128))  # e.g. handoff:12
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class StaffGroupTopic(Base):
    """The Telegram staff group's forum topic of one handoff, and how far its transcript was mirrored."""

    __tablename__ = "staff_group_topics"
    __table_args__ = (Index("ix_staff_group_topics_chat_id_thread_id", "chat_id", "thread_id", unique=True),)

    handoff_id: Mapped[int] = mapped_column(
        ForeignKey("handoffs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    chat_id: Mapped[str] = mapped_column(String(32))
    thread_id: Mapped[int] = mapped_column(BigInteger)
    mirrored_to: Mapped[int] = mapped_column(BigInteger, default=0)  # the last transcript id posted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
