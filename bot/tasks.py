"""Background tasks that are kept referenced while they run and cancelled together at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Spawn(Protocol):
    """Starts a background task that lives until it ends or the process shuts down."""

    def __call__(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` in the background under ``name``."""
        ...


class BackgroundTasks:
    """A set of background tasks (asyncio keeps only weak references to running tasks)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` in the background; it is cancelled by :meth:`cancel_all`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[None]]:
        return iter(set(self._tasks))

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def run_every(interval: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
    """Run ``job`` now and then every ``interval`` seconds until cancelled; a failed run is logged."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("job %s failed; next run in %.0fs", name, interval)
        await asyncio.sleep(interval)
