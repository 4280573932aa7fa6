"""The worker's loop: register, heartbeat, read the agent's inbox, run tasks, report.

The manager assigns a task by appending it to this agent's inbox stream in Redis; the worker
reads the inbox in batches (no HTTP hop per task), marks each task started, runs its handler
with a timeout and at most `capacity` at once, records the token usage in the cost engine and
only then acknowledges the task with its result. A crash at any point leaves the entry pending
in the inbox: the manager gives it to another agent after the visibility timeout, and the
usage record's idempotency key (task id + attempt) keeps a re-sent report from counting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar, cast

import httpx
from opentelemetry.trace import SpanKind
from pydantic import JsonValue
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.settings.worker import WorkerSettings
from runtime.manager.queue import Taken, TaskQueue, TaskRecord, TokenUsage
from runtime.service.logs import bind_task
from runtime.service.redis import TRANSIENT_REDIS_ERRORS
from runtime.service.tracing import continued, tracer
from runtime.worker.handlers.base import (
    DependencyUnavailable,
    Handler,
    RetryableError,
    TaskContext,
    TaskFailed,
)
from runtime.worker.manager_client import ManagerClient, ManagerRefused
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.tools import ToolCall, ToolGate

__all__ = ["ArtifactKeeper", "CostGate", "Outcome", "Worker", "task_usage"]

log = logging.getLogger("agentops.worker")
_tracer = tracer("agentops.worker")
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What one run of the handler came to."""

    model: str | None  # the model the cost engine reserved for this attempt
    output: object = None
    error: str | None = None
    usage: tuple[TokenUsage, ...] = ()
    retry_reason: str | None = None  # set: the task comes back instead of finishing
    defer_s: float | None = None  # a limit's "retry after": the attempt does not count
    outage: bool = False  # a dependency did not answer: the attempt does not count
    reserved: int = 0  # model calls of this attempt the cost engine holds a reservation for
    recorded: int = 0  # of its usage, the calls already recorded while the handler ran


def task_usage(task: TaskRecord, attempt: int) -> tuple[TokenUsage, ...]:
    """The usage stored with the task's finished attempt (none for another attempt)."""
    return task.usage if task.outcome_attempt == attempt else ()


@dataclass
class _ModelCalls:
    """The attempt's model calls (handlers.base.ModelCalls): how many the cost engine holds,
    and the usage each reported, so a failure after some calls still charges them."""

    task: TaskRecord
    cost: CostGate | None
    agent_type: str
    reserved: int = 0
    recorded: int = 0
    usage: list[TokenUsage] = field(default_factory=list)

    async def reserve_next(self, model: str) -> str:
        if self.cost is None:
            return model
        task, call = self.task, self.reserved + 1
        with _tracer.start_as_current_span(
            "reserve", kind=SpanKind.CLIENT, attributes={"call": call}
        ):
            # Settle the calls made so far first: the budget then counts what they cost, not
            # their holds, and what they spent is charged even if this one is refused.
            made = tuple(self.usage)
            await self.cost.record(task, task.attempts, self.agent_type, made, self.recorded + 1)
            self.recorded = len(made)
            chosen = await self.cost.choose_model(task, model, call=call)
        self.reserved = call
        return chosen or model

    def spent(self, usage: TokenUsage) -> None:
        self.usage.append(usage)


def _context(
    task: TaskRecord,
    model: str | None,
    on_tool_call: Callable[[ToolCall], None],
    gate: ToolGate | None,
    calls: _ModelCalls,
) -> TaskContext:
    return TaskContext(
        task_id=task.task_id,
        attempt=task.attempts,
        agent_type=task.agent_type,
        request_type=task.request_type,
        team=task.team,
        complexity=task.complexity,
        payload=task.payload,
        model=model,
        on_tool_call=on_tool_call,
        tool_gate=gate,
        model_calls=calls if calls.cost is not None else None,
    )


def _with_model(output: object, model: str | None) -> object:
    if model is not None and isinstance(output, dict):
        return {**output, "model": model}
    return output


def _unstorable(output: object) -> str | None:
    """Why an output cannot be stored as JSON text (None: it can)."""
    try:
        json.dumps(output, allow_nan=False).encode()
    except (TypeError, ValueError) as err:  # NaN, a lone surrogate, a non-JSON type
        return f"handler output is not storable JSON: {type(err).__name__}"
    return None


