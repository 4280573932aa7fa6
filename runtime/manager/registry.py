"""The agent registry in Redis: what each agent is, its load, its heartbeats, its drain.

Every manager replica reads the same registry; the balancer of each replica mirrors it
(`AgentRecord.state()`). An agent is healthy while its last heartbeat is younger than the
heartbeat TTL; an unhealthy or draining agent gets no new work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis

from runtime.manager import keys as k
from runtime.manager.balancing import AgentState
from runtime.service import redis as rd

__all__ = ["AgentProfile", "AgentRecord", "AgentRegistry"]

# KEYS: agent, agents, heartbeats   ARGV: agent id, now, field, value, ...
# Register: the description is replaced, what the queue scripts keep (load, observed quality)
# survives a re-registration of the same agent (a worker restarting under its pod name).
_REGISTER = """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSETNX', KEYS[1], 'load', '0')
redis.call('HSETNX', KEYS[1], 'success_rate', '1')
redis.call('HSETNX', KEYS[1], 'avg_response_s', '0')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# KEYS: agent, heartbeats   ARGV: agent id, now → 0 when the agent is not registered
_HEARTBEAT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""


# KEYS: agent, agents, heartbeats   ARGV: agent id → 1 when the agent was registered
_DEREGISTER = """
local deleted = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return deleted
"""


@dataclass(frozen=True)
class AgentProfile:
    """What an agent says of itself when it registers."""

    agent_id: str
    agent_type: str
    capacity: int
    weight: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    request_types: frozenset[str] = frozenset()
    max_complexity: float = 1.0


@dataclass(frozen=True)
class AgentRecord:
    profile: AgentProfile
    load: int
    success_rate: float
    avg_response_s: float
    draining: bool
    registered_at: float
    last_heartbeat: float | None
    healthy: bool

    def state(self) -> AgentState:
        p = self.profile
        return AgentState(
            agent_id=p.agent_id,
            agent_type=p.agent_type,
            capacity=p.capacity,
            load=max(0, self.load),
            weight=p.weight,
            healthy=self.healthy,
            draining=self.draining,
            success_rate=self.success_rate,
            avg_response_s=self.avg_response_s,
            request_types=p.request_types,
            max_complexity=p.max_complexity,
        )


class AgentRegistry:
    def __init__(self, redis: Redis, *, heartbeat_ttl_s: float) -> None:
        self.redis = redis
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self._register = redis.register_script(_REGISTER)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._deregister = redis.register_script(_DEREGISTER)

    async def register(self, profile: AgentProfile) -> None:
        now = time.time()
        fields = {
            "id": profile.agent_id,
            "type": profile.agent_type,
            "capacity": profile.capacity,
            "weight": profile.weight,
            "labels": json.dumps(dict(profile.labels), sort_keys=True),
            "request_types": json.dumps(sorted(profile.request_types)),
            "max_complexity": repr(profile.max_complexity),
            "draining": "0",
            "registered_at": repr(now),
        }
        await self._register(
            keys=[k.agent_key(profile.agent_id), k.AGENTS, k.HEARTBEATS],
            args=[
                profile.agent_id,
                repr(now),
                *[str(x) for pair in fields.items() for x in pair],
            ],
        )

    async def heartbeat(self, agent_id: str) -> bool:
        """False when the agent is unknown (expired or deregistered): it must register again."""
        return bool(
            await self._heartbeat(
                keys=[k.agent_key(agent_id), k.HEARTBEATS], args=[agent_id, repr(time.time())]
            )
        )

    async def drain(self, agent_id: str) -> bool:
        """Stop giving the agent new work; what it holds, it finishes."""
        if not await self.redis.exists(k.agent_key(agent_id)):
            return False
        await rd.reply(self.redis.hset(k.agent_key(agent_id), "draining", "1"))
        return True

    async def deregister(self, agent_id: str) -> bool:
        deleted = await self._deregister(
            keys=[k.agent_key(agent_id), k.AGENTS, k.HEARTBEATS], args=[agent_id]
        )
        return bool(deleted)

    async def get(self, agent_id: str) -> AgentRecord | None:
        raw = await rd.hgetall(self.redis, k.agent_key(agent_id))
        if not raw:
            return None
        beat = await self.redis.zscore(k.HEARTBEATS, agent_id)
        return self._record(raw, beat, time.time())

    async def snapshot(self) -> list[AgentRecord]:
        """Every registered agent, read in two round trips."""
        ids = sorted(rd.text(i) for i in await rd.reply(self.redis.smembers(k.AGENTS)))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(k.agent_key(agent_id))
        pipe.zrange(k.HEARTBEATS, 0, -1, withscores=True)
        *hashes, beats = await pipe.execute()
        last = {rd.text(member): float(score) for member, score in beats}
        now = time.time()
        records = []
        for agent_id, raw in zip(ids, hashes, strict=True):
            if raw:
                records.append(self._record(rd.decoded(raw), last.get(agent_id), now))
        return records

    def _record(self, raw: Mapping[str, str], beat: float | None, now: float) -> AgentRecord:
        profile = AgentProfile(
            agent_id=raw["id"],
            agent_type=raw["type"],
            capacity=int(raw["capacity"]),
            weight=int(raw["weight"]),
            labels=json.loads(raw["labels"]),
            request_types=frozenset(json.loads(raw["request_types"])),
            max_complexity=float(raw["max_complexity"]),
        )
        return AgentRecord(
            profile=profile,
            load=int(raw.get("load", "0")),
            success_rate=float(raw.get("success_rate", "1")),
            avg_response_s=float(raw.get("avg_response_s", "0")),
            draining=raw.get("draining") == "1",
            registered_at=float(raw["registered_at"]),
            last_heartbeat=beat,
            healthy=beat is not None and now - beat <= self.heartbeat_ttl_s,
        )
