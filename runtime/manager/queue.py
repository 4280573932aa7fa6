"""Durable task queue on Redis Streams: at-least-once delivery with acknowledgement.

Life of a task:

    submit ──▶ ready stream (per type and priority) ──take──▶ a dispatcher (manager replica)
           ──assign──▶ the chosen agent's inbox stream ──read/start──▶ running
           ──complete──▶ succeeded | failed
    dead or silent agent (inbox entry idle past the visibility timeout), or a retryable
    failure ──requeue──▶ delayed (backoff) ──promote──▶ ready again, until max attempts
           ──▶ dead-letter stream

Every transition that touches more than one key is one Lua script, so a crash of any
process between two steps loses nothing: a task is always in exactly one stream, pending
entry list or the delayed set. Crash recovery is by reclaiming pending entries that stayed
idle too long (XAUTOCLAIM), not by any process-local state.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from runtime.manager import keys as k
from runtime.manager import scripts
from runtime.manager.constants import Priority
from runtime.manager.tasks import (
    STATS_ALPHA,
    Assignment,
    QueueFull,
    SubmitResult,
    Taken,
    TaskRecord,
    TaskStatus,
    TokenUsage,
)
from runtime.service import redis as rd
from runtime.service.tracing import current_traceparent

__all__ = [
    "STATS_ALPHA",
    "Assignment",
    "QueueFull",
    "SubmitResult",
    "Taken",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
    "TokenUsage",
]


class TaskQueue:
    """The queue's operations; every instance (manager replica, worker) shares Redis only."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_queued_per_type: int = 10_000,
        max_attempts: int = 3,
        retry_after_s: int = 5,
        idempotency_ttl_s: int = 24 * 3600,
        events_cap: int = 100_000,
        retention_s: int = 7 * 24 * 3600,
        dead_letter_cap: int = 100_000,
        replication: rd.Replication = rd.NO_REPLICAS,
    ) -> None:
        """`max_attempts`, `retention_s` and `dead_letter_cap` are recorded in every task this
        queue accepts (its attempt policy); the other paths (workers, reclaims) honour the
        task's own and use theirs only for tasks accepted before a policy was recorded.
        `replication`: replicas that must confirm a submit before it counts as accepted."""
        self.redis = redis
        self.replication = replication
        self.max_queued = max_queued_per_type
        self.max_attempts = max_attempts
        self.retention_s = retention_s
        self.dead_letter_cap = dead_letter_cap
        self.retry_after_s = retry_after_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.events_cap = events_cap
        self._submit = redis.register_script(scripts.SUBMIT)
        # Concurrent submits (the API's requests) share round trips when no replica must
        # confirm them; with replicas each is written and WAITed for on its own.
        self._submit_batch = rd.ScriptBatch(redis, self._submit)
        self._assign = redis.register_script(scripts.ASSIGN)
        self._assign_many = redis.register_script(scripts.ASSIGN_MANY)
        self._start = redis.register_script(scripts.START)
        self._start_many = redis.register_script(scripts.START_MANY)
        self._finish = redis.register_script(scripts.FINISH)
        self._ordered = rd.ordered(redis)
        self._complete = redis.register_script(scripts.COMPLETE)
        # Workers end many attempts at once: their acknowledgements share round trips.
        self._complete_batch = rd.ScriptBatch(redis, self._complete)
        self._finish_complete = rd.ScriptBatch(
            redis, redis.register_script(scripts.FINISH_COMPLETE)
        )
        self._requeue = redis.register_script(scripts.REQUEUE)
        self._promote = redis.register_script(scripts.PROMOTE)
        self._discard = redis.register_script(scripts.DISCARD)
        self._groups: set[tuple[str, str]] = set()

    async def _group(self, stream: str, group: str) -> None:
        if (stream, group) in self._groups:
            return
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._groups.add((stream, group))

    # -- intake ------------------------------------------------------------------------------
    async def submit(
        self,
        agent_type: str,
        payload: Any,
        *,
        priority: Priority = Priority.NORMAL,
        request_type: str | None = None,
        idempotency_key: str | None = None,
        complexity: float = 0.5,
        team: str = "default",
    ) -> SubmitResult:
        task_id = uuid.uuid4().hex
        ready = k.ready_stream(agent_type, priority)
        await self._group(ready, k.DISPATCH_GROUP)
        fields = {
            "id": task_id,
            "agent_type": agent_type,
            "request_type": request_type or "",
            "complexity": repr(complexity),
            "team": team,
            "priority": int(priority),
            "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True),
            "status": TaskStatus.QUEUED.value,
            "attempts": 0,
            "idempotency_key": idempotency_key or "",
            "submitted_at": repr(time.time()),
            # The attempt policy travels with the task.
            "max_attempts": self.max_attempts,
            "retention_s": self.retention_s,
            "dead_cap": self.dead_letter_cap,
            # The trace the submit runs in travels with the task (empty outside any span).
            "traceparent": current_traceparent(),
        }
        flat = [str(x) for pair in fields.items() for x in pair]
        keys = [
            k.idempotency_key(idempotency_key or "-"),
            k.task_key(task_id),
            ready,
            k.queued_counter(agent_type),
        ]
        args = [
            task_id,
            self.max_queued,
            self.idempotency_ttl_s,
            "1" if idempotency_key else "0",
            request_type or "",
            repr(complexity),
            *flat,
        ]
        if self.replication.replicas > 0:
            reply = await rd.replicated(self.redis, self._submit, keys, args, self.replication)
        else:
            reply = await self._submit_batch(keys, args)
        outcome, value = reply
        outcome, value = rd.text(outcome), rd.text(value)
        if outcome == "full":
            raise QueueFull(agent_type, int(value), self.retry_after_s)
        return SubmitResult(task_id=value, created=outcome == "created")

    # -- dispatch (manager) ---------------------------------------------------------------
    async def take(self, agent_type: str, consumer: str, count: int = 16) -> list[Taken]:
        """Up to `count` ready tasks of a type, highest priority first."""
        taken: list[Taken] = []
        for priority in sorted(Priority, reverse=True):
            if len(taken) >= count:
                break
            stream = k.ready_stream(agent_type, priority)
            await self._group(stream, k.DISPATCH_GROUP)
            reply = await self.redis.xreadgroup(
                k.DISPATCH_GROUP, consumer, {stream: ">"}, count=count - len(taken)
            )
            taken += _entries(reply)
        return taken

    async def take_ready(
        self, wants: Mapping[str, int], consumer: str, block_ms: int | None = None
    ) -> list[Taken]:
        """New ready tasks of several types in one round trip: up to `wants[type]` of each
        priority class (the caller serves them highest priority first), waiting up to
        `block_ms` for the first when there is none."""
        streams: dict[Any, Any] = {}
        for agent_type in wants:
            for priority in sorted(Priority, reverse=True):
                stream = k.ready_stream(agent_type, priority)
                await self._group(stream, k.DISPATCH_GROUP)
                streams[stream] = ">"
        if not streams:
            return []
        reply = await self.redis.xreadgroup(
            k.DISPATCH_GROUP, consumer, streams, count=max(wants.values()), block=block_ms
        )
        return _entries(reply)

    async def held_by(self, consumer: str, agent_types: Iterable[str]) -> list[Taken]:
        """Ready tasks this consumer took and has not assigned yet (after its restart)."""
        streams: dict[Any, Any] = {}
        for agent_type in agent_types:
            for priority in Priority:
                stream = k.ready_stream(agent_type, priority)
                await self._group(stream, k.DISPATCH_GROUP)
                streams[stream] = "0"
        if not streams:
            return []
        return _entries(await self.redis.xreadgroup(k.DISPATCH_GROUP, consumer, streams))

    async def reclaim_ready(self, agent_type: str, consumer: str, min_idle_s: float) -> list[Taken]:
        """Entries a crashed dispatcher took and never assigned: this consumer takes them over."""
        found: list[Taken] = []
        for priority in sorted(Priority, reverse=True):
            stream = k.ready_stream(agent_type, priority)
            await self._group(stream, k.DISPATCH_GROUP)
            _, claimed, *_ = await self.redis.xautoclaim(
                stream, k.DISPATCH_GROUP, consumer, int(min_idle_s * 1000), count=100
            )
            found += [_entry(stream, e, f) for e, f in claimed if f]
        return found

    async def assign(self, taken: Taken, agent_id: str) -> Assignment:
        """Move a taken task into the agent's inbox, unless another dispatcher already did or
        the agent is gone or draining (then the task stays taken, for another agent)."""
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        moved = await self._assign(
            keys=[taken.stream, inbox, k.task_key(taken.task_id), k.agent_key(agent_id)],
            args=[k.DISPATCH_GROUP, taken.entry_id, taken.task_id, agent_id, repr(time.time())],
        )
        return Assignment(int(moved))

    # -- work (agent) ---------------------------------------------------------------------
    async def assign_many(self, pairs: Sequence[tuple[Taken, str]]) -> list[Assignment]:
        """`assign` for a batch in one script (one round trip; each agent's entries land in
        its inbox together)."""
        if not pairs:
            return []
        for _, agent_id in pairs:
            await self._group(k.inbox(agent_id), k.WORKER_GROUP)
        keys: list[Any] = []
        args: list[Any] = [k.DISPATCH_GROUP, repr(time.time())]
        for taken, agent_id in pairs:
            keys += [
                taken.stream,
                k.inbox(agent_id),
                k.task_key(taken.task_id),
                k.agent_key(agent_id),
            ]
            args += [taken.entry_id, taken.task_id, agent_id]
        return [Assignment(int(r)) for r in await self._assign_many(keys=keys, args=args)]

    async def read_inbox(
        self, agent_id: str, count: int, block_ms: int | None = None
    ) -> list[Taken]:
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        reply = await self.redis.xreadgroup(
            k.WORKER_GROUP, agent_id, {inbox: ">"}, count=count, block=block_ms
        )
        return _entries(reply)

    async def start(
        self, task_id: str, agent_id: str, agent_type: str | None = None
    ) -> TaskRecord | None:
        """Mark the task running on this agent and return it (one round trip when the inbox
        entry names the type); None when it is no longer this agent's."""
        reply = await self._start(
            keys=[
                k.task_key(task_id),
                k.queued_counter(agent_type or await self._type_of(task_id)),
                k.EVENTS,
            ],
            args=[agent_id, repr(time.time()), self.events_cap],
        )
        return _started(reply)

    async def start_many(self, entries: Sequence[Taken], agent_id: str) -> list[TaskRecord | None]:
        """`start` for a batch of inbox entries in one script (one round trip)."""
        if not entries:
            return []
        keys: list[Any] = [k.EVENTS]
        for e in entries:
            agent_type = e.agent_type or await self._type_of(e.task_id)
            keys += [k.task_key(e.task_id), k.queued_counter(agent_type)]
        reply = await self._start_many(
            keys=keys, args=[agent_id, repr(time.time()), self.events_cap]
        )
        return [_started(r) for r in reply]

    async def touch(self, agent_id: str, entries: list[str]) -> None:
        """Reset the idle time of entries still being worked on: they are not abandoned."""
        if entries:
            await self.redis.xclaim(
                k.inbox(agent_id), k.WORKER_GROUP, agent_id, 0, list[Any](entries), justid=True
            )

    async def finish(
        self,
        task: TaskRecord,
        agent_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        usage: Sequence[TokenUsage] = (),
    ) -> bool:
        """Make this attempt's outcome durable (result and usage together) before its usage is
        charged and the task acknowledged: from here on it is never run again. False when the
        attempt is no longer this agent's (reclaimed meanwhile)."""
        return bool(await self.finish_soon(task, agent_id, result=result, error=error, usage=usage))

    def finish_soon(
        self,
        task: TaskRecord,
        agent_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        usage: Sequence[TokenUsage] = (),
    ) -> asyncio.Future[Any]:
        """`finish`, queued now on the client's ordered script stream (rd.ordered): a script
        call made on that stream after this one runs after it, with no round trip between.
        Its answer: truthy when stored."""
        status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
        args = [
            agent_id,
            task.attempts,
            status.value,
            json.dumps(result),
            error or "",
            _usage_json(usage),
        ]
        # By text: never NOSCRIPT, so what follows it on the stream never runs before it.
        return self._ordered.call(self._finish, [k.task_key(task.task_id)], args, by_text=True)

    async def complete(
        self,
        entry: Taken,
        agent_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        usage: Sequence[TokenUsage] = (),
        finishing: int | None = None,
    ) -> bool:
        """Record the outcome and acknowledge; False when the task is no longer this agent's
        (reclaimed after its visibility timeout): another attempt owns it now.

        `finishing` (an attempt): `finish` that attempt and complete it in one step, for an
        attempt with nothing to charge in between; False, changing nothing, when that attempt
        is no longer this agent's."""
        keys, args = self._completion(entry, agent_id, result, error, usage)
        if finishing is None:
            return bool(await self._complete_batch(keys, args))
        return bool(await self._finish_complete(keys, [*args, finishing]))

    def _completion(
        self,
        entry: Taken,
        agent_id: str,
        result: Any,
        error: str | None,
        usage: Sequence[TokenUsage],
    ) -> tuple[list[Any], list[Any]]:
        status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
        keys = [entry.stream, k.task_key(entry.task_id), k.agent_key(agent_id), k.EVENTS]
        args = [
            k.WORKER_GROUP,
            entry.entry_id,
            agent_id,
            status.value,
            json.dumps(result),
            error or "",
            repr(time.time()),
            self.events_cap,
            STATS_ALPHA,
            _usage_json(usage),
            self.retention_s,
        ]
        return keys, args

    async def discard(self, entry: Taken) -> None:
        """Drop an inbox entry whose task is no longer this agent's (reclaimed meanwhile)."""
        await self._discard(keys=[entry.stream], args=[k.WORKER_GROUP, entry.entry_id])

    async def retry(
        self,
        entry: Taken,
        reason: str,
        backoff_s: float,
        backoff_max_s: float = 3600.0,
        *,
        defer_s: float | None = None,
        outage: bool = False,
        reclaimed: bool = False,
    ) -> str:
        """Give the task back for another attempt after `backoff_s` × 2^(attempts - 1), at most
        `backoff_max_s` (or dead-letter it when out of its attempts): 'retry' | 'dead' | 'gone'.

        With `defer_s` the task waits exactly that long and the attempt does not count: a rate
        limit or a budget window that says "later" is no failure of the task. With `outage` (a
        dependency such as the cost engine did not answer) the attempt does not count either,
        and the task waits with its own backoff of outages. A task whose attempt already
        finished is never dead-lettered or run again: it comes back to be acknowledged.
        `reclaimed`: taken from a silent or gone agent (counted when it was mid-work)."""
        task_id = entry.task_id
        agent_id = k.agent_of_inbox(entry.stream)
        outcome = await self._requeue(
            keys=[
                entry.stream,
                k.task_key(task_id),
                k.DELAYED,
                k.DEAD_LETTERS,
                k.queued_counter(await self._type_of(task_id)),
                k.agent_key(agent_id),
                k.EVENTS,
            ],
            args=[
                k.WORKER_GROUP,
                entry.entry_id,
                task_id,
                repr(time.time()),
                backoff_s,
                self.max_attempts,
                reason,
                self.events_cap,
                agent_id,
                backoff_max_s,
                _deferral(defer_s, outage),
                "1" if reclaimed else "0",
                self.retention_s,
                self.dead_letter_cap,
            ],
        )
        return rd.text(outcome)

    async def reclaim_inbox(
        self,
        agent_id: str,
        visibility_timeout_s: float,
        backoff_s: float,
        backoff_max_s: float = 3600.0,
    ) -> dict[str, str]:
        """Requeue what an agent holds past the visibility timeout: {task id: outcome}."""
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        _, claimed, *_ = await self.redis.xautoclaim(
            inbox, k.WORKER_GROUP, "reclaimer", int(visibility_timeout_s * 1000), count=100
        )
        outcomes = {}
        for entry_id, fields in claimed:
            if not fields:
                continue
            entry = _entry(inbox, entry_id, fields)
            outcomes[entry.task_id] = await self.retry(
                entry,
                f"agent {agent_id} did not finish within {visibility_timeout_s:g}s",
                backoff_s,
                backoff_max_s,
                reclaimed=True,
            )
        return outcomes

    async def evacuate(
        self, agent_id: str, reason: str, backoff_s: float, backoff_max_s: float = 3600.0
    ) -> dict[str, str]:
        """Requeue everything in a gone agent's inbox, delivered or not: {task id: outcome}."""
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        undelivered = _entries(
            await self.redis.xreadgroup(k.WORKER_GROUP, "reclaimer", {inbox: ">"}, count=10_000)
        )
        _, claimed, *_ = await self.redis.xautoclaim(
            inbox, k.WORKER_GROUP, "reclaimer", 0, count=10_000
        )
        entries = {e.entry_id: e for e in undelivered}
        entries |= {rd.text(e): _entry(inbox, e, f) for e, f in claimed if f}
        return {
            entry.task_id: await self.retry(entry, reason, backoff_s, backoff_max_s, reclaimed=True)
            for entry in entries.values()
        }

    async def promote_due(self, now: float | None = None) -> int:
        """Move retries whose backoff has passed back to their ready stream."""
        due = await rd.zrangebyscore(self.redis, k.DELAYED, "-inf", now or time.time(), 100)
        moved = 0
        for task_id in due:
            agent_type, priority = await rd.hmget(
                self.redis, k.task_key(task_id), ["agent_type", "priority"]
            )
            if agent_type is None or priority is None:
                await self.redis.zrem(k.DELAYED, task_id)
                continue
            ready = k.ready_stream(agent_type, Priority(int(priority)))
            await self._group(ready, k.DISPATCH_GROUP)
            moved += int(
                await self._promote(keys=[k.DELAYED, k.task_key(task_id), ready], args=[task_id])
            )
        return moved

    # -- reading -------------------------------------------------------------------------
    async def get(self, task_id: str) -> TaskRecord | None:
        raw = await rd.hgetall(self.redis, k.task_key(task_id))
        return TaskRecord.from_hash(raw) if raw else None

    async def dead_letters(self) -> int:
        return int(await self.redis.xlen(k.DEAD_LETTERS))

    async def queued(self, agent_type: str) -> int:
        return int(await self.redis.get(k.queued_counter(agent_type)) or 0)

    async def _type_of(self, task_id: str) -> str:
        agent_type = await rd.hget(self.redis, k.task_key(task_id), "agent_type")
        if agent_type is None:
            raise KeyError(f"no task {task_id}")
        return agent_type


def _started(reply: Any) -> TaskRecord | None:
    if not reply:
        return None
    flat = [rd.text(v) for v in reply]
    return TaskRecord.from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))


def _usage_json(usage: Sequence[TokenUsage]) -> str:
    return json.dumps([u.as_json() for u in usage], separators=(",", ":"))


def _deferral(defer_s: float | None, outage: bool) -> str:
    if outage:
        return "backoff"
    return "" if defer_s is None else repr(max(0.0, defer_s))


def _entry(stream: Any, entry_id: Any, fields: dict[Any, Any]) -> Taken:
    values = rd.decoded(fields)
    return Taken(
        rd.text(stream),
        rd.text(entry_id),
        values["task"],
        request_type=values.get("rt") or None,
        complexity=float(values.get("cx") or 0.5),
        agent_type=values.get("type") or None,
    )


def _entries(reply: Any) -> list[Taken]:
    found = []
    for stream, entries in reply or []:
        for entry_id, fields in entries:
            if fields:  # an entry deleted while pending comes back empty
                found.append(_entry(stream, entry_id, fields))
    return found
