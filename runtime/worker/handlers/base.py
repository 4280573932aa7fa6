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
    "ModelCalls",
    "RetryableError",
    "TaskContext",
    "TaskFailed",
    "load_handler",
]


class ModelCalls(Protocol):
    """The attempt's model calls as the cost engine holds them (the worker's, runner.py).

    The worker reserves the first call before the handler runs. A handler that calls the model
    again in the same attempt (the LLM tool loop) reserves each further call before making it,
    and reports every call's usage as soon as the provider gave it: each call is held, recorded
    and settled under its own key, and what was spent before a failure is still charged.
    """

    async def reserve_next(self, model: str) -> str:
        """Check-and-reserve the attempt's next model call, after the calls made so far are
        recorded (their holds settle to what they cost); the model to call (a budget downgrade
        applied). Raises like the first reservation: TaskFailed (budget), RetryableError (an
        hourly limit), DependencyUnavailable."""
        ...

    def spent(self, usage: TokenUsage) -> None:
        """One model call's usage, as the provider reported it."""
        ...


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
    # None: no cost engine; the handler calls the model as often as it needs.
    model_calls: ModelCalls | None = None


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