class CostGate(Protocol):
    """What the worker needs of the cost engine (runtime.worker.cost_client)."""

    async def choose_model(
        self, task: TaskRecord, requested: str | None, *, call: int = 1
    ) -> str | None: ...

    async def record(
        self,
        task: TaskRecord,
        attempt: int,
        agent_type: str,
        usage: tuple[TokenUsage, ...],
        first: int = 1,
    ) -> None: ...

    async def release(self, task: TaskRecord, attempt: int, call: int = 1) -> None: ...

    def follows(self, redis: Redis) -> bool:
        """Whether a usage record made after a script call on `redis`'s ordered stream
        (runtime.service.redis.ordered) runs after it: the in-process gate on that client."""
        ...

    async def admit_tool_call(self, task: TaskRecord, server: str, tool: str) -> None: ...

    async def aclose(self) -> None: ...


def _failed(
    task: TaskRecord, timeout_s: float, err: Exception, model: str | None, calls: _ModelCalls
) -> Outcome:
    """The outcome of a handler (or reservation) that raised: retried or failed, with the usage
    of the model calls it made before."""
    if isinstance(err, TimeoutError):
        found = Outcome(model, retry_reason=f"handler timed out after {timeout_s:g}s")
    elif isinstance(err, DependencyUnavailable):
        found = Outcome(model, retry_reason=f"dependency unavailable: {err}", outage=True)
    elif isinstance(err, RetryableError):
        found = Outcome(model, retry_reason=f"retryable: {err}", defer_s=err.defer_s)
    elif isinstance(err, TaskFailed):
        found = Outcome(model, error=str(err) or type(err).__name__)
    else:
        log.error("task %s: handler raised", task.task_id, exc_info=err)
        found = Outcome(model, error=f"handler error: {type(err).__name__}: {err}")
    return replace(
        found, usage=tuple(calls.usage), reserved=calls.reserved, recorded=calls.recorded
    )


