"""Chaos on the local platform: a steady load while a seeded schedule SIGKILLs a worker, the
manager, the cost engine and Redis, each restarted after a short outage.

At quiescence: every accepted task succeeded; no task was charged more often than its work
really ran, and every extra run of a task comes from an attempt reclaimed mid-work (the
abandoned count, the one way work runs twice); no reservation is open; queue counters and agent
loads are back to 0; and no answer was a 5xx other than a 503 with Retry-After.

AGENTOPS_CHAOS_SEED picks the schedule (default 1); the test prints it with the counts."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis as redis_client

from ops.devstack.control import restart
from runtime.cost import keys as cost_keys
from runtime.manager import constants as k
from tests.e2e.platform import LocalPlatform, eventually, local_platform

TASKS = 400
RATE_PER_S = 8.0
WORKERS = ("worker-code-generator-0", "worker-code-generator-1")
TARGETS = (*WORKERS, "manager", "cost-engine", "redis")


@dataclass
class Load:
    """What the submitting client saw."""

    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key → task id
    answers: Counter[int] = field(default_factory=Counter)
    refused_without_retry_after: int = 0
    unreachable: int = 0

    def submit_all(self, platform: LocalPlatform, seed: int) -> None:
        url = f"{platform.url('manager')}/api/v1/tasks"
        started = time.monotonic()
        with httpx.Client(headers=platform.auth(), timeout=5) as http:
            for i in range(TASKS):
                time.sleep(max(0.0, started + i / RATE_PER_S - time.monotonic()))
                self._submit_one(http, url, f"chaos-{seed}-{i}", i)

    def _submit_one(self, http: httpx.Client, url: str, key: str, i: int) -> None:
        body = {"agent_type": "code-generator", "payload": {"i": i}, "idempotency_key": key}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = http.post(url, json=body)
            except httpx.TransportError:  # the manager is down: the same key, again
                self.unreachable += 1
                time.sleep(0.2)
                continue
            self.answers[answer.status_code] += 1
            if answer.status_code == 202:
                self.accepted[key] = answer.json()["task_id"]
                return
            if answer.status_code == 503 and "Retry-After" not in answer.headers:
                self.refused_without_retry_after += 1
            if answer.status_code < 500 and answer.status_code != 429:
                raise AssertionError(f"submit refused: {answer.status_code} {answer.text}")
            time.sleep(min(1.0, float(answer.headers.get("Retry-After", "0.2"))))
        raise AssertionError(f"task {i} never accepted")


def schedule(seed: int, duration_s: float) -> list[tuple[float, str, float]]:
    """(second, process, outage seconds): every kind of process once, then one more, spread
    over the load and ending before it does."""
    rng = random.Random(seed)
    targets = [*rng.sample(TARGETS, len(TARGETS)), rng.choice(TARGETS)]
    step = duration_s * 0.8 / len(targets)
    return [
        (round(2 + i * step + rng.uniform(0, step / 3), 1), target, round(rng.uniform(0.5, 2.5), 1))
        for i, target in enumerate(targets)
    ]


def kill_and_restart(platform: LocalPlatform, plan: list[tuple[float, str, float]]) -> None:
    started = time.monotonic()
    for at, name, outage in plan:
        time.sleep(max(0.0, started + at - time.monotonic()))
        state = platform.state
        pid = next(p["pid"] for p in _processes(state) if p["name"] == name)
        os.kill(pid, signal.SIGKILL)
        time.sleep(outage)
        restart(state, name)


def _processes(state: Path) -> list[dict[str, object]]:
    from ops.devstack.control import read_state

    record = read_state(state)
    assert record is not None
    return list(record["processes"])


def redis_of(platform: LocalPlatform) -> redis_client.Redis:
    port = next(p["port"] for p in _processes(platform.state) if p["name"] == "redis")
    return redis_client.Redis(host="127.0.0.1", port=int(str(port)), decode_responses=True)


def statuses(db: redis_client.Redis, task_ids: list[str]) -> Counter[str]:
    pipe = db.pipeline(transaction=False)
    for task_id in task_ids:
        pipe.hget(k.task_key(task_id), "status")
    return Counter(pipe.execute())


def charges(db: redis_client.Redis) -> Counter[str]:
    """Usage records in the ledger per task (one idempotency mark per task attempt)."""
    prefix = cost_keys.seen("")
    return Counter(key[len(prefix) :].rsplit(":", 1)[0] for key in db.scan_iter(f"{prefix}*"))


def abandoned(db: redis_client.Redis) -> Counter[str]:
    found: Counter[str] = Counter()
    for _, event in db.xrange(k.EVENTS):
        if event.get("abandoned") == "1":
            found[event["task"]] += 1
    return found


def test_chaos_loses_nothing_and_charges_only_real_work(tmp_path: Path) -> None:
    seed = int(os.environ.get("AGENTOPS_CHAOS_SEED", "1"))
    run_log = tmp_path / "runs.log"
    plan = schedule(seed, TASKS / RATE_PER_S)
    print(f"\nchaos seed {seed}: schedule (s, process, outage s) {plan}")
    with local_platform(
        tmp_path,
        workers=len(WORKERS),
        cost={"reservationTimeoutSeconds": 10},
        manager_env={"AGENTOPS_HEARTBEAT_TTL_S": "5", "AGENTOPS_VISIBILITY_TIMEOUT_S": "6"},
        AGENTOPS_WORK_LATENCY_MS="250",
        AGENTOPS_WORK_RUN_LOG=str(run_log),
    ) as platform:
        load = Load()
        failures: list[BaseException] = []

        def chaos_monkey() -> None:
            try:
                kill_and_restart(platform, plan)
            except BaseException as err:
                failures.append(err)

        chaos = threading.Thread(target=chaos_monkey)
        chaos.start()
        try:
            load.submit_all(platform, seed)
        finally:
            chaos.join()
        assert not failures, failures
        ids = list(load.accepted.values())
        db = redis_of(platform)
        # The local stack fsyncs every write (redis.appendfsync): a Redis crash lost nothing.
        assert db.config_get("appendfsync") == {"appendfsync": "always"}
        final = eventually(
            "every accepted task finished",
            lambda: (
                s
                if sum(
                    (s := statuses(db, ids))[x] for x in ("succeeded", "failed", "dead_lettered")
                )
                == len(ids)
                else None
            ),
            timeout=180,
        )
        eventually(
            "no open reservation",
            lambda: db.hlen(cost_keys.RESERVATIONS) == 0 or None,
            timeout=60,
        )
        eventually(
            "queue counters and agent loads at 0",
            lambda: (
                (
                    all(int(db.get(key) or 0) == 0 for key in db.scan_iter(k.queued_counter("*")))
                    and all(
                        int(db.hget(key, "load") or 0) == 0
                        for key in db.scan_iter(k.agent_key("*"))
                    )
                )
                or None
            ),
            timeout=60,
        )
        runs = Counter(line.split()[0] for line in run_log.read_text().splitlines())
        charged = charges(db)
        lost_runs = abandoned(db)
        db.close()

    over_charged = {t: (charged[t], runs[t]) for t in ids if charged[t] > runs[t]}
    uncharged = [t for t in ids if charged[t] == 0]
    unexplained = {t: (runs[t], lost_runs[t]) for t in ids if runs[t] - 1 > lost_runs[t]}
    print(
        f"chaos seed {seed}: accepted {len(ids)}, statuses {dict(final)}, "
        f"work runs {sum(runs[t] for t in ids)}, charges {sum(charged[t] for t in ids)}, "
        f"tasks run twice {sum(runs[t] > 1 for t in ids)}, kills {len(plan)}, "
        f"abandoned attempts {sum(lost_runs.values())}, answers {dict(load.answers)}, "
        f"unreachable {load.unreachable}"
    )
    assert len(ids) == TASKS
    assert final == Counter({"succeeded": TASKS})
    assert not over_charged, f"charged more often than the work ran: {over_charged}"
    assert not uncharged, f"finished without a charge: {uncharged}"
    assert not unexplained, f"ran again without an abandoned attempt: {unexplained}"
    bad = {code: n for code, n in load.answers.items() if code >= 500 and code != 503}
    assert not bad and load.refused_without_retry_after == 0, (bad, load)


def test_a_ten_second_cost_engine_outage_dead_letters_nothing(tmp_path: Path) -> None:
    with local_platform(
        tmp_path, workers=2, AGENTOPS_RETRY_BACKOFF_S="0.5", AGENTOPS_RETRY_BACKOFF_MAX_S="2"
    ) as platform:
        engine = next(p for p in _processes(platform.state) if p["name"] == "cost-engine")
        os.kill(int(str(engine["pid"])), signal.SIGKILL)
        ids = [platform.submit(payload={"o": i}).json()["task_id"] for i in range(20)]
        time.sleep(10)
        db = redis_of(platform)
        during = statuses(db, ids)
        restart(platform.state, "cost-engine")
        records = eventually("every task finished", lambda: platform.finished(ids))
        dead = db.xlen(k.DEAD_LETTERS)
        db.close()
    assert "dead_lettered" not in during and "failed" not in during, during
    assert {r["status"] for r in records} == {"succeeded"}
    assert {r["attempts"] for r in records} == {1}, "an outage spends no attempt"
    assert dead == 0
