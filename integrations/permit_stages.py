"""The stages a permit application goes through at DPMPTSP, in order, per permit type."""

from __future__ import annotations

from integrations.base import PermitStage

_FULL = (
    PermitStage.RECEIVED,
    PermitStage.DOCUMENT_CHECK,
    PermitStage.FIELD_SURVEY,
    PermitStage.AWAITING_PAYMENT,
    PermitStage.APPROVED,
    PermitStage.COMPLETED,
)
# NIB is issued through OSS without a survey or a fee.
_SEQUENCES: dict[str, tuple[PermitStage, ...]] = {
    "nib": (PermitStage.RECEIVED, PermitStage.DOCUMENT_CHECK, PermitStage.APPROVED, PermitStage.COMPLETED),
}
FINAL_STAGES = frozenset({PermitStage.REJECTED, PermitStage.COMPLETED})


def stages_of(permit_type: str) -> tuple[PermitStage, ...]:
    """The stages an application of ``permit_type`` goes through, in order (ditolak can happen at any)."""
    return _SEQUENCES.get(permit_type, _FULL)


def next_stage(permit_type: str, stage: PermitStage) -> PermitStage | None:
    """The stage after ``stage``, or None when it is final."""
    if stage in FINAL_STAGES:
        return None
    order = stages_of(permit_type)
    position = order.index(stage) if stage in order else 0
    return order[position + 1] if position + 1 < len(order) else None
