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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from runtime.manager import constants as k
from runtime.manager.constants import Priority
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


class TaskStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


# Weight of the newest completion in an agent's success rate and response time.
STATS_ALPHA = 0.2


class Assignment(IntEnum):
    AGENT_UNAVAILABLE = -1  # deregistered or draining: choose another agent
    ALREADY_ASSIGNED = 0  # another dispatcher moved it first
    ASSIGNED = 1


class QueueFull(Exception):
    """The type's queue is at its bound; the caller should retry after `retry_after_s`."""

    def __init__(self, agent_type: str, queued: int, retry_after_s: int) -> None:
        self.agent_type = agent_type
        self.queued = queued
        self.retry_after_s = retry_after_s
        super().__init__(f"queue for {agent_type} is full ({queued} tasks waiting)")


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one model call of a task spent, as its provider reported them."""

    model: str
    input_tokens: int
    output_tokens: int

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "input": self.input_tokens, "output": self.output_tokens}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TokenUsage:
        return cls(str(raw["model"]), int(raw["input"]), int(raw["output"]))


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    created: bool  # False: the idempotency key named an earlier task


@dataclass(frozen=True)
class Taken:
    """A stream entry held until it is acknowledged: a ready task a dispatcher holds until it
    assigns it (or crashes), or an inbox task an agent holds until it completes it."""

    stream: str
    entry_id: str
    task_id: str
    # Routing hints of a ready entry (the balancer's score needs them).
    request_type: str | None = None
    complexity: float = 0.5
    # The task's type, on inbox entries.
    agent_type: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    agent_type: str
    request_type: str | None
    team: str
    complexity: float
    priority: Priority
    payload: Any
    status: TaskStatus
    attempts: int
    agent_id: str | None
    result: Any
    error: str | None
    usage: tuple[TokenUsage, ...]
    submitted_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None
    # The attempt whose outcome is stored but not yet acknowledged (None: none finished).
    outcome_attempt: int | None = None
    max_attempts: int | None = None
    # W3C `traceparent` of the submit span: the attempt that runs the task continues its trace.
    traceparent: str | None = None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TaskRecord:
        def num(key: str) -> float | None:
            return float(raw[key]) if raw.get(key) else None

        return cls(
            task_id=raw["id"],
            agent_type=raw["agent_type"],
            request_type=raw.get("request_type") or None,
            team=raw.get("team", "default"),
            complexity=float(raw.get("complexity", "0.5")),
            priority=Priority(int(raw["priority"])),
            payload=json.loads(raw["payload"]),
            status=TaskStatus(raw["status"]),
            attempts=int(raw.get("attempts", "0")),
            agent_id=raw.get("agent") or None,
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error") or None,
            usage=tuple(TokenUsage.from_json(u) for u in json.loads(raw.get("usage") or "[]")),
            submitted_at=float(raw["submitted_at"]),
            assigned_at=num("assigned_at"),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            outcome_attempt=int(raw["outcome_attempt"]) if raw.get("outcome_attempt") else None,
            max_attempts=int(raw["max_attempts"]) if raw.get("max_attempts") else None,
            traceparent=raw.get("traceparent") or None,
        )


_SUBMIT = """
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {'existing', existing} end
end
local queued = tonumber(redis.call('GET', KEYS[4]) or '0')
if queued >= tonumber(ARGV[2]) then return {'full', tostring(queued)} end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1], 'rt', ARGV[5], 'cx', ARGV[6])
redis.call('INCR', KEYS[4])
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) end
return {'created', ARGV[1]}
"""

# Every script that moves a task also keeps the agent's load (tasks it holds) and appends an
# event the managers turn into metrics; an agent hash that is gone (deregistered) is left alone.

# KEYS: ready, inbox, task, agent   ARGV: group, entry, task id, agent id, now
_ASSIGN = """
if redis.call('HGET', KEYS[4], 'draining') ~= '0' then return -1 end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
-- The type travels with the entry: the agent needs no lookup to start it.
redis.call('XADD', KEYS[2], '*', 'task', ARGV[3], 'type', redis.call('HGET', KEYS[3], 'agent_type'))
redis.call('HSET', KEYS[3], 'status', 'assigned', 'agent', ARGV[4], 'assigned_at', ARGV[5])
redis.call('HINCRBY', KEYS[4], 'load', 1)
return 1
"""

# KEYS: task, queued, events   ARGV: agent id, now, events cap → the task's hash, or 0
_START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'assigned' then return 0 end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2])
-- An attempt that finished (its outcome is stored) and lost only its acknowledgement is
-- finished by this delivery, not run again: no new attempt.
if redis.call('HEXISTS', KEYS[1], 'outcome') == 0 then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
redis.call('DECR', KEYS[2])
local submitted = tonumber(redis.call('HGET', KEYS[1], 'submitted_at'))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'kind', 'started',
           'type', redis.call('HGET', KEYS[1], 'agent_type'),
           'wait', tostring(tonumber(ARGV[2]) - submitted))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: task   ARGV: agent id, attempt, status, result, error, usage (JSON)
# The attempt's outcome (result and usage together) becomes durable before anything is charged
# or acknowledged: whatever happens next, this attempt is never run again.
_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'outcome') == 1 then return 1 end
redis.call('HSET', KEYS[1], 'outcome', ARGV[3], 'outcome_attempt', ARGV[2], 'result', ARGV[4],
           'error', ARGV[5], 'usage', ARGV[6])
return 1
"""

