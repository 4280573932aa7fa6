"""redis-py types each command as "awaitable or value" (one signature for both clients)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["reply"]

T = TypeVar("T")


async def reply(value: Awaitable[T] | T) -> T:
    """The asyncio client's answer, typed as the value."""
    if inspect.isawaitable(value):
        return await value
    return value
