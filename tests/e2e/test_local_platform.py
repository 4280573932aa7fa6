"""The whole runtime end to end on one machine: real Redis, cost engine, manager, workers,
Prometheus and Alertmanager, started by `agentops dev`'s own code from the local stack file.

The tests taking the `redis` fixture run twice: on a standalone redis-server and on a real
3-shard Redis Cluster (tests/redis_backends.py), every service and worker on that Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx

from contracts.settings.cost import price_book
from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import EMERGENCY_ALERT
from infra.plan.stackfile import load_stack_config
from runtime.cost import keys as cost_keys
from runtime.cost.ledger import Ledger
from runtime.service.redis import connect_url
from tests.e2e.platform import LocalPlatform, e2e_stack, eventually, local_platform
from tests.redis_backends import Backend, backends

redis = backends()


def ledger_today(platform: LocalPlatform) -> tuple[int, Decimal, dict[str, Decimal]]:
    async def read() -> tuple[int, Decimal, dict[str, Decimal]]:
        client = connect_url(platform.redis_url)
        try:
            totals = await Ledger(client).totals("day", dt.datetime.now(dt.UTC))
        finally:
            await client.aclose()
        return totals.calls, totals.cost_usd, totals.by_team

    return asyncio.run(read())


def expected_cost(directory: Path, records: list[dict[str, object]]) -> Decimal:
    """What the ledger must hold: each finished task's reported usage at the stack's prices."""
    book = price_book(load_stack_config(directory / "stack", "local").cost)
    total = Decimal(0)
    for record in records:
        for used in record["usage"] or []:  # type: ignore[attr-defined]
            total += book.cost(used["model"], used["input_tokens"], used["output_tokens"])
    return total


def test_tasks_run_on_workers_usage_lands_once_and_prometheus_sees_the_series(
    tmp_path: Path, redis: Backend
) -> None:
    with local_platform(tmp_path, workers=2, redis_url=redis.url) as platform:
        ids = [
            platform.submit(payload={"prompt": f"task {i}"}).json()["task_id"] for i in range(30)
        ]
        records = eventually("30 tasks finished", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"succeeded"}
        assert len({r["agent_id"] for r in records}) == 2, "both workers took work"
        models = {u["model"] for r in records for u in r["usage"]}
        assert models and all(r["result"]["model"] in models for r in records)

        calls, cost, _ = ledger_today(platform)
        assert calls == 30, "one usage record per task, none twice"
        assert cost == expected_cost(tmp_path, records)

        input_tokens = sum(u["input_tokens"] for r in records for u in r["usage"])
        eventually(
            "the task counter in Prometheus",
            lambda: platform.scalar(f'sum({m.TASKS}{{status="succeeded"}})') == 30,
        )
        eventually(
            "the latency histogram in Prometheus",
            lambda: platform.scalar(f"sum({m.TASK_DURATION}_count)") == 30,
        )
        eventually(
            "the token series in Prometheus",
            lambda: platform.scalar(f'sum({m.TASK_TOKENS}{{direction="input"}})') == input_tokens,
        )
        requests = platform.scalar(f'sum({m.HTTP_REQUESTS}{{endpoint="/api/v1/tasks",code="202"}})')
        assert requests == 30


def test_failure_burst_fires_the_alert_and_the_manager_enters_and_leaves_emergency_mode(
    tmp_path: Path,
) -> None:
    with local_platform(tmp_path, workers=1) as platform:
        ids = []
        for _ in range(20):
            # Spread over several scrapes: rate() sees a counter rise, not a series appear.
            ids.append(platform.submit(payload={"fail": True}).json()["task_id"])
            time.sleep(0.3)
        records = eventually("the failure burst", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"failed"}

        def firing() -> bool:
            alerts = httpx.get(f"{platform.url('prometheus')}/api/v1/alerts").json()
            return any(
                a["labels"]["alertname"] == EMERGENCY_ALERT and a["state"] == "firing"
                for a in alerts["data"]["alerts"]
            )

        eventually("Prometheus firing the success-rate alert", firing)
        eventually(
            "Alertmanager delivering it to the manager",
            lambda: platform.ready()["checks"]["emergency_mode"]["detail"]["active"],
        )
        refused = platform.submit(priority="normal")
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert platform.submit(priority="high").status_code == 202
        eventually("the emergency metric", lambda: platform.scalar(m.EMERGENCY_MODE) == 1)
        # The failures age out of the (local) success-rate window; the alert resolves.
        eventually(
            "emergency mode ending when the alert resolves",
            lambda: not platform.ready()["checks"]["emergency_mode"]["detail"]["active"],
            timeout=150,
        )
        assert platform.submit(priority="normal").status_code == 202


def test_sigterm_under_load_loses_no_task_and_counts_no_usage_twice(
    tmp_path: Path,
) -> None:
    with local_platform(tmp_path, workers=2, AGENTOPS_WORK_LATENCY_MS="300") as platform:
        ids = [platform.submit(payload={"prompt": f"t{i}"}).json()["task_id"] for i in range(40)]
        eventually(
            "work under way",
            lambda: sum(platform.task(i)["status"] == "succeeded" for i in ids) >= 5,
        )
        os.kill(platform.pid("worker-code-generator-0"), signal.SIGTERM)  # graceful: drains
        records = eventually("every task finished", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"succeeded"}
        assert {r["attempts"] for r in records} == {1}, "a drained worker finishes what it has"
        calls, cost, _ = ledger_today(platform)
        assert calls == 40
        assert cost == expected_cost(tmp_path, records)


def test_a_killed_workers_tasks_are_reclaimed_and_finished_by_another(tmp_path: Path) -> None:
    with local_platform(tmp_path, workers=2, AGENTOPS_WORK_LATENCY_MS="4000") as platform:
        ids = [platform.submit(payload={"prompt": f"k{i}"}).json()["task_id"] for i in range(4)]

        def running_on() -> dict[str, str] | None:
            records = [platform.task(i) for i in ids]
            if all(r["status"] == "running" for r in records):
                return {r["task_id"]: r["agent_id"] for r in records}
            return None

        placed = eventually("all four running", running_on)
        victim = "worker-code-generator-0"
        held = [task_id for task_id, agent in placed.items() if agent == victim]
        assert held, "the balancer spread the tasks over both workers"
        os.kill(platform.pid(victim), signal.SIGKILL)
        records = eventually("reclaimed tasks finished", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"succeeded"}
        for record in records:
            if record["task_id"] in held:
                assert record["agent_id"] == "worker-code-generator-1"
                assert record["attempts"] == 2
        calls, _, _ = ledger_today(platform)
        # The killed attempts never reported usage: one record per finished attempt.
        assert calls == len(records)


def test_a_team_over_its_budget_threshold_gets_the_downgraded_model(tmp_path: Path) -> None:
    cost = {
        "teamBudgets": {"research": {"dailyUsd": "0.02", "monthlyUsd": "1"}},
        "downgradeAt": 0.5,
    }
    with local_platform(
        tmp_path,
        workers=1,
        cost=cost,
        AGENTOPS_MODEL="gpt-5",
        AGENTOPS_MAX_INPUT_TOKENS="100",
        AGENTOPS_MAX_OUTPUT_TOKENS="200",
    ) as platform:
        models = []
        for i in range(8):
            task_id = platform.submit(team="research", payload={"prompt": f"r{i}"}).json()[
                "task_id"
            ]
            (record,) = eventually(f"task {i}", lambda t=task_id: platform.finished([t]))
            assert record["status"] == "succeeded", record
            models.append(record["result"]["model"])
        assert models[0] == "gpt-5"
        switch = models.index("gpt-5-mini")
        assert set(models[:switch]) == {"gpt-5"} and set(models[switch:]) == {"gpt-5-mini"}
        _, _, by_team = ledger_today(platform)
        assert by_team["research"] >= Decimal("0.01"), "downgraded only past half the budget"
        downgrades = httpx.get(f"{platform.url('cost-engine')}/metrics").text
        assert f'{m.DOWNGRADES}{{chosen="gpt-5-mini",requested="gpt-5"' in downgrades
        eventually(
            "the downgrade series in Prometheus",
            lambda: (platform.scalar(f"sum({m.DOWNGRADES})") or 0) > 0,
        )


GOVERNED_COST = {
    "teamBudgets": {"broke": {"dailyUsd": "0.000001", "monthlyUsd": "1"}},
    "rateLimits": {
        "overall": {"requests": 100000, "tokens": 100000000, "costUsd": "1000"},
        "teams": {"limited": {"requests": 2}},
    },
}


def test_idempotent_submits_budget_and_limit_refusals_hold_on_this_redis(
    tmp_path: Path, redis: Backend
) -> None:
    with local_platform(tmp_path, workers=2, cost=GOVERNED_COST, redis_url=redis.url) as platform:
        first = [platform.submit(idempotency_key=f"key-{i}") for i in range(10)]
        again = [platform.submit(idempotency_key=f"key-{i}") for i in range(10)]
        ids = [r.json()["task_id"] for r in first]
        assert {r.status_code for r in first + again} == {202}
        assert [r.json()["task_id"] for r in again] == ids, "a retried submit is the same task"
        assert [r.json()["duplicate"] for r in again] == [True] * 10
        records = eventually("10 tasks finished", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"succeeded"}
        assert {r["attempts"] for r in records} == {1}
        calls, cost, _ = ledger_today(platform)
        assert calls == 10, "one usage record per task, none for the duplicate submits"
        assert cost == expected_cost(tmp_path, records)

        # A team past its budget: the task fails before any work, and nothing is charged.
        broke = platform.submit(team="broke").json()["task_id"]
        (refused,) = eventually("the over-budget task", lambda: platform.finished([broke]))
        assert refused["status"] == "failed"
        assert refused["error"].startswith("budget exhausted: "), refused["error"]

        # A team with 2 requests an hour: 2 tasks run, the third waits for the window.
        limited = [platform.submit(team="limited").json()["task_id"] for _ in range(3)]
        eventually(
            "2 of the limited team's tasks done, the third refused by the limit",
            lambda: (
                (
                    sum(platform.task(i)["status"] == "succeeded" for i in limited) == 2
                    and f'scope="{cost_keys.team_scope("limited")}"' in _rate_limited(platform)
                )
                or None
            ),
        )
        assert sum(platform.task(i)["status"] == "succeeded" for i in limited) == 2
        calls, _, by_team = ledger_today(platform)
        assert calls == 12, "10 + the limited team's 2; nothing for the refused ones"
        assert "broke" not in by_team


def _rate_limited(platform: LocalPlatform) -> str:
    """The cost engine's rate-limited counter lines."""
    text = httpx.get(f"{platform.url('cost-engine')}/metrics", timeout=10).text
    return "\n".join(line for line in text.splitlines() if line.startswith(m.RATE_LIMITED))


def test_e2e_stack_file_is_the_local_stack_with_room_for_tests(tmp_path: Path) -> None:
    e2e_stack(tmp_path)
    cfg = load_stack_config(tmp_path, "local")
    assert [p.name for p in cfg.agents.pools] == ["code-generator"]
