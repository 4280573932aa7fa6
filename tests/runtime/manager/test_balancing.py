"""Balancing strategies: their distributions, and the indexed choice equals a full scan."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from runtime.manager.balancing import (
    AgentState,
    LeastConnections,
    RoundRobin,
    ScoreBased,
    Strategy,
    TaskRequest,
    WeightedRoundRobin,
    make_balancer,
)

REQ = TaskRequest(agent_type="coder")


def agents(n: int, **fields: object) -> list[AgentState]:
    return [
        AgentState(agent_id=f"a{i}", agent_type="coder", capacity=4, **fields)  # type: ignore[arg-type]
        for i in range(n)
    ]


def picks(
    balancer: RoundRobin | WeightedRoundRobin | LeastConnections | ScoreBased, n: int
) -> list[str]:
    chosen = []
    for _ in range(n):
        agent = balancer.select(REQ)
        assert agent is not None
        chosen.append(agent.agent_id)
    return chosen


def test_round_robin_cycles_and_skips_agents_without_room() -> None:
    rr = RoundRobin()
    for a in agents(3):
        rr.upsert(a)
    assert picks(rr, 6) == ["a0", "a1", "a2", "a0", "a1", "a2"]
    rr.upsert(replace(rr.get("a1"), healthy=False))  # type: ignore[arg-type]
    rr.upsert(replace(rr.get("a2"), load=4))  # type: ignore[arg-type]
    assert picks(rr, 3) == ["a0", "a0", "a0"]
    rr.upsert(replace(rr.get("a0"), draining=True))  # type: ignore[arg-type]
    assert rr.select(REQ) is None
    assert rr.select(TaskRequest(agent_type="reviewer")) is None


def test_round_robin_survives_removal() -> None:
    rr = RoundRobin()
    for a in agents(4):
        rr.upsert(a)
    assert picks(rr, 2) == ["a0", "a1"]
    rr.remove("a0")
    assert picks(rr, 3) == ["a2", "a3", "a1"]


def test_least_connections_spreads_load_evenly() -> None:
    lc = LeastConnections()
    for a in agents(5):
        lc.upsert(a)
    for _ in range(20):  # 5 agents × capacity 4
        agent = lc.select(REQ)
        assert agent is not None
        lc.on_dispatch(agent.agent_id)
    assert [lc.get(f"a{i}").load for i in range(5)] == [4] * 5  # type: ignore[union-attr]
    assert lc.select(REQ) is None
    lc.on_complete("a3", succeeded=True, duration_s=1.0)
    assert lc.select(REQ).agent_id == "a3"  # type: ignore[union-attr]


def test_least_connections_uses_share_of_capacity() -> None:
    lc = LeastConnections()
    lc.upsert(AgentState("big", "coder", capacity=10, load=4))
    lc.upsert(AgentState("small", "coder", capacity=2, load=1))
    assert lc.select(REQ).agent_id == "big"  # type: ignore[union-attr]  # 40 % < 50 %


def test_weighted_round_robin_hits_weights_exactly_and_smoothly() -> None:
    wrr = WeightedRoundRobin()
    for name, weight in (("a", 1), ("b", 2), ("c", 3)):
        wrr.upsert(AgentState(name, "coder", capacity=100, weight=weight))
    sequence = picks(wrr, 600)
    assert Counter(sequence) == {"a": 100, "b": 200, "c": 300}
    for start in range(0, 600, 6):
        assert Counter(sequence[start : start + 6]) == {"a": 1, "b": 2, "c": 3}
    # Smooth, not bursty: nobody is chosen three times in a row.
    assert all(len(set(sequence[i : i + 3])) > 1 for i in range(598))


def test_weighted_round_robin_is_deterministic_and_rejoins_fairly() -> None:
    def run() -> list[str]:
        wrr = WeightedRoundRobin()
        for name, weight in (("a", 5), ("b", 1)):
            wrr.upsert(AgentState(name, "coder", capacity=100, weight=weight))
        first = picks(wrr, 12)
        wrr.upsert(replace(wrr.get("b"), healthy=False))  # type: ignore[arg-type]
        middle = picks(wrr, 10)
        wrr.upsert(replace(wrr.get("b"), healthy=True))  # type: ignore[arg-type]
        return first + middle + picks(wrr, 12)

    sequence = run()
    assert sequence == run()
    assert set(sequence[12:22]) == {"a"}
    # Back from an outage, b gets its share again, without a burst for the time it was out.
    assert Counter(sequence[22:]) == {"a": 10, "b": 2}


def _brute_force(balancer: ScoreBased, pool: list[AgentState], req: TaskRequest) -> AgentState:
    eligible = [a for a in pool if a.eligible]
    return max(
        eligible, key=lambda a: (round(balancer.score(a, req), 12), [-ord(c) for c in a.agent_id])
    )


@pytest.mark.parametrize("seed", range(5))
def test_score_based_equals_a_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    sb = ScoreBased()
    pool = []
    for i in range(500):
        agent = AgentState(
            agent_id=f"a{i:04d}",
            agent_type="coder",
            capacity=rng.randint(1, 8),
            load=0,
            success_rate=rng.random(),
            avg_response_s=rng.uniform(0, 40),
            request_types=frozenset(rng.sample(["code", "review", "test"], rng.randint(0, 2))),
            max_complexity=rng.random(),
            healthy=rng.random() > 0.1,
        )
        agent = replace(agent, load=rng.randint(0, agent.capacity))
        pool.append(agent)
        sb.upsert(agent)
    for _ in range(50):
        req = TaskRequest("coder", rng.choice(["code", "review", "test", None]), rng.random())
        chosen = sb.select(req)
        assert chosen is not None
        expected = _brute_force(sb, pool, req)
        assert sb.score(chosen, req) == pytest.approx(sb.score(expected, req))


def test_score_based_prefers_reliable_compatible_fitting_agents() -> None:
    sb = ScoreBased()
    sb.upsert(AgentState("flaky", "coder", 4, success_rate=0.5))
    sb.upsert(AgentState("steady", "coder", 4, success_rate=0.99))
    assert sb.select(REQ).agent_id == "steady"  # type: ignore[union-attr]
    sb.upsert(
        AgentState("reviewer", "coder", 4, success_rate=0.99, request_types=frozenset({"review"}))
    )
    review = TaskRequest("coder", "review")
    assert sb.select(review).agent_id == "reviewer"  # type: ignore[union-attr]
    small = AgentState("small", "coder", 4, success_rate=1.0, max_complexity=0.3)
    sb.upsert(small)
    hard = TaskRequest("coder", None, complexity=0.9)
    assert sb.select(hard).agent_id != "small"  # type: ignore[union-attr]


def test_completion_updates_observed_quality() -> None:
    sb = make_balancer(Strategy.SCORE_BASED)
    sb.upsert(AgentState("a", "coder", 4))
    sb.on_dispatch("a")
    sb.on_complete("a", succeeded=False, duration_s=10.0)
    agent = sb.get("a")
    assert agent is not None
    assert agent.load == 0
    assert agent.success_rate == pytest.approx(0.8)
    assert agent.avg_response_s == pytest.approx(2.0)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_handles_ten_thousand_agents(strategy: Strategy) -> None:
    rng = random.Random(7)
    balancer = make_balancer(strategy)
    for i in range(10_000):
        balancer.upsert(
            AgentState(
                f"a{i}",
                rng.choice(["coder", "scanner"]),
                capacity=2,
                weight=rng.randint(1, 5),
                success_rate=rng.random(),
            )
        )
    dispatched = 0
    while (agent := balancer.select(REQ)) is not None:
        assert agent.agent_type == "coder"
        assert agent.eligible
        balancer.on_dispatch(agent.agent_id)
        dispatched += 1
    coders = sum(1 for i in range(10_000) if balancer.get(f"a{i}").agent_type == "coder")  # type: ignore[union-attr]
    assert dispatched == 2 * coders  # every slot filled, none twice
