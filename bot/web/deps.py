"""FastAPI dependencies: the runtime opened by the app's lifespan, and how ready it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from bot.runtime import Runtime
from bot.web.http import Starting

STARTING_RETRY_SECONDS = 2


@dataclass
class Readiness:
    """What the server still waits for before it can answer (``GET /readyz``)."""

    waiting: list[str] = field(default_factory=lambda: ["database", "nlu model", "channels"])
    failed: str | None = None  # why starting failed (the log has the details)

    def done(self, *parts: str) -> None:
        """``parts`` are ready."""
        self.waiting = [part for part in self.waiting if part not in parts]


async def get_runtime(request: Request) -> Runtime:
    """The runtime of the running app; 503 while it is still starting (async: FastAPI would run a
    plain function in a thread)."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise Starting(STARTING_RETRY_SECONDS)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