# KEYS: inbox, task, agent, events
# ARGV: group, entry, agent id, status, result, error, now, events cap, alpha, usage (JSON),
#       retention (s) of tasks accepted without one
_COMPLETE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'agent') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], 'status', ARGV[4], 'result', ARGV[5], 'error', ARGV[6],
           'finished_at', ARGV[7], 'usage', ARGV[10])
redis.call('EXPIRE', KEYS[2], tonumber(redis.call('HGET', KEYS[2], 'retention_s') or ARGV[11]))
local now = tonumber(ARGV[7])
local submitted = tonumber(redis.call('HGET', KEYS[2], 'submitted_at'))
local started = tonumber(redis.call('HGET', KEYS[2], 'started_at') or ARGV[7])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'load', -1)
  -- Exponentially weighted: recent behaviour counts most, one outlier does not dominate.
  local alpha = tonumber(ARGV[9])
  local ok = 0
  if ARGV[4] == 'succeeded' then ok = 1 end
  local rate = tonumber(redis.call('HGET', KEYS[3], 'success_rate') or '1')
  local avg = tonumber(redis.call('HGET', KEYS[3], 'avg_response_s') or '0')
  redis.call('HSET', KEYS[3], 'success_rate', tostring((1 - alpha) * rate + alpha * ok),
             'avg_response_s', tostring((1 - alpha) * avg + alpha * (now - started)))
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'finished',
           'type', redis.call('HGET', KEYS[2], 'agent_type'), 'status', ARGV[4],
           'agent', ARGV[3], 'duration', tostring(now - submitted),
           'exec', tostring(now - started), 'usage', ARGV[10])
return 1
"""

# KEYS: inbox, task, delayed, dead, queued, agent, events
# ARGV: group, entry, task id, now, first backoff (s), max attempts, reason, events cap,
#       agent id, backoff cap (s), deferral ('' a retry that spends the attempt | seconds to
#       wait exactly | 'backoff': a dependency outage, waits with backoff and spends nothing),
#       '1' when the entry was reclaimed from a silent or gone agent, retention (s), dead cap
# The task's own policy (max_attempts, retention_s, dead_cap, recorded at submit) wins over the
# caller's: every path honours what the task was accepted under.
_REQUEUE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 'gone' end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('HINCRBY', KEYS[6], 'load', -1) end
local status = redis.call('HGET', KEYS[2], 'status')
local finished = redis.call('HEXISTS', KEYS[2], 'outcome') == 1
local mode = ARGV[11]
local deferred = mode ~= '' or finished
local abandoned = '0'
if finished then
  -- Its attempt finished; only the usage record or the acknowledgement is missing: the next
  -- delivery completes it from the stored outcome, spending nothing.
elseif deferred and status == 'running' then
  -- Deferred (a limit or an outage said "later"): the attempt it started is given back.
  redis.call('HINCRBY', KEYS[2], 'attempts', -1)
elseif status == 'assigned' and not deferred then
  -- delivered but never started: the delivery counts as an attempt
  redis.call('HINCRBY', KEYS[2], 'attempts', 1)
elseif status == 'running' and ARGV[12] == '1' then
  -- reclaimed mid-work: the work may have run (and been paid for) without its outcome
  abandoned = '1'
end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
local max_attempts = tonumber(redis.call('HGET', KEYS[2], 'max_attempts') or ARGV[6])
local agent_type = redis.call('HGET', KEYS[2], 'agent_type')
if not deferred and attempts >= max_attempts then
  if status == 'assigned' then redis.call('DECR', KEYS[5]) end
  local cap = tonumber(redis.call('HGET', KEYS[2], 'dead_cap') or ARGV[14])
  redis.call('XADD', KEYS[4], 'MAXLEN', cap, '*', 'task', ARGV[3], 'reason', ARGV[7])
  redis.call('HSET', KEYS[2], 'status', 'dead_lettered', 'error', ARGV[7], 'finished_at', ARGV[4])
  redis.call('EXPIRE', KEYS[2], tonumber(redis.call('HGET', KEYS[2], 'retention_s') or ARGV[13]))
  local submitted = tonumber(redis.call('HGET', KEYS[2], 'submitted_at'))
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'finished', 'type', agent_type,
             'status', 'dead_lettered', 'agent', ARGV[9],
             'duration', tostring(tonumber(ARGV[4]) - submitted), 'abandoned', abandoned,
             'task', ARGV[3])
  return 'dead'
end
if status == 'running' then redis.call('INCR', KEYS[5]) end
local delay
if mode == 'backoff' then
  local outages = redis.call('HINCRBY', KEYS[2], 'deferrals', 1)
  delay = math.min(tonumber(ARGV[10]), tonumber(ARGV[5]) * 2 ^ (outages - 1))
elseif mode ~= '' then
  delay = tonumber(mode)
elseif finished then
  delay = 0
else
  -- Exponential backoff from the attempts made so far, capped.
  delay = math.min(tonumber(ARGV[10]), tonumber(ARGV[5]) * 2 ^ math.max(0, attempts - 1))
end
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + delay, ARGV[3])
redis.call('HSET', KEYS[2], 'status', 'retrying', 'agent', '')
if not finished then redis.call('HSET', KEYS[2], 'error', ARGV[7]) end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'retry', 'type', agent_type,
           'agent', ARGV[9], 'abandoned', abandoned, 'task', ARGV[3])
return 'retry'
"""

