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
import logging
import time
from typing import Protocol

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtime.manager.queue import Taken, TaskQueue, TaskRecord, TokenUsage
from runtime.worker.handlers.base import (
    Handler,
    HandlerResult,
    RetryableError,
    TaskContext,
    TaskFailed,
)
from runtime.worker.manager_client import ManagerClient, ManagerRefused
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.settings import WorkerSettings

__all__ = ["CostGate", "Worker"]

log = logging.getLogger("agentops.worker")


class CostGate(Protocol):
    """What the worker needs of the cost engine (runtime.worker.cost_client)."""

    async def choose_model(self, task: TaskRecord, requested: str | None) -> str | None: ...

    async def record(
        self, task: TaskRecord, attempt: int, agent_type: str, usage: tuple[TokenUsage, ...]
    ) -> None: ...

    async def release(self, task: TaskRecord, attempt: int) -> None: ...

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
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.queue = TaskQueue(redis, max_queued_per_type=1, max_attempts=1)
        self.manager = manager
        self.handler = handler
        self.metrics = metrics
        self.cost = cost
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
        for entry in entries:
            self._running[entry.entry_id] = asyncio.create_task(self._run(entry))

    async def _wait_for_room(self, stop: asyncio.Event | None = None) -> None:
        waits = [asyncio.ensure_future(self._room.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        self._room.clear()

    async def _run(self, entry: Taken) -> None:
        agent_type = self.settings.agent_type
        self.metrics.in_flight.labels(agent_type).inc()
        try:
            await self._attempt(entry)
        except Exception:
            # Unreported: the entry stays pending and comes back after the visibility timeout.
            log.exception("task %s: could not report its outcome", entry.task_id)
            self.metrics.tasks.labels(agent_type, "lost").inc()
        finally:
            self.metrics.in_flight.labels(agent_type).dec()
            self._running.pop(entry.entry_id, None)
            self._room.set()

    async def _attempt(self, entry: Taken) -> None:
        s = self.settings
        agent_id, agent_type = s.agent_id, s.agent_type
        task = await self.queue.start(entry.task_id, agent_id, entry.agent_type)
        if task is None:
            await self.queue.discard(entry)  # reclaimed meanwhile: another attempt owns it
            return
        started = time.perf_counter()
        result: HandlerResult | None = None
        error: str | None = None
        retry_reason: str | None = None
        defer_s: float | None = None
        model: str | None = None
        try:
            # Inside the try: a rate limit retries later, an exhausted budget fails the task.
            model = await self.cost.choose_model(task, s.model) if self.cost else None
            context = TaskContext(
                task_id=task.task_id,
                attempt=task.attempts,
                agent_type=task.agent_type,
                request_type=task.request_type,
                team=task.team,
                complexity=task.complexity,
                payload=task.payload,
                model=model,
            )
            result = await asyncio.wait_for(self.handler(context), s.task_timeout_s)
        except TimeoutError:
            retry_reason = f"handler timed out after {s.task_timeout_s:g}s"
        except RetryableError as err:
            retry_reason = f"retryable: {err}"
            defer_s = err.defer_s
        except TaskFailed as err:
            error = str(err) or type(err).__name__
        except Exception as err:
            error = f"handler error: {type(err).__name__}: {err}"
            log.exception("task %s: handler raised", entry.task_id)
        self.metrics.duration.labels(agent_type).observe(time.perf_counter() - started)

        usage = result.usage if result is not None else ()
        for u in usage:
            self.metrics.tokens.labels(agent_type, u.model, "input").inc(u.input_tokens)
            self.metrics.tokens.labels(agent_type, u.model, "output").inc(u.output_tokens)
        if self.cost is not None and usage:
            # Before the acknowledgement: a crash between the two re-sends, never loses, usage.
            await self._record(task, usage)
        elif self.cost is not None and model is not None:
            await self.cost.release(task, task.attempts)  # nothing spent: free the hold

        if retry_reason is not None:
            outcome = await self.queue.retry(
                entry, retry_reason, s.retry_backoff_s, s.retry_backoff_max_s, defer_s=defer_s
            )
            self.metrics.tasks.labels(agent_type, "deferred" if defer_s else "retried").inc()
            log.info("task %s: %s → %s", entry.task_id, retry_reason, outcome)
            return
        output = result.output if result is not None else None
        if model is not None and isinstance(output, dict):
            output = {**output, "model": model}
        if await self.queue.complete(entry, agent_id, result=output, error=error, usage=usage):
            self.metrics.tasks.labels(agent_type, "failed" if error else "succeeded").inc()

    async def _record(self, task: TaskRecord, usage: tuple[TokenUsage, ...]) -> None:
        assert self.cost is not None
        delay = 0.2
        for attempt in range(1, self.settings.usage_record_attempts + 1):
            try:
                await self.cost.record(task, task.attempts, self.settings.agent_type, usage)
                return
            except Exception as err:
                if attempt == self.settings.usage_record_attempts:
                    raise
                log.warning("usage of %s not recorded (%s); retrying", task.task_id, err)
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
