"""The erasure coverage rule: what erasure does to every text, JSON or binary column, or why it need not."""

from __future__ import annotations

# THE ERASURE COVERAGE RULE: every text, JSON or binary column of every table is listed once, either
# in ERASED_COLUMNS (what ``storage.privacy_repository.erase_resident`` does to it) or in
# ERASURE_EXEMPT (why it cannot hold a resident's words or identifiers). tests/security/test_erasure.py
# reads the schema and fails on a column in neither.
_DELETED_TRANSCRIPT = "the transcript's rows are deleted"
_DELETED_DEDUPE = (
    "the chat's dedupe records are deleted (they name the chat); this turn's names the erased id"
)
_DELETED_SUBSCRIPTION = "subscriptions are deleted"
ERASED_COLUMNS: dict[str, str] = {
    "residents.external_id": (
        "replaced by erased:<row id>, linked to nothing (the chat writing again is a new resident)"
    ),
    "residents.display_name": "cleared",
    "residents.source": "cleared",
    "conversations.state": "cleared; the turn's own write-back skips an erased resident (storage.turn_store)",
    "conversations.slots": "emptied, memory (last_*) too; the turn's write-back skips an erased resident",
    "messages.direction": _DELETED_TRANSCRIPT,
    "messages.kind": _DELETED_TRANSCRIPT,
    "messages.text": _DELETED_TRANSCRIPT + " (staff replies included: they are in the conversation)",
    "messages.payload": _DELETED_TRANSCRIPT,
    "messages.data": _DELETED_TRANSCRIPT,
    "messages.intent": _DELETED_TRANSCRIPT,
    "messages.platform_message_id": _DELETED_TRANSCRIPT,
    "processed_messages.channel": _DELETED_DEDUPE,
    "processed_messages.chat_id": _DELETED_DEDUPE,
    "processed_messages.message_id": _DELETED_DEDUPE,
    "processed_messages.response": _DELETED_DEDUPE,
    "subscriptions.topic": _DELETED_SUBSCRIPTION,
    "subscriptions.ref": _DELETED_SUBSCRIPTION,
    "subscriptions.last_status": _DELETED_SUBSCRIPTION,
    "whatsapp_options.buttons": "deleted",
    "outbox.chat_id": "pending rows deleted; the others get the erased id",
    "outbox.body": "pending rows deleted; the others emptied",
    "outbox.idempotency_key": (
        "pending rows deleted; the others get erased:<row id> (a key may be a client's text)"
    ),
    "outbox.last_error": "pending rows deleted; the others cleared (a provider's error may quote the number)",
    "complaints.reporter": "the link to the resident is cut",
    "complaints.description": "masked, and the resident's own identifiers redacted; the case stays",
    "complaints.address": "masked and redacted like the description; the place is the case",
    "complaints.note": "masked and redacted like the description",
    "complaints.last_error": "masked and redacted (a back end's error may quote the report)",
    "complaint_events.note": "masked and redacted: the status history stays, the resident's data does not",
    "complaint_supporters.reporter": "deleted",
    "handoffs.context": "emptied",
    "handoffs.close_note": "cleared (staff's note about the resident); an open handoff is closed",
    "audit_log.details": (
        "masked and redacted on lines about the resident's handoffs, complaints, outbox rows"
    ),
}
_STAFF = "staff accounts and their sessions, never a resident's"
_CODE = "a value from a fixed set written by code (status, kind, channel, language, role)"
ERASURE_EXEMPT: dict[str, str] = {
    "residents.channel": _CODE,
    "residents.language": _CODE,
    "conversations.status": _CODE,
    "outbox.channel": _CODE,
    "outbox.kind": _CODE,
    "outbox.status": _CODE,
    "outbox.delivery_status": _CODE,
    "outbox.provider_message_id": "the provider's id of a sent message (Twilio SID), made by the provider",
    "complaints.local_ref": "our random reference of the case",
    "complaints.ticket": "the case's ticket number (ADU-YYYY-NNNNNN)",
    "complaints.backend": _CODE,
    "complaints.category": _CODE,
    "complaints.status": _CODE,
    "complaints.kelurahan_code": "a Kemendagri area code picked from a list",
    "complaints.media_keys": (
        "random keys of the case's photos (files: bot.notifications.retention removes them)"
    ),
    "complaints.agency": "the OPD a complaint went to, chosen by staff",
    "complaints.backend_token": "the back end's token for the case",
    "complaint_events.from_status": _CODE,
    "complaint_events.to_status": _CODE,
    "complaint_events.actor": "a staff user name or a system actor (bot, open311)",
    "handoffs.reason": _CODE,
    "handoffs.closed_by": "a staff user name or 'resident'",
    "audit_log.who": "a staff user name, 'api-token', 'cli' or 'system'",
    "audit_log.what": _CODE,
    "audit_log.target": "an internal reference (handoff:12, complaint:ADU-…, user:sari)",
    "audit_log.ip": "the address of the staff member who acted",
    "staff_users.username": _STAFF,
    "staff_users.display_name": _STAFF,
    "staff_users.password_hash": _STAFF,
    "staff_users.role": _STAFF,
    "staff_users.telegram_user_id": _STAFF,
    "staff_sessions.token_hash": _STAFF,
    "staff_sessions.csrf_token": _STAFF,
    "staff_sessions.ip": _STAFF,
    "staff_sessions.user_agent": _STAFF,
    "staff_login_throttle.key": _STAFF,
    "staff_group_topics.chat_id": "the staff group's Telegram chat id",
    "broadcasts.text": "an announcement staff wrote to many residents",
    "broadcasts.segment": _CODE,
    "broadcasts.language": _CODE,
    "broadcasts.actor": "a staff user name",
    "demo_permits.number": "demo permits are seeded from YAML, never written from a conversation",
    "demo_permits.permit_type": "demo permits are seeded from YAML, never written from a conversation",
    "demo_permits.stage": "demo permits are seeded from YAML, never written from a conversation",
    "demo_permits.applicant": "demo permits are seeded from YAML (invented applicants)",
    "demo_permits.note": "demo permits are seeded from YAML, never written from a conversation",
    "demo_permits.office": "demo permits are seeded from YAML, never written from a conversation",
    "demo_permit_events.number": "demo permit history, written by staff and the CLI",
    "demo_permit_events.stage": "demo permit history, written by staff and the CLI",
    "demo_permit_events.note": "demo permit history, written by staff and the CLI",
    "notify_cursors.source": _CODE,
    "notify_cursors.cursor": "a back end's change cursor",
    "apscheduler_jobs.id": "the scheduler's job names (periodic jobs, not per resident)",
    "apscheduler_jobs.job_state": "the scheduler's pickled periodic jobs (not per resident)",
}
