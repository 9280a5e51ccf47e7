"""merge the branches of issues 5-9 into one history

Revision ID: 0008_merge_heads
Revises: 0003_backends, 0005_whatsapp_options, 0006_notifications, 0007_staff_telegram
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_merge_heads"
down_revision: str | Sequence[str] | None = (
    "0003_backends",
    "0005_whatsapp_options",
    "0006_notifications",
    "0007_staff_telegram",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: this revision only joins the branches."""


def downgrade() -> None:
    """Nothing to change: this revision only joins the branches."""
