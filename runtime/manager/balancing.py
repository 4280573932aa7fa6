"""Balancing strategies: which healthy agent of a type gets the next task.

Pure and in-memory: the manager mirrors the agent registry (Redis) into a `Balancer` and asks
it to choose. Every strategy keeps an index per agent type so a choice costs O(log n) (or
amortised O(1) for round robin), not a scan of every agent: selection must stay in the
microseconds with 10,000 registered agents.
"""

from __future__ import annotations

import heapq
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from contracts.balancing import ScoreWeights, Strategy

__all__ = [
    "AgentState",
    "Balancer",
    "LeastConnections",
    "RoundRobin",
    "ScoreBased",
    "ScoreWeights",
    "Strategy",
    "TaskRequest",
    "WeightedRoundRobin",
    "make_balancer",
]


@dataclass(frozen=True, slots=True)
class AgentState:
    """What the balancer knows of one agent."""

    agent_id: str
    agent_type: str
    capacity: int
    load: int = 0
    weight: int = 1
    healthy: bool = True
    draining: bool = False
    # Observed quality, kept by the manager from completed tasks.
    success_rate: float = 1.0
    avg_response_s: float = 0.0
    # Request types this agent handles well (empty: any of its agent type).
    request_types: frozenset[str] = frozenset()
    # Task complexity (0..1) the agent is sized for.
    max_complexity: float = 1.0

    @property
    def eligible(self) -> bool:
        return self.healthy and not self.draining and self.load < self.capacity


@dataclass(frozen=True, slots=True)
class TaskRequest:
    agent_type: str
    request_type: str | None = None
    complexity: float = 0.5


class Balancer(ABC):
    """The registry view plus a choice rule. Not thread-safe: one event loop owns it."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentState] = {}

    # -- registry ---------------------------------------------------------------------------
    def upsert(self, agent: AgentState) -> None:
        old = self._agents.get(agent.agent_id)
        if old is not None and old.agent_type != agent.agent_type:
            self.remove(agent.agent_id)
            old = None
        self._agents[agent.agent_id] = agent
        self._changed(old, agent)

    def remove(self, agent_id: str) -> None:
        old = self._agents.pop(agent_id, None)
        if old is not None:
            self._removed(old)

    def get(self, agent_id: str) -> AgentState | None:
        return self._agents.get(agent_id)

    def __len__(self) -> int:
        return len(self._agents)

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def on_dispatch(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        self.upsert(replace(agent, load=agent.load + 1))

    def on_release(self, agent_id: str) -> None:
        """A task left the agent without a result (given back, or never delivered)."""
        agent = self._agents.get(agent_id)
        if agent is not None:
            self.upsert(replace(agent, load=max(0, agent.load - 1)))

    def on_complete(self, agent_id: str, succeeded: bool, duration_s: float) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        # Exponentially weighted: recent behaviour counts most, one outlier does not dominate.
        alpha = 0.2
        self.upsert(
            replace(
                agent,
                load=max(0, agent.load - 1),
                success_rate=(1 - alpha) * agent.success_rate + alpha * (1.0 if succeeded else 0.0),
                avg_response_s=(1 - alpha) * agent.avg_response_s + alpha * duration_s,
            )
        )

    # -- choice -----------------------------------------------------------------------------
    @abstractmethod
    def select(self, request: TaskRequest) -> AgentState | None:
        """The agent to dispatch to, or None when no healthy agent of the type has room."""

    def _changed(self, old: AgentState | None, new: AgentState) -> None:  # noqa: B027
        """Hook: keep the strategy's index current."""

    def _removed(self, old: AgentState) -> None:  # noqa: B027
        """Hook: drop the agent from the strategy's index."""


