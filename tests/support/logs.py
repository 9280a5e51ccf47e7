"""The production log handler (``bot.logs.configure_logging``) writing into a string, for one test."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bot.logs import configure_logging


def remove_log_handlers() -> None:
    """Take pontibot's handlers off the root logger (a test configured logging)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pontibot", False):
            root.removeHandler(handler)


@contextmanager
def captured_logs(level: str = "INFO", *, fmt: str = "text") -> Iterator[io.StringIO]:
    """Configure logging as the program does, into a string; afterwards the handler goes and the
    root level is what it was."""
    stream = io.StringIO()
    root = logging.getLogger()
    before = root.level
    configure_logging(level, stream=stream, fmt=fmt)
    try:
        yield stream
    finally:
        remove_log_handlers()
        root.setLevel(before)