class ArtifactKeeper(Protocol):
    """Large outputs into the pool's bucket (runtime.worker.artifacts)."""

    async def keep(self, output: JsonValue, team: str, task_id: str, attempt: int) -> JsonValue: ...

    async def aclose(self) -> None: ...


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        redis: Redis,
        manager: ManagerClient,
        handler: Handler,
        metrics: WorkerMetrics,
        cost: CostGate | None = None,
        artifacts: ArtifactKeeper | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        # Submits nothing: every retry and reclaim honours the policy the task carries.
        self.queue = TaskQueue(redis)
        self.manager = manager
        self.handler = handler
        self.metrics = metrics
        self.cost = cost
        self.artifacts = artifacts
        self.registered = asyncio.Event()
        self.draining = False
        self._room = asyncio.Event()  # set whenever a running task ends
        self._running: dict[str, asyncio.Task[None]] = {}  # entry id → its task

    @property
    def in_flight(self) -> int:
        return len(self._running)

    # -- membership ------------------------------------------------------------------------
    async def register(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await self.manager.register()
                self.registered.set()
                log.info("registered %s as %s", self.settings.agent_id, self.settings.agent_type)
                return
            except ManagerRefused as err:
                # A refusal (unknown agent type, bad token) needs a fixed rollout, not a
                # faster retry: say so loudly, stay unready, try again now and then.
                log.error("manager refused the registration: %s", err)
                wait = 30.0
            except (httpx.HTTPError, OSError) as err:  # the manager may not be up yet
                log.warning("manager not reachable (%s); retrying in %.1fs", err, delay)
                wait, delay = delay, min(delay * 2, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.heartbeat_interval_s)
            try:
                if not await self.manager.heartbeat() and not self.draining:
                    log.warning("manager forgot %s; registering again", self.settings.agent_id)
                    await self.manager.register()
                # Work in progress is not abandoned work: keep its visibility timeout fresh.
                await self.queue.touch(self.settings.agent_id, list(self._running))
            except Exception as err:
                log.warning("heartbeat failed: %s", err)

    # -- work ------------------------------------------------------------------------------
    async def consume(self, stop: asyncio.Event) -> None:
        """Read and start tasks until stopped (drain): never more than `capacity` at once."""
        await self.registered.wait()
        while not stop.is_set():
            free = self.settings.capacity - len(self._running)
            if free <= 0:
                await self._wait_for_room(stop)
                continue
            try:
                entries = await self.queue.read_inbox(
                    self.settings.agent_id, count=free, block_ms=500
                )
            except (RedisError, OSError) as err:
                log.warning("inbox read failed: %s", err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            self._launch(entries)

    def _launch(self, entries: list[Taken]) -> None:
        """Run each entry as its own asyncio task; all of them are started (marked running) in
        one round trip."""
        if not entries:
            return
        agent_id = self.settings.agent_id
        starts = asyncio.ensure_future(
            self._persist("start", lambda: self.queue.start_many(entries, agent_id))
        )
        for i, entry in enumerate(entries):
            self._running[entry.entry_id] = asyncio.create_task(self._run(entry, starts, i))

    async def _wait_for_room(self, stop: asyncio.Event | None = None) -> None:
        waits = [asyncio.ensure_future(self._room.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        self._room.clear()

    async def _run(
        self,
        entry: Taken,
        starts: asyncio.Future[list[TaskRecord | None]] | None = None,
        index: int = 0,
    ) -> None:
        """One entry's attempt; `starts[index]` is its start when a batch started it."""
        agent_type = self.settings.agent_type
        bind_task(entry.task_id)  # this asyncio task's log lines name the task
        self.metrics.in_flight.labels(agent_type).inc()
        try:
            if starts is None:
                starts = asyncio.ensure_future(
                    self._persist(
                        "start", lambda: self.queue.start_many([entry], self.settings.agent_id)
                    )
                )
            # Shielded: one task's cancellation does not cancel its batch's start.
            await self._attempt(entry, (await asyncio.shield(starts))[index])
        except Exception:
            # Unreported: the entry stays pending and comes back after the visibility timeout.
            log.exception("task %s: could not report its outcome", entry.task_id)
            self.metrics.tasks.labels(agent_type, "lost").inc()
        finally:
            self.metrics.in_flight.labels(agent_type).dec()
            self._running.pop(entry.entry_id, None)
            self._room.set()

    async def _attempt(self, entry: Taken, task: TaskRecord | None) -> None:
        """The attempt of an entry `start` marked running (None: no longer this agent's)."""
        agent_id = self.settings.agent_id
        if task is None:
            await self._persist("discard", lambda: self.queue.discard(entry))
            return  # reclaimed meanwhile: another attempt owns it
        # A child of the task's submit span: one trace from submit to usage record.
        with _tracer.start_as_current_span(
            "attempt",
            context=continued(task.traceparent),
            attributes={"task_id": task.task_id, "attempt": task.attempts, "agent_id": agent_id},
        ):
            await self._started(entry, task)

    async def _started(self, entry: Taken, task: TaskRecord) -> None:
        """The attempt of a task this agent has marked running."""
        if task.outcome_attempt is not None:
            # An earlier attempt finished and lost only its usage record or acknowledgement:
            # finish it from the stored outcome; the work is not run again.
            self.metrics.tasks.labels(self.settings.agent_type, "refinished").inc()
            attempt = task.outcome_attempt
            kept = Outcome(None, task.result, task.error, task_usage(task, attempt))
            await self._settle(entry, task, attempt, kept)
            return
        outcome = await self._execute(task)
        if outcome.retry_reason is not None:
            await self._give_back(entry, task, outcome)
            return
        if self.cost is None:  # nothing to charge: store the outcome and acknowledge at once
            await self._finish_and_complete(entry, task, outcome)
            return
        if self.cost.follows(self.redis):
            stored, charged = await self._finish_charging(task, outcome)
        else:
            stored, charged = await self._persist("finish", self._finisher(task, outcome)), False
        if not stored:
            # Reclaimed while it ran: another attempt will run it. What this run spent was
            # spent all the same, so it is recorded under this attempt's own key.
            log.warning("task %s: reclaimed while it ran (attempt %d)", task.task_id, task.attempts)
            if not charged:
                await self._charge(task, task.attempts, outcome)
            await self._persist("discard", lambda: self.queue.discard(entry))
            return
        await self._settle(entry, task, task.attempts, outcome, charged=charged)

    def _finisher(self, task: TaskRecord, outcome: Outcome) -> Callable[[], Awaitable[bool]]:
        """The attempt's `finish` (its outcome made durable), as a call to persist."""
        agent_id = self.settings.agent_id
        return lambda: self.queue.finish(
            task, agent_id, result=outcome.output, error=outcome.error, usage=outcome.usage
        )

    async def _finish_charging(self, task: TaskRecord, outcome: Outcome) -> tuple[bool, bool]:
        """Whether the outcome is stored, and whether its usage is charged, when the cost gate's
        records follow the queue's script stream (in-process, one standalone Redis): `finish`
        and the usage record go out together, in that order, in one round trip — Redis runs
        one connection's commands in order, so the outcome is durable before any charge, as
        in the separate steps. What fails is done again as those steps, `finish` first."""
        s = self.settings
        stored_soon = self.queue.finish_soon(
            task, s.agent_id, result=outcome.output, error=outcome.error, usage=outcome.usage
        )
        try:
            await self._charge(task, task.attempts, outcome, tries=1)
            charged = True
        except DependencyUnavailable:
            charged = False  # charged again after `finish` succeeded (_settle) or not
        try:
            stored = bool(await stored_soon)
        except TRANSIENT_REDIS_ERRORS:
            stored = await self._persist("finish", self._finisher(task, outcome))
        return stored, charged

    async def _finish_and_complete(self, entry: Taken, task: TaskRecord, done: Outcome) -> None:
        if not await self._complete(
            entry, done, finishing=task.attempts
        ):  # reclaimed while it ran: another attempt will run it
            log.warning("task %s: reclaimed while it ran (attempt %d)", task.task_id, task.attempts)
            await self._persist("discard", lambda: self.queue.discard(entry))
            return
        self._completed(task, task.attempts, done)

    def _completed(self, task: TaskRecord, attempt: int, done: Outcome) -> None:
        status = "failed" if done.error is not None else "succeeded"
        self.metrics.tasks.labels(self.settings.agent_type, status).inc()
        log.info("task %s %s (attempt %d)", task.task_id, status, attempt)

    async def _execute(self, task: TaskRecord) -> Outcome:
        """Run the handler once: its output and usage, or why the task should come back."""
        s = self.settings
        started = time.perf_counter()
        model: str | None = None
        calls = _ModelCalls(task, self.cost, s.agent_type)
        try:
            # Inside the try: a rate limit retries later, an exhausted budget fails the task.
            if self.cost is not None:
                with _tracer.start_as_current_span("reserve", kind=SpanKind.CLIENT):
                    model = await self.cost.choose_model(task, s.model)
                calls.reserved = 1
            with _tracer.start_as_current_span("handler", attributes={"model": model or ""}):
                # In this asyncio task (no task of its own per handler, as wait_for makes).
                async with asyncio.timeout(s.task_timeout_s):
                    result = await self.handler(
                        _context(
                            task, model, self._tool_observer(task), self._tool_gate(task), calls
                        )
                    )
            output = _with_model(result.output, model)
            problem = _unstorable(output)
            outcome = Outcome(
                model,
                output=None if problem else output,
                error=problem,
                usage=result.usage,
                reserved=calls.reserved,
                recorded=calls.recorded,
            )
        except Exception as err:
            # What the calls made before the failure spent is charged all the same.
            outcome = _failed(task, s.task_timeout_s, err, model, calls)
        outcome = await self._keep_artifact(task, outcome)
        self.metrics.duration.labels(s.agent_type).observe(time.perf_counter() - started)
        for u in outcome.usage:
            self.metrics.tokens.labels(s.agent_type, u.model, "input").inc(u.input_tokens)
            self.metrics.tokens.labels(s.agent_type, u.model, "output").inc(u.output_tokens)
        return outcome

    async def _keep_artifact(self, task: TaskRecord, outcome: Outcome) -> Outcome:
        """A large output goes to the pool's bucket; the result names the object instead. If
        S3 does not answer the task comes back (its usage charged); if it refuses, it fails."""
        if self.artifacts is None or outcome.error is not None or outcome.retry_reason:
            return outcome
        try:
            with _tracer.start_as_current_span("artifact", kind=SpanKind.CLIENT):
                kept = await self.artifacts.keep(
                    cast(JsonValue, outcome.output), task.team, task.task_id, task.attempts
                )
        except DependencyUnavailable as err:
            return replace(outcome, output=None, retry_reason=f"{err}", outage=True)
        except TaskFailed as err:
            return replace(outcome, output=None, error=str(err))
        return replace(outcome, output=_with_model(kept, outcome.model))

    def _tool_gate(self, task: TaskRecord) -> ToolGate | None:
        """The team's hourly tool-call limit, asked before a call leaves (none: no engine)."""
        cost = self.cost
        if cost is None:
            return None

        async def gate(server: str, tool: str) -> None:
            await cost.admit_tool_call(task, server, tool)

        return gate

    def _tool_observer(self, task: TaskRecord) -> Callable[[ToolCall], None]:
        """Each tool call of the task as metrics, attributed to the task's team."""
        agent_type = self.settings.agent_type

        def observe(call: ToolCall) -> None:
            m = self.metrics
            m.tool_calls.labels(agent_type, task.team, call.server, call.tool, call.outcome).inc()
            m.tool_call_duration.labels(agent_type, call.server, call.tool).observe(call.seconds)

        return observe

    async def _give_back(self, entry: Taken, task: TaskRecord, outcome: Outcome) -> None:
        """A retryable failure: free the hold, then back to the queue (an outage or a limit
        spends no attempt; anything else does, up to the task's max attempts)."""
        s = self.settings
        await self._charge(task, task.attempts, outcome)
        reason = outcome.retry_reason or "retry"
        result = await self._persist(
            "retry",
            lambda: self.queue.retry(
                entry,
                reason,
                s.retry_backoff_s,
                s.retry_backoff_max_s,
                defer_s=outcome.defer_s,
                outage=outcome.outage,
            ),
        )
        kind = "deferred" if outcome.defer_s or outcome.outage else "retried"
        self.metrics.tasks.labels(s.agent_type, kind).inc()
        log.info("task %s: %s → %s", entry.task_id, reason, result)

    async def _settle(
        self, entry: Taken, task: TaskRecord, attempt: int, done: Outcome, charged: bool = False
    ) -> None:
        """Charge the stored outcome's usage (idempotent per attempt; `charged`: done already),
        then acknowledge with it. `done` is what the task's hash holds: this attempt's outcome
        as `finish` stored it, or the earlier attempt's as `start` read it (the truth: this
        delivery may not have run it)."""
        try:
            if not charged:
                await self._charge(task, attempt, done)
        except DependencyUnavailable as err:
            # The outcome is stored: the task comes back to be charged and acknowledged later.
            await self._give_back(
                entry,
                task,
                Outcome(done.model, retry_reason=f"usage not recorded: {err}", outage=True),
            )
            return
        if await self._complete(entry, done):  # False: no longer this agent's (reclaimed)
            self._completed(task, attempt, done)

    async def _complete(self, entry: Taken, done: Outcome, finishing: int | None = None) -> bool:
        """Acknowledge with the outcome (`finishing`: store that attempt's outcome first)."""
        acknowledged: bool = await self._persist(
            "complete",
            lambda: self.queue.complete(
                entry,
                self.settings.agent_id,
                result=done.output,
                error=done.error,
                usage=done.usage,
                finishing=finishing,
            ),
        )
        return acknowledged

    async def _charge(
        self, task: TaskRecord, attempt: int, outcome: Outcome, tries: int | None = None
    ) -> None:
        """Record what an attempt spent, one record per model call (before its
        acknowledgement), and free the holds of reserved calls that were never made. An
        unreachable cost state is tried `tries` times (default: the usage record attempts)."""
        if self.cost is None:
            return
        usage = outcome.usage
        for call in range(len(usage) + 1, outcome.reserved + 1):
            await self.cost.release(task, attempt, call)  # reserved, not made: free the hold
        if len(usage) <= outcome.recorded:
            return
        delay = 0.2
        for left in range((tries or self.settings.usage_record_attempts) - 1, -1, -1):
            try:
                with _tracer.start_as_current_span("usage record", kind=SpanKind.CLIENT):
                    await self.cost.record(
                        task, attempt, self.settings.agent_type, usage, outcome.recorded + 1
                    )
                return
            except TaskFailed as err:
                # Refused for good (a 4xx): charging it again would be refused again.
                log.error("usage of %s refused by the cost engine: %s", task.task_id, err)
                self.metrics.tasks.labels(self.settings.agent_type, "usage_refused").inc()
                return
            except DependencyUnavailable:
                if not left:
                    raise
                log.warning("usage of %s not recorded yet; retrying", task.task_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _persist(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A queue call retried through Redis outages (connection lost, loading, failover): a
        state change this worker owes is never dropped on a reset connection."""
        delay = 0.1
        while True:
            try:
                return await call()
            except TRANSIENT_REDIS_ERRORS as err:
                log.warning("%s: Redis unavailable (%s); retrying in %.1fs", what, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _finish_inbox(self) -> None:
        # Tasks assigned before the drain took effect are ours too: run them, then wait.
        while True:
            free = self.settings.capacity - len(self._running)
            entries: list[Taken] = []
            if free > 0:
                with contextlib.suppress(RedisError, OSError):
                    entries = await self.queue.read_inbox(self.settings.agent_id, count=free)
                self._launch(entries)
            if not entries and not self._running:
                return
            await self._wait_for_room()

    # -- shutdown --------------------------------------------------------------------------
    async def drain(self) -> None:
        """SIGTERM: no new work, in-flight tasks finish within the grace, then deregister."""
        self.draining = True
        with contextlib.suppress(Exception):
            await self.manager.drain()
        try:
            await asyncio.wait_for(self._finish_inbox(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.warning("%d tasks did not finish within the drain timeout", len(self._running))
        with contextlib.suppress(Exception):
            # Anything left (unfinished) goes back to the queue with the deregistration.
            await self.manager.deregister()