# KEYS: delayed, task, ready   ARGV: task id
_PROMOTE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local hints = redis.call('HMGET', KEYS[2], 'request_type', 'complexity')
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1], 'rt', hints[1] or '', 'cx', hints[2] or '0.5')
redis.call('HSET', KEYS[2], 'status', 'queued')
return 1
"""


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
    ) -> None:
        """`max_attempts`, `retention_s` and `dead_letter_cap` are recorded in every task this
        queue accepts (its attempt policy); the other paths (workers, reclaims) honour the
        task's own and use theirs only for tasks accepted before a policy was recorded."""
        self.redis = redis
        self.max_queued = max_queued_per_type
        self.max_attempts = max_attempts
        self.retention_s = retention_s
        self.dead_letter_cap = dead_letter_cap
        self.retry_after_s = retry_after_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.events_cap = events_cap
        self._submit = redis.register_script(_SUBMIT)
        self._assign = redis.register_script(_ASSIGN)
        self._start = redis.register_script(_START)
        self._finish = redis.register_script(_FINISH)
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
                request_type or "",
                repr(complexity),
                *flat,
            ],
        )
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
        """`assign` for a batch in one round trip."""
        for _, agent_id in pairs:
            await self._group(k.inbox(agent_id), k.WORKER_GROUP)
        pipe = self.redis.pipeline(transaction=False)
        now = repr(time.time())
        for taken, agent_id in pairs:
            await self._assign(
                keys=[
                    taken.stream,
                    k.inbox(agent_id),
                    k.task_key(taken.task_id),
                    k.agent_key(agent_id),
                ],
                args=[k.DISPATCH_GROUP, taken.entry_id, taken.task_id, agent_id, now],
                client=pipe,
            )
        return [Assignment(int(r)) for r in await pipe.execute()]

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
        if not reply:
            return None
        flat = [rd.text(v) for v in reply]
        return TaskRecord.from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))

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
        status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
        return bool(
            await self._finish(
                keys=[k.task_key(task.task_id)],
                args=[
                    agent_id,
                    task.attempts,
                    status.value,
                    json.dumps(result),
                    error or "",
                    _usage_json(usage),
                ],
            )
        )

    async def complete(
        self,
        entry: Taken,
        agent_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        usage: Sequence[TokenUsage] = (),
    ) -> bool:
        """Record the outcome and acknowledge; False when the task is no longer this agent's
        (reclaimed after its visibility timeout): another attempt owns it now."""
        status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
        return bool(
            await self._complete(
                keys=[entry.stream, k.task_key(entry.task_id), k.agent_key(agent_id), k.EVENTS],
                args=[
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
                ],
            )
        )

    async def discard(self, entry: Taken) -> None:
        """Drop an inbox entry whose task is no longer this agent's (reclaimed meanwhile)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(entry.stream, k.WORKER_GROUP, entry.entry_id)
        pipe.xdel(entry.stream, entry.entry_id)
        await pipe.execute()

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
