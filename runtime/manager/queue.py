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

import json
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from runtime.manager import constants as k
from runtime.manager.constants import Priority

__all__ = [
    "QueueFull",
    "SubmitResult",
    "Taken",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


class QueueFull(Exception):
    """The type's queue is at its bound; the caller should retry after `retry_after_s`."""

    def __init__(self, agent_type: str, queued: int, retry_after_s: int) -> None:
        self.agent_type = agent_type
        self.queued = queued
        self.retry_after_s = retry_after_s
        super().__init__(f"queue for {agent_type} is full ({queued} tasks waiting)")


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    created: bool  # False: the idempotency key named an earlier task


@dataclass(frozen=True)
class Taken:
    """A ready-stream entry a dispatcher holds until it assigns (or crashes)."""

    stream: str
    entry_id: str
    task_id: str


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    agent_type: str
    request_type: str | None
    priority: Priority
    payload: Any
    status: TaskStatus
    attempts: int
    agent_id: str | None
    result: Any
    error: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TaskRecord:
        def num(key: str) -> float | None:
            return float(raw[key]) if raw.get(key) else None

        return cls(
            task_id=raw["id"],
            agent_type=raw["agent_type"],
            request_type=raw.get("request_type") or None,
            priority=Priority(int(raw["priority"])),
            payload=json.loads(raw["payload"]),
            status=TaskStatus(raw["status"]),
            attempts=int(raw.get("attempts", "0")),
            agent_id=raw.get("agent") or None,
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error") or None,
            submitted_at=float(raw["submitted_at"]),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
        )


_SUBMIT = """
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {'existing', existing} end
end
local queued = tonumber(redis.call('GET', KEYS[4]) or '0')
if queued >= tonumber(ARGV[2]) then return {'full', tostring(queued)} end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1])
redis.call('INCR', KEYS[4])
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) end
return {'created', ARGV[1]}
"""

# KEYS: ready, inbox, task   ARGV: group, entry, task id, agent id, now
_ASSIGN = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
redis.call('XDEL', KEYS[1], ARGV[2])
local id = redis.call('XADD', KEYS[2], '*', 'task', ARGV[3])
redis.call('HSET', KEYS[3], 'status', 'assigned', 'agent', ARGV[4], 'assigned_at', ARGV[5])
return id
"""

# KEYS: task, queued   ARGV: agent id, now
_START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'assigned' then return 0 end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('DECR', KEYS[2])
return 1
"""

# KEYS: inbox, task   ARGV: group, entry, agent id, status, result, error, now
_COMPLETE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'agent') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], 'status', ARGV[4], 'result', ARGV[5], 'error', ARGV[6],
           'finished_at', ARGV[7])
return 1
"""

# KEYS: inbox, task, delayed, dead, queued
# ARGV: group, entry, task id, now, backoff seconds, max attempts, reason
_REQUEUE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 'gone' end
redis.call('XDEL', KEYS[1], ARGV[2])
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'assigned' then
  -- delivered but never started: the delivery counts as an attempt
  redis.call('HINCRBY', KEYS[2], 'attempts', 1)
end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
if attempts >= tonumber(ARGV[6]) then
  if status == 'assigned' then redis.call('DECR', KEYS[5]) end
  redis.call('XADD', KEYS[4], '*', 'task', ARGV[3], 'reason', ARGV[7])
  redis.call('HSET', KEYS[2], 'status', 'dead_lettered', 'error', ARGV[7], 'finished_at', ARGV[4])
  return 'dead'
end
if status == 'running' then redis.call('INCR', KEYS[5]) end
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[3])
redis.call('HSET', KEYS[2], 'status', 'retrying', 'error', ARGV[7], 'agent', '')
return 'retry'
"""

