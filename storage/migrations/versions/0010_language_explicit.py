"""residents.language_explicit: the resident chose their language (it then wins over detection)

Issue 18: each message's language is detected and becomes the resident's language, unless the resident
chose one ("english please", the language buttons). Existing residents did not choose: false.

Revision ID: 0010_language_explicit
Revises: 0009_dedupe_per_chat
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_language_explicit"
down_revision: str | Sequence[str] | None = "0009_dedupe_per_chat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``language_explicit`` (false for every existing resident)."""
    # Not batch mode: on SQLite that copies and drops ``residents``, and with foreign keys on the
    # drop cascades to every conversation. SQLite adds (3.35+: drops) a column in place.
    op.add_column(
        "residents", sa.Column("language_explicit", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    """Drop ``language_explicit`` (in place, for the same reason)."""
    op.drop_column("residents", "language_explicit")
