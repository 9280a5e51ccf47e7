"""Waiting in tests: until something is true (``eventually``), or that nothing comes (``nothing_arrives``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def _value(condition: Callable[[], Any]) -> Any:
    value = condition()
    if inspect.isawaitable(value):
        value = await value
    return value


def _describe(condition: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)


async def eventually(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.01, *, what: str = ""
) -> Any:
    """Wait until ``condition()`` (sync or async) is truthy and return that value; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await _value(condition)
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(
                f"not within {timeout:g} s: {what or _describe(condition)} (last value: {value!r})"
            )
        await asyncio.sleep(interval)


async def nothing_arrives(
    condition: Callable[[], Any], within: float, interval: float = 0.05, *, what: str = ""
) -> None:
    """Assert that ``condition()`` (sync or async) stays falsy for ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await _value(condition)
        if value:
            raise AssertionError(f"arrived within {within:g} s: {what or _describe(condition)} ({value!r})")
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(interval, remaining))


async def settle(rt: Any) -> None:
    """Wait until every background task of a runtime has ended (webhooks are processed after the
    acknowledgement; a task may start another, hence the loop)."""
    while rt.background:
        await asyncio.gather(*list(rt.background))
