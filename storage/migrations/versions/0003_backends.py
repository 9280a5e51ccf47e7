"""backends

Revision ID: 0003_backends
Revises: 0002_subscriptions
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_backends"
down_revision: str | None = "0002_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("local_ref", sa.String(length=64), nullable=False),
        sa.Column("ticket", sa.String(length=64), nullable=True),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("kelurahan_code", sa.String(length=16), nullable=True),
        sa.Column("media_keys", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("agency", sa.String(length=64), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("supporters", sa.Integer(), nullable=False),
        sa.Column("backend_token", sa.String(length=128), nullable=True),
        sa.Column("submit_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
        sa.UniqueConstraint("local_ref", name=op.f("uq_complaints_local_ref")),
        sa.UniqueConstraint("ticket", name=op.f("uq_complaints_ticket")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index("ix_complaints_category_lat_lon", ["category", "lat", "lon"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_reporter"), ["reporter"], unique=False)
        batch_op.create_index(
            "ix_complaints_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "demo_permits",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("permit_type", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("applicant", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("office", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_demo_permits")),
    )
    op.create_table(
        "ticket_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_ticket_counters")),
    )
    op.create_table(
        "complaint_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("complaint_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_complaint_events_complaint_id_complaints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_events")),
    )
    with op.batch_alter_table("complaint_events", schema=None) as batch_op:
        batch_op.create_index("ix_complaint_events_complaint_id_id", ["complaint_id", "id"], unique=False)

    op.create_table(
        "complaint_supporters",
        sa.Column("complaint_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_complaint_supporters_complaint_id_complaints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("complaint_id", "reporter", name=op.f("pk_complaint_supporters")),
    )
    op.create_table(
        "demo_permit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["number"],
            ["demo_permits.number"],
            name=op.f("fk_demo_permit_events_number_demo_permits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_permit_events")),
    )
    with op.batch_alter_table("demo_permit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_demo_permit_events_number"), ["number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("demo_permit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demo_permit_events_number"))

    op.drop_table("demo_permit_events")
    op.drop_table("complaint_supporters")
    with op.batch_alter_table("complaint_events", schema=None) as batch_op:
        batch_op.drop_index("ix_complaint_events_complaint_id_id")

    op.drop_table("complaint_events")
    op.drop_table("ticket_counters")
    op.drop_table("demo_permits")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_status_next_attempt_at")
        batch_op.drop_index(batch_op.f("ix_complaints_reporter"))
        batch_op.drop_index("ix_complaints_category_lat_lon")

    op.drop_table("complaints")
