"""The whole schema: imports every model module so their tables are on one metadata (Alembic uses it)."""

from __future__ import annotations

import storage.notify_models  # notification cursors, broadcasts, scheduler jobs
import storage.staff_models  # staff tables join the metadata
import storage.whatsapp_repository  # noqa: F401  (WhatsApp numbered options)
from storage import backend_models, models
from storage.models import Base

# Each area's model module is imported here once, so its tables join Base.metadata.
__all__ = ["backend_models", "metadata", "models"]

metadata = Base.metadata