class RoundRobin(Balancer):
    """Each agent of a type in turn, skipping those without room."""

    def __init__(self) -> None:
        super().__init__()
        self._rings: dict[str, list[str]] = {}
        self._cursor: dict[str, int] = {}

    def _changed(self, old: AgentState | None, new: AgentState) -> None:
        if old is None:
            self._rings.setdefault(new.agent_type, []).append(new.agent_id)

    def _removed(self, old: AgentState) -> None:
        ring = self._rings[old.agent_type]
        index = ring.index(old.agent_id)
        ring.pop(index)
        if self._cursor.get(old.agent_type, 0) > index:
            self._cursor[old.agent_type] -= 1

    def select(self, request: TaskRequest) -> AgentState | None:
        ring = self._rings.get(request.agent_type)
        if not ring:
            return None
        start = self._cursor.get(request.agent_type, 0) % len(ring)
        for step in range(len(ring)):
            agent = self._agents[ring[(start + step) % len(ring)]]
            if agent.eligible:
                self._cursor[request.agent_type] = (start + step + 1) % len(ring)
                return agent
        return None


Group = tuple[object, ...]


class _IndexedHeap(Balancer):
    """A min-heap per group of agents (by default: per agent type) with lazy invalidation:
    an entry whose version is no longer the agent's is skipped when it reaches the top.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heaps: dict[Group, list[tuple[float, int, str]]] = {}
        self._version: dict[str, int] = {}
        self._counter = itertools.count()
        self._sizes: dict[Group, int] = {}
        self._groups_of_type: dict[str, set[Group]] = {}

    @abstractmethod
    def _key(self, agent: AgentState) -> float:
        """Smaller is better."""

    def _group(self, agent: AgentState) -> Group:
        return (agent.agent_type,)

    def _push(self, agent: AgentState) -> None:
        version = next(self._counter)
        self._version[agent.agent_id] = version
        group = self._group(agent)
        heap = self._heaps.setdefault(group, [])
        heapq.heappush(heap, (self._key(agent), version, agent.agent_id))
        # Stale entries pile up under churn; rebuild once they outnumber live ones.
        if len(heap) > 64 and len(heap) > 4 * max(1, self._sizes.get(group, 0)):
            self._rebuild(group)

    def _rebuild(self, group: Group) -> None:
        heap = [
            (self._key(a), self._version[a.agent_id], a.agent_id)
            for a in self._agents.values()
            if self._group(a) == group and a.eligible
        ]
        heapq.heapify(heap)
        self._heaps[group] = heap

    def _changed(self, old: AgentState | None, new: AgentState) -> None:
        group = self._group(new)
        if old is None or self._group(old) != group:
            if old is not None:
                self._forget(old)
            self._sizes[group] = self._sizes.get(group, 0) + 1
            self._groups_of_type.setdefault(new.agent_type, set()).add(group)
        if new.eligible:
            self._push(new)
        else:
            # Out of the running until it changes again: no entry is current.
            self._version[new.agent_id] = next(self._counter)

    def _forget(self, old: AgentState) -> None:
        group = self._group(old)
        self._sizes[group] -= 1
        if self._sizes[group] == 0:
            del self._sizes[group]
            self._heaps.pop(group, None)
            self._groups_of_type[old.agent_type].discard(group)

    def _removed(self, old: AgentState) -> None:
        self._version.pop(old.agent_id, None)
        self._forget(old)

    def _peek(self, group: Group) -> AgentState | None:
        heap = self._heaps.get(group)
        while heap:
            _, version, agent_id = heap[0]
            agent = self._agents.get(agent_id)
            if agent is not None and self._version.get(agent_id) == version and agent.eligible:
                return agent
            heapq.heappop(heap)
        return None


class LeastConnections(_IndexedHeap):
    """The agent with the smallest share of its capacity in use."""

    def _key(self, agent: AgentState) -> float:
        return agent.load / agent.capacity

    def select(self, request: TaskRequest) -> AgentState | None:
        return self._peek((request.agent_type,))


class WeightedRoundRobin(_IndexedHeap):
    """Deterministic smooth weighting (stride scheduling): over any run of sum(weights) choices
    each agent is chosen exactly weight times, spread out rather than in bursts.
    """

    # Divisible by every allowed weight (1..100), so strides are exact integers and a cycle
    # of sum(weights) choices hits each weight exactly, with no float drift.
    _STRIDE_BASE = math.lcm(*range(1, 101))

    def __init__(self) -> None:
        super().__init__()
        self._pass: dict[str, int] = {}
        self._now: dict[str, int] = {}

    def _key(self, agent: AgentState) -> float:
        return self._pass.setdefault(agent.agent_id, self._now.get(agent.agent_type, 0))

    def _removed(self, old: AgentState) -> None:
        super()._removed(old)
        self._pass.pop(old.agent_id, None)

    def select(self, request: TaskRequest) -> AgentState | None:
        agent = self._peek((request.agent_type,))
        if agent is None:
            return None
        current = self._pass[agent.agent_id]
        self._now[agent.agent_type] = current
        self._pass[agent.agent_id] = current + self._STRIDE_BASE // agent.weight
        self._push(agent)
        return agent

    def _changed(self, old: AgentState | None, new: AgentState) -> None:
        if old is not None and not old.eligible and new.eligible:
            # Back as if just served: no burst to catch up on the turns it could not take.
            self._pass[new.agent_id] = max(
                self._pass.get(new.agent_id, 0),
                self._now.get(new.agent_type, 0) + self._STRIDE_BASE // new.weight,
            )
        super()._changed(old, new)


class ScoreBased(_IndexedHeap):
    """The best score of success rate, speed, free capacity, request-type compatibility and
    complexity fit.

    Agents are grouped by profile (request types, complexity they are sized for), which comes
    from their pool's config, so a type has a handful of profiles. Within a profile the
    request-dependent terms are equal, so the profile's best is the top of its heap by the
    request-independent part: a choice costs O(profiles + log n), and it is exact.
    """

    def __init__(self, weights: ScoreWeights | None = None) -> None:
        super().__init__()
        self.weights = weights or ScoreWeights()

    def _group(self, agent: AgentState) -> Group:
        return (agent.agent_type, agent.request_types, agent.max_complexity)

    def _base(self, agent: AgentState) -> float:
        w = self.weights
        speed = 1.0 - min(agent.avg_response_s / w.slow_s, 1.0)
        free = 1.0 - agent.load / agent.capacity
        return w.success * agent.success_rate + w.speed * speed + w.load * free

    def _key(self, agent: AgentState) -> float:
        return -self._base(agent)

    def _request_terms(self, agent: AgentState, request: TaskRequest) -> float:
        w = self.weights
        compatible = not agent.request_types or request.request_type in agent.request_types
        if request.complexity > agent.max_complexity:
            fit = 0.0  # underpowered for the task: likely to fail
        else:
            # Overkill is wasted capacity: the closer the better.
            fit = 1.0 - min(agent.max_complexity - request.complexity, 1.0)
        return w.compatibility * float(compatible) + w.complexity_fit * fit

    def score(self, agent: AgentState, request: TaskRequest) -> float:
        return self._base(agent) + self._request_terms(agent, request)

    def select(self, request: TaskRequest) -> AgentState | None:
        best: AgentState | None = None
        best_score = -math.inf
        # Ties go to the smaller agent id, so the order of groups does not matter.
        for group in self._groups_of_type.get(request.agent_type, ()):
            top = self._peek(group)
            if top is None:
                continue
            candidate = self.score(top, request)
            if candidate > best_score or (
                candidate == best_score and best is not None and top.agent_id < best.agent_id
            ):
                best, best_score = top, candidate
        return best


def make_balancer(strategy: Strategy, weights: ScoreWeights | None = None) -> Balancer:
    if strategy is Strategy.ROUND_ROBIN:
        return RoundRobin()
    if strategy is Strategy.LEAST_CONNECTIONS:
        return LeastConnections()
    if strategy is Strategy.WEIGHTED_ROUND_ROBIN:
        return WeightedRoundRobin()
    return ScoreBased(weights)
