"""Storage errors.

StorageError
 ├── DatabaseUnavailable   the database could not be reached or timed out (retry later)
 └── ConcurrentUpdate      someone else changed the row first (retry the unit of work)
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error."""


class DatabaseUnavailable(StorageError):
    """The database could not be reached; the caller may retry later."""


class ConcurrentUpdate(StorageError):
    """A row changed under us (optimistic version check failed)."""
