"""Open311 GeoReport v2: a thin wire client (client.py) and the mapper to our back-end port (backend.py)."""

from integrations.open311.backend import Open311ComplaintBackend
from integrations.open311.client import Open311Client, Open311Error

__all__ = ["Open311Client", "Open311ComplaintBackend", "Open311Error"]
