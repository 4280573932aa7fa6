"""The manager's background work: dispatch ready tasks to agents, follow task events, and
the maintenance that makes delivery at-least-once (retries, reclaims, dead agents).

Nothing here is the only copy of anything: every replica runs the same loops against the same
Redis, and a replica that dies mid-step leaves its work where another (or itself, restarted
under the same instance id) picks it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from contracts.settings.manager import ManagerSettings
from runtime.manager import keys as k
from runtime.manager.balancing import Balancer, TaskRequest
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.queue import Assignment, Taken, TaskQueue
from runtime.manager.registry import AgentRecord, AgentRegistry
from runtime.service import redis as rd
from runtime.service.redis import Outage
from runtime.service.tracing import tracer

__all__ = ["Dispatcher"]

log = logging.getLogger("agentops.manager")
_tracer = tracer("agentops.manager")


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        queue: TaskQueue,
        registry: AgentRegistry,
        balancer: Balancer,
        metrics: ManagerMetrics,
        settings: ManagerSettings,
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.registry = registry
        self.balancer = balancer
        self.metrics = metrics
        self.settings = settings
        self.consumer = settings.instance_id
        # Taken, not yet assigned: per type, highest priority first, then oldest.
        self._held: dict[str, list[tuple[int, int, Taken]]] = {t: [] for t in settings.agent_types}
        self._held_ids: set[str] = set()
        self._seq = itertools.count()
        self._agents: list[AgentRecord] = []
        self._synced_at = 0.0
        # One per agent type: its dispatch loop waits on it while its agents have no room.
        self._wakes = {t: asyncio.Event() for t in settings.agent_types}

    # -- registry mirror -----------------------------------------------------------------
    def wake(self) -> None:
        """Room may have come (a completion, an agent): every type's loop looks again."""
        for event in self._wakes.values():
            event.set()

    async def sync(self) -> list[AgentRecord]:
        self._synced_at = time.monotonic()  # the other types' loops need not sync meanwhile
        agents = await self.registry.snapshot()
        known = {a.profile.agent_id for a in agents}
        for agent in agents:
            self.balancer.upsert(agent.state())
        # Whatever the registry no longer has goes, however this replica learnt of it.
        for gone in set(self.balancer.agent_ids()) - known:
            self.balancer.remove(gone)
        self._agents = agents
        self._synced_at = time.monotonic()
        return agents

    def free_capacity(self) -> dict[str, int]:
        free: dict[str, int] = {}
        for a in self._agents:
            state = self.balancer.get(a.profile.agent_id)
            if state is not None and state.eligible:
                free[state.agent_type] = free.get(state.agent_type, 0) + state.capacity - state.load
        return free

    # -- dispatch ------------------------------------------------------------------------
    def _hold(self, taken: Taken, agent_type: str) -> int:
        """Hold a taken task for assignment: 1, or 0 when it is held already."""
        if taken.entry_id in self._held_ids:
            return 0
        self._held_ids.add(taken.entry_id)
        priority = k.priority_of(taken.stream)
        heapq.heappush(self._held[agent_type], (-int(priority), next(self._seq), taken))
        return 1

    async def dispatch_once(self, agent_type: str, block_ms: int | None) -> int:
        """Assign this type's held tasks to agents with room, then take what room is left
        (at most a batch); the number assigned.

        Each agent type has its own loop: a loop blocked on its type's empty streams does not
        keep another type's freed room waiting (a completion wakes that type's loop at once).
        With tasks held it never blocks on a read: it waits for room (a wake). Only what there
        is room for is taken, so a task of higher priority submitted while the agents are busy
        is taken with the next room and goes before the older tasks of lower priority.
        """
        wake = self._wakes[agent_type]
        wake.clear()  # whatever wakes this loop from here on ends the wait below
        if time.monotonic() - self._synced_at > self.settings.registry_sync_s:
            await self.sync()
        assigned = await self._assign_held(agent_type)
        held = self._held[agent_type]
        room = self.free_capacity().get(agent_type, 0)
        want = min(self.settings.dispatch_batch, room) - len(held)
        taken = 0
        if want > 0:
            block = None if held else block_ms
            for found in await self.queue.take_ready({agent_type: want}, self.consumer, block):
                taken += self._hold(found, agent_type)
        if block_ms and not assigned and not taken and (held or want <= 0):
            # Nothing to do until a completion, a new agent or a sync: no busy loop.
            await _wait(wake, block_ms / 1000)
        return assigned

    async def _assign_held(self, agent_type: str) -> int:
        pairs: list[tuple[Taken, str]] = []
        heap = self._held[agent_type]
        while heap:
            _, _, taken = heap[0]
            agent = self.balancer.select(
                TaskRequest(agent_type, taken.request_type, taken.complexity)
            )
            if agent is None:
                break
            heapq.heappop(heap)
            self.balancer.on_dispatch(agent.agent_id)
            pairs.append((taken, agent.agent_id))
        if not pairs:
            return 0
        try:
            with _tracer.start_as_current_span("dispatch", attributes={"tasks": len(pairs)}):
                outcomes = await self.queue.assign_many(pairs)
        except BaseException:
            # Redis went away mid-batch: hold them all again and give the agents their room
            # back. One that did move is refused as already assigned on the next try.
            for taken, agent_id in pairs:
                self.balancer.on_release(agent_id)
                self._held_ids.discard(taken.entry_id)
                self._hold(taken, k.type_of_ready(taken.stream))
            raise
        assigned = 0
        for (taken, agent_id), outcome in zip(pairs, outcomes, strict=True):
            if outcome is Assignment.ASSIGNED:
                assigned += 1
                self._held_ids.discard(taken.entry_id)
                continue
            self.balancer.on_release(agent_id)
            if outcome is Assignment.ALREADY_ASSIGNED:
                self._held_ids.discard(taken.entry_id)
            else:  # the agent left or drains: out of the running until the next sync says else
                state = self.balancer.get(agent_id)
                if state is not None:
                    self.balancer.upsert(replace(state, draining=True))
                self._held_ids.discard(taken.entry_id)
                self._hold(taken, k.type_of_ready(taken.stream))
        return assigned

    async def run_dispatch(self, stop: asyncio.Event) -> None:
        # A restarted replica first takes back what it held before it went down.
        for taken in await self.queue.held_by(self.consumer, self.settings.agent_types):
            self._hold(taken, k.type_of_ready(taken.stream))
        await asyncio.gather(*(self._dispatch_loop(stop, t) for t in self.settings.agent_types))

    async def _dispatch_loop(self, stop: asyncio.Event, agent_type: str) -> None:
        await _forever(stop, lambda: self.dispatch_once(agent_type, 100), f"dispatch {agent_type}")

    # -- task events ---------------------------------------------------------------------
    async def follow_events(self, stop: asyncio.Event) -> None:
        """Every replica reads every event to keep its balancer's loads and quality current;
        metrics count each event once across replicas (a consumer group shares them)."""
        try:
            await self.redis.xgroup_create(k.EVENTS, k.EVENTS_GROUP, id="$", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        last = "$"
        counted: list[bytes] = []  # events counted, acknowledged with the next read

        async def step() -> None:
            nonlocal last, counted
            # One round trip: wait for new events (every replica reads them all), then this
            # replica's share for metrics, and the acknowledgement of the share counted before.
            pipe = self.redis.pipeline(transaction=False)
            pipe.xread({k.EVENTS: last}, count=1000, block=200)
            pipe.xreadgroup(k.EVENTS_GROUP, self.consumer, {k.EVENTS: ">"}, count=1000)
            if counted:
                pipe.xack(k.EVENTS, k.EVENTS_GROUP, *counted)
            reply, share, *_ = await pipe.execute()
            counted = []
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = rd.text(entry_id)
                    self._balance_on(rd.decoded(fields))
            if reply:
                self.wake()
            for _, entries in share or []:
                for entry_id, fields in entries:
                    counted.append(entry_id)
                    self._count(rd.decoded(fields))

        await _forever(stop, step, "events")

    def _balance_on(self, event: dict[str, str]) -> None:
        agent_id = event.get("agent")
        if not agent_id:
            return
        if event["kind"] == "finished" and event.get("status") != "dead_lettered":
            self.balancer.on_complete(
                agent_id, event["status"] == "succeeded", float(event.get("exec", "0"))
            )
        elif event["kind"] in ("retry", "finished"):
            self.balancer.on_release(agent_id)

    def _count(self, event: dict[str, str]) -> None:
        agent_type = event.get("type", "unknown")
        if event.get("abandoned") == "1":
            self.metrics.abandoned.labels(agent_type).inc()
        if event["kind"] == "finished":
            usage = json.loads(event.get("usage") or "[]")
            self.metrics.finished(agent_type, event["status"], float(event["duration"]), usage)
        elif event["kind"] == "started":
            self.metrics.wait.labels(agent_type).observe(float(event["wait"]))
        elif event["kind"] == "retry":
            self.metrics.retries.labels(agent_type, "retry").inc()

    # -- maintenance ---------------------------------------------------------------------
    async def maintain_once(self) -> None:
        s = self.settings
        await self.queue.promote_due()
        agents = await self.sync()
        now = time.time()
        for agent in agents:
            agent_id = agent.profile.agent_id
            silent_for = now - (agent.last_heartbeat or agent.registered_at)
            if silent_for > s.heartbeat_ttl_s + s.visibility_timeout_s:
                # Gone for good: nothing it was given will be read, so all of it goes back.
                outcomes = await self.queue.evacuate(
                    agent_id,
                    f"agent {agent_id} silent for {silent_for:.0f}s",
                    s.retry_backoff_s,
                    s.retry_backoff_max_s,
                )
                if not outcomes and agent.load <= 0:
                    await self.registry.deregister(agent_id)
                    log.warning("deregistered silent agent %s", agent_id)
            elif agent.load > 0:
                outcomes = await self.queue.reclaim_inbox(
                    agent_id, s.visibility_timeout_s, s.retry_backoff_s, s.retry_backoff_max_s
                )
            else:
                continue
            for outcome in outcomes.values():
                if outcome == "dead":
                    self.metrics.retries.labels(agent.profile.agent_type, "dead").inc()
        for agent_type in s.agent_types:
            for taken in await self.queue.reclaim_ready(
                agent_type, self.consumer, s.visibility_timeout_s
            ):
                self._hold(taken, agent_type)
                self._wakes[agent_type].set()
        queued = {t: await self.queue.queued(t) for t in s.agent_types}
        self.metrics.registry_view(s.agent_types, agents, queued)
        self.metrics.dead_letters.set(await self.queue.dead_letters())
        self.metrics.dead_letter_cap.set(s.dead_letter_cap)

    async def run_maintenance(self, stop: asyncio.Event) -> None:
        async def step() -> None:
            await self.maintain_once()
            await _wait(stop, self.settings.maintenance_interval_s)

        await _forever(stop, step, "maintenance")


async def _forever(stop: asyncio.Event, step: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `step` until stopped; a Redis outage pauses the loop (logged once), it does not
    end it."""
    failures = 0
    outage = Outage(log, f"{name} loop: Redis")
    while not stop.is_set():
        try:
            await step()
            failures = 0
            outage.recovered()
        except (RedisError, OSError) as err:
            failures += 1
            outage.failed(err)
            await _wait(stop, min(5.0, 0.1 * 2**failures))


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, less if the event is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
