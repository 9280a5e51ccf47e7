"""FastAPI dependencies: the runtime opened by the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The runtime of the running app (async: FastAPI would run a plain function in a thread)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
