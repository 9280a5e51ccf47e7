"""Retention (UU No. 27/2022): what is older than ``privacy.retention_days`` is purged by a job.

One run, in one transaction (files after it commits):

* transcripts (``messages``) and platform dedupe records (``processed_messages``) older than the
  period are deleted, and so are finished outbox rows (their bodies are transcript too);
* conversations idle that long forget their state and slots (collected answers);
* complaints closed that long keep the case — ticket, category, location, status history — but
  lose the reporter link, and NIK/phones in their description, note and history notes are masked;
  closed handoffs lose their kept context, their closing note is masked;
* photos: a file that no kept transcript line references, nor a complaint that is open or closed
  less than the period ago, is deleted (after a short grace for a message still being stored):
  expired photos and an erased resident's alike.

The job runs every ``privacy.retention_interval_minutes`` as a background loop of the runtime
(``bot.notifications.jobs.run_every``); a failed run is logged and the next one tries again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.conversation.media import MediaStore
from flows.handoff import HANDOFF_STATUS
from integrations.base import ComplaintStatus
from storage import privacy_repository as privacy_repo
from storage.db import Database
from storage.masking import mask_personal
from storage.types import utcnow

logger = logging.getLogger(__name__)

CLOSED_COMPLAINTS = frozenset(s.value for s in ComplaintStatus if not s.is_open)
OPEN_COMPLAINTS = frozenset(s.value for s in ComplaintStatus if s.is_open)


async def purge_expired(
    db: Database,
    media: MediaStore,
    *,
    retention_days: int,
    media_grace: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> privacy_repo.Purge:
    """Delete or mask everything older than ``retention_days`` (see the module docstring)."""
    now = now or utcnow()
    before = now - timedelta(days=retention_days)
    async with db.session() as session:
        messages, processed = await privacy_repo.purge_transcripts(session, before=before)
        outbox = await privacy_repo.purge_outbox(session, before=before, now=now)
        conversations = await privacy_repo.forget_idle_conversations(
            session, before=before, busy_status=HANDOFF_STATUS
        )
        complaints = await privacy_repo.mask_closed_complaints(
            session, before=before, closed=CLOSED_COMPLAINTS, mask=mask_personal
        )
        handoffs = await privacy_repo.forget_closed_handoffs(session, before=before, mask=mask_personal)
        referenced = await privacy_repo.referenced_media_keys(
            session, open_statuses=OPEN_COMPLAINTS, changed_since=before
        )
    removed = purge_media(media, referenced=referenced, older_than=(now - media_grace).timestamp())
    purge = privacy_repo.Purge(messages, processed, outbox, conversations, complaints, handoffs, removed)
    logger.info(
        "retention (%d days): %d messages, %d dedupe records, %d outbox rows, %d conversations, "
        "%d complaints, %d handoffs, %d photos",
        retention_days,
        purge.messages,
        purge.processed,
        purge.outbox,
        purge.conversations,
        purge.complaints,
        purge.handoffs,
        purge.media,
    )
    return purge


def purge_media(media: MediaStore, *, referenced: set[str], older_than: float) -> int:
    """Delete photo files no kept transcript line or case references, if older than ``older_than``.

    Run after the transcripts were purged, this removes expired photos and an erased resident's
    alike; a photo still referenced stays (the store is content-addressed: the same photo sent again
    today keeps its old file). The grace period spares a photo whose message is not committed yet.
    """
    root = media.root
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob("*/*"):
        if not path.is_file() or path.name.endswith(".part"):
            continue
        key = f"{path.parent.name}/{path.name}"
        if key not in referenced and path.stat().st_mtime < older_than:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
