"""platform dedupe per chat: processed_messages keyed by (channel, chat_id, message_id)

Platform message ids are unique per chat, not per channel: keyed by ``(channel, message_id)``, one web
chat session could read another's stored replies by reusing its id, or claim ids in advance so the
other's messages were dropped (issue 16). Existing rows keep their id and get the chat of the
conversation they point to; rows without one (erased or purged conversations) get an empty chat,
which no message has, so they only wait for the retention purge.

Revision ID: 0009_dedupe_per_chat
Revises: 0008_merge_heads
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_dedupe_per_chat"
down_revision: str | Sequence[str] | None = "0008_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHAT_OF_CONVERSATION = (
    "UPDATE processed_messages SET chat_id = COALESCE("
    "(SELECT r.external_id FROM conversations c JOIN residents r ON r.id = c.resident_id"
    " WHERE c.id = processed_messages.conversation_id), '')"
)
# Downgrade: of the rows sharing (channel, message_id) across chats, the newest stays.
_ONE_PER_ID = (
    "DELETE FROM processed_messages WHERE EXISTS (SELECT 1 FROM processed_messages newer"
    " WHERE newer.channel = processed_messages.channel"
    " AND newer.message_id = processed_messages.message_id"
    " AND (newer.created_at > processed_messages.created_at"
    " OR (newer.created_at = processed_messages.created_at AND newer.chat_id > processed_messages.chat_id)))"
)


def upgrade() -> None:
    """Add ``chat_id`` (filled from the row's conversation) and make it part of the primary key."""
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.String(length=128), nullable=True))
    op.execute(_CHAT_OF_CONVERSATION)
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.alter_column("chat_id", existing_type=sa.String(length=128), nullable=False)
        batch_op.drop_constraint(batch_op.f("pk_processed_messages"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_processed_messages"), ["channel", "chat_id", "message_id"])


def downgrade() -> None:
    """Back to one row per ``(channel, message_id)``: the newest of an id used in several chats stays."""
    op.execute(_ONE_PER_ID)
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_processed_messages"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_processed_messages"), ["channel", "message_id"])
        batch_op.drop_column("chat_id")
