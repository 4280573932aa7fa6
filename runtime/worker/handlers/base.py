"""The handler plug-in contract.

A handler module exposes a factory `build(settings: WorkerSettings) -> Handler`, named in the
worker's settings as `module.path:build`. The handler is an async callable taking the task and
returning its output and the token usage its provider reported. It raises `TaskFailed` for a
failure another attempt would not fix, `RetryableError` for one it might.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pydantic import JsonValue

from runtime.manager.queue import TokenUsage

if TYPE_CHECKING:
    from contracts.settings.worker import WorkerSettings
    from runtime.worker.tools import ToolCall, ToolGate

__all__ = [
    "DependencyUnavailable",
    "Handler",
    "HandlerFactory",
    "HandlerResult",
    "RetryableError",
    "TaskContext",
    "TaskFailed",
    "load_handler",
]


@dataclass(frozen=True)
class TaskContext:
    task_id: str
    attempt: int
    agent_type: str
    request_type: str | None
    team: str
    complexity: float
    payload: JsonValue
    # The model to call, as the cost engine chose it (budget downgrade applied); None when the
    # worker runs without a cost engine or its pool names no model.
    model: str | None = None
    # Tool calls (runtime.worker.tools): the team's hourly limit, asked before a call leaves
    # the worker, and the observer every call is reported to (the worker's metrics).
    tool_gate: ToolGate | None = None
    on_tool_call: Callable[[ToolCall], None] | None = None


@dataclass(frozen=True)
class HandlerResult:
    output: JsonValue
    usage: tuple[TokenUsage, ...] = field(default_factory=tuple)


class TaskFailed(Exception):
    """The task cannot succeed: it finishes as failed with this message."""


class RetryableError(Exception):
    """This attempt failed for a reason that may pass (rate limit, provider outage).

    `defer_s`: the task should simply wait this long (a limit's Retry-After) and the attempt
    does not count; without it the queue's backoff applies and the attempt counts.
    """

    def __init__(self, message: str, defer_s: float | None = None) -> None:
        super().__init__(message)
        self.defer_s = defer_s


class DependencyUnavailable(RetryableError):
    """A platform dependency (the cost engine, Redis) did not answer: the task waits with
    backoff and the attempt does not count. An outage is no failure of the task."""


class Handler(Protocol):
    async def __call__(self, task: TaskContext) -> HandlerResult: ...


HandlerFactory = Callable[["WorkerSettings"], Handler | Awaitable[Handler]]


def load_handler(path: str) -> HandlerFactory:
    """The factory named `package.module:attribute`; a clear error when it is not there."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler {path!r} must look like 'package.module:build'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"handler {path!r}: cannot import {module_name}: {err}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"handler {path!r}: {module_name} has no callable {attribute!r}")
    return factory  # type: ignore[no-any-return]
