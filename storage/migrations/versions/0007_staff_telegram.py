"""staff_telegram

Revision ID: 0007_staff_telegram
Revises: 0004_staff
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_staff_telegram"
down_revision: str | None = "0004_staff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_group_topics",
        sa.Column(
            "handoff_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("mirrored_to", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoffs.id"],
            name=op.f("fk_staff_group_topics_handoff_id_handoffs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handoff_id", name=op.f("pk_staff_group_topics")),
    )
    with op.batch_alter_table("staff_group_topics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_staff_group_topics_chat_id_thread_id", ["chat_id", "thread_id"], unique=True
        )

    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_user_id", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_staff_users_telegram_user_id"), ["telegram_user_id"])


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_users_telegram_user_id"), type_="unique")
        batch_op.drop_column("telegram_user_id")

    with op.batch_alter_table("staff_group_topics", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_group_topics_chat_id_thread_id")

    op.drop_table("staff_group_topics")