# KEYS: delayed, task, ready   ARGV: task id
_PROMOTE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1])
redis.call('HSET', KEYS[2], 'status', 'queued')
return 1
"""


class TaskQueue:
    """The queue's operations; every instance (manager replica, worker) shares Redis only."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_queued_per_type: int,
        max_attempts: int,
        retry_after_s: int = 5,
        idempotency_ttl_s: int = 24 * 3600,
    ) -> None:
        self.redis = redis
        self.max_queued = max_queued_per_type
        self.max_attempts = max_attempts
        self.retry_after_s = retry_after_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self._submit = redis.register_script(_SUBMIT)
        self._assign = redis.register_script(_ASSIGN)
        self._start = redis.register_script(_START)
        self._complete = redis.register_script(_COMPLETE)
        self._requeue = redis.register_script(_REQUEUE)
        self._promote = redis.register_script(_PROMOTE)
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
    ) -> SubmitResult:
        task_id = uuid.uuid4().hex
        ready = k.ready_stream(agent_type, priority)
        await self._group(ready, k.DISPATCH_GROUP)
        fields = {
            "id": task_id,
            "agent_type": agent_type,
            "request_type": request_type or "",
            "priority": int(priority),
            "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True),
            "status": TaskStatus.QUEUED.value,
            "attempts": 0,
            "idempotency_key": idempotency_key or "",
            "submitted_at": repr(time.time()),
        }
        flat = [str(x) for pair in fields.items() for x in pair]
        outcome, value = await self._submit(
            keys=[
                k.idempotency_key(idempotency_key or "-"),
                k.task_key(task_id),
                ready,
                k.queued_counter(agent_type),
            ],
            args=[
                task_id,
                self.max_queued,
                self.idempotency_ttl_s,
                "1" if idempotency_key else "0",
                *flat,
            ],
        )
        outcome, value = _text(outcome), _text(value)
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

    async def reclaim_ready(self, agent_type: str, consumer: str, min_idle_s: float) -> list[Taken]:
        """Entries a crashed dispatcher took and never assigned: this consumer takes them over."""
        found: list[Taken] = []
        for priority in sorted(Priority, reverse=True):
            stream = k.ready_stream(agent_type, priority)
            await self._group(stream, k.DISPATCH_GROUP)
            _, claimed, *_ = await self.redis.xautoclaim(
                stream, k.DISPATCH_GROUP, consumer, int(min_idle_s * 1000), count=100
            )
            found += [
                Taken(stream, _text(e), _text(f[b"task"] if b"task" in f else f["task"]))
                for e, f in claimed
                if f
            ]
        return found

    async def assign(self, taken: Taken, agent_id: str) -> bool:
        """Move a taken task into the agent's inbox; False if another dispatcher already did."""
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        moved = await self._assign(
            keys=[taken.stream, inbox, k.task_key(taken.task_id)],
            args=[k.DISPATCH_GROUP, taken.entry_id, taken.task_id, agent_id, repr(time.time())],
        )
        return bool(moved)

    # -- work (agent) ---------------------------------------------------------------------
    async def read_inbox(
        self, agent_id: str, count: int, block_ms: int | None = None
    ) -> list[Taken]:
        inbox = k.inbox(agent_id)
        await self._group(inbox, k.WORKER_GROUP)
        reply = await self.redis.xreadgroup(
            k.WORKER_GROUP, agent_id, {inbox: ">"}, count=count, block=block_ms
        )
        return _entries(reply)

    async def start(self, task_id: str, agent_id: str) -> bool:
        return bool(
            await self._start(
                keys=[k.task_key(task_id), k.queued_counter(await self._type_of(task_id))],
                args=[agent_id, repr(time.time())],
            )
        )

    async def touch(self, agent_id: str, entries: list[str]) -> None:
        """Reset the idle time of entries still being worked on: they are not abandoned."""
        if entries:
            await self.redis.xclaim(
                k.inbox(agent_id), k.WORKER_GROUP, agent_id, 0, list[Any](entries), justid=True
            )

    async def complete(
        self, entry: Taken, agent_id: str, *, result: Any = None, error: str | None = None
    ) -> bool:
        status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
        return bool(
            await self._complete(
                keys=[entry.stream, k.task_key(entry.task_id)],
                args=[
                    k.WORKER_GROUP,
                    entry.entry_id,
                    agent_id,
                    status.value,
                    json.dumps(result),
                    error or "",
                    repr(time.time()),
                ],
            )
        )

    async def retry(self, entry: Taken, reason: str, backoff_s: float) -> str:
        """Give the task back for another attempt (or dead-letter it): 'retry' | 'dead'."""
        task_id = entry.task_id
        outcome = await self._requeue(
            keys=[
                entry.stream,
                k.task_key(task_id),
                k.DELAYED,
                k.DEAD_LETTERS,
                k.queued_counter(await self._type_of(task_id)),
            ],
            args=[
                k.WORKER_GROUP,
                entry.entry_id,
                task_id,
                repr(time.time()),
                backoff_s,
                self.max_attempts,
                reason,
            ],
        )
        return _text(outcome)

    async def reclaim_inbox(
        self, agent_id: str, visibility_timeout_s: float, backoff_s: float
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
            entry = Taken(inbox, _text(entry_id), _text(fields.get(b"task", fields.get("task"))))
            outcomes[entry.task_id] = await self.retry(
                entry,
                f"agent {agent_id} did not finish within {visibility_timeout_s:g}s",
                backoff_s,
            )
        return outcomes

    async def promote_due(self, now: float | None = None) -> int:
        """Move retries whose backoff has passed back to their ready stream."""
        due = await self.redis.zrangebyscore(k.DELAYED, "-inf", now or time.time(), 0, 100)
        moved = 0
        for raw in due:
            task_id = _text(raw)
            agent_type, priority = await self.redis.hmget(
                k.task_key(task_id), ["agent_type", "priority"]
            )
            if agent_type is None:
                await self.redis.zrem(k.DELAYED, task_id)
                continue
            ready = k.ready_stream(_text(agent_type), Priority(int(_text(priority))))
            await self._group(ready, k.DISPATCH_GROUP)
            moved += int(
                await self._promote(keys=[k.DELAYED, k.task_key(task_id), ready], args=[task_id])
            )
        return moved

    # -- reading -------------------------------------------------------------------------
    async def get(self, task_id: str) -> TaskRecord | None:
        raw = await self.redis.hgetall(k.task_key(task_id))
        if not raw:
            return None
        return TaskRecord.from_hash({_text(a): _text(b) for a, b in raw.items()})

    async def queued(self, agent_type: str) -> int:
        return int(await self.redis.get(k.queued_counter(agent_type)) or 0)

    async def _type_of(self, task_id: str) -> str:
        agent_type = await self.redis.hget(k.task_key(task_id), "agent_type")
        if agent_type is None:
            raise KeyError(f"no task {task_id}")
        return _text(agent_type)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[Taken]:
    found = []
    for stream, entries in reply or []:
        for entry_id, fields in entries:
            task = fields.get(b"task", fields.get("task"))
            found.append(Taken(_text(stream), _text(entry_id), _text(task)))
    return found
