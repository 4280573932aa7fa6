"""The manager as a real process against a real redis-server, with real worker processes:
the task and agent API, bad input, bounds, emergency mode, drain, and crash safety."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running, worker_env
from tests.servers import RedisServer, redis_server
from tests.waiting import eventually

TYPES = ["coder", "scanner"]
# Short clocks so crash recovery happens within a test, not minutes.
FAST = {
    "heartbeat_ttl_s": 1.5,
    "visibility_timeout_s": 2,
    "maintenance_interval_s": 0.2,
    "registry_sync_s": 0.2,
    "retry_backoff_s": 0.1,
    "retry_backoff_max_s": 0.5,
}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis", appendfsync="always") as server:
        yield server


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens.create(tmp_path / "tokens")


def manager(redis: RedisServer, tokens: Tokens, tmp_path: Path, **settings: Any) -> ServiceProcess:
    env = manager_env(redis.url, tokens, TYPES, instance_id="manager-0", **(FAST | settings))
    return ServiceProcess("manager", env, tmp_path / "manager.log")


def worker(
    redis: RedisServer,
    tokens: Tokens,
    mgr: ServiceProcess,
    tmp_path: Path,
    agent_id: str,
    agent_type: str = "coder",
    **settings: Any,
) -> ServiceProcess:
    env = worker_env(
        redis.url,
        tokens,
        mgr.url,
        agent_type,
        agent_id,
        heartbeat_interval_s=0.3,
        **settings,
    )
    return ServiceProcess("worker", env, tmp_path / f"{agent_id}.log")


def submit(mgr: ServiceProcess, tokens: Tokens, **body: Any) -> httpx.Response:
    body = {"agent_type": "coder", "payload": {"n": 1}} | body
    return httpx.post(f"{mgr.url}/api/v1/tasks", json=body, headers=tokens.header("api"))


def task(mgr: ServiceProcess, tokens: Tokens, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{mgr.url}/api/v1/tasks/{task_id}", headers=tokens.header("api"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def all_finished(mgr: ServiceProcess, tokens: Tokens, ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return all(task(mgr, tokens, i)["status"] == "succeeded" for i in ids)
        except (httpx.HTTPError, AssertionError):
            return False

    return check


def test_tasks_run_on_workers_with_status_agent_and_timings(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    w1 = worker(redis, tokens, mgr, tmp_path, "coder-1", capacity=2)
    w2 = worker(redis, tokens, mgr, tmp_path, "coder-2", capacity=2)
    with running(mgr, w1, w2):
        eventually(
            "two agents registered",
            lambda: (
                len(httpx.get(f"{mgr.url}/api/v1/agents", headers=tokens.header("api")).json()) == 2
            ),
        )
        ids = []
        for i in range(20):
            response = submit(mgr, tokens, payload={"i": i})
            assert response.status_code == 202, response.text
            assert response.headers["Location"].endswith(response.json()["task_id"])
            ids.append(response.json()["task_id"])
        eventually("all tasks succeeded", all_finished(mgr, tokens, ids))
        records = [task(mgr, tokens, i) for i in ids]
        assert {r["agent_id"] for r in records} == {"coder-1", "coder-2"}
        for i, r in enumerate(records):
            assert r["result"]["echo"] == {"i": i}
            assert r["attempts"] == 1
            assert r["submitted_at"] <= r["assigned_at"] <= r["started_at"] <= r["finished_at"]
        agents = httpx.get(f"{mgr.url}/api/v1/agents", headers=tokens.header("agent")).json()
        assert {a["agent_id"]: a["healthy"] for a in agents} == {"coder-1": True, "coder-2": True}
        metrics = httpx.get(f"{mgr.url}/metrics").text
        assert 'agentops_tasks_total{agent_type="coder",status="succeeded"} 20.0' in metrics
        assert 'agentops_task_duration_seconds_count{agent_type="coder"} 20.0' in metrics
        assert 'agentops_agents_healthy{agent_type="coder"} 2.0' in metrics


def test_bad_input_gets_clear_4xx_and_never_echoes_a_token(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path, max_body_bytes=4096)
    url = f"{mgr.url}/api/v1/tasks"
    auth = tokens.header("api")
    with running(mgr):
        malformed = httpx.post(
            url, content=b'{"agent_type": "coder", "payload":', headers=auth | _json()
        )
        assert malformed.status_code == 400
        assert "malformed JSON" in malformed.text

        wrong_type = httpx.post(url, json={"agent_type": 5, "payload": 1}, headers=auth)
        assert wrong_type.status_code == 422
        assert wrong_type.json()["errors"][0]["field"] == "agent_type"

        bad_priority = httpx.post(
            url, json={"agent_type": "coder", "payload": 1, "priority": "urgent"}, headers=auth
        )
        assert bad_priority.status_code == 422
        assert bad_priority.json()["errors"][0]["field"] == "priority"

        too_big = httpx.post(url, json={"agent_type": "coder", "payload": "x" * 5000}, headers=auth)
        assert too_big.status_code == 413
        assert "4096 bytes" in too_big.json()["detail"]

        unknown = httpx.post(url, json={"agent_type": "painter", "payload": 1}, headers=auth)
        assert unknown.status_code == 422
        detail = unknown.json()["detail"]
        assert "agent_type" in detail and "coder, scanner" in detail
        assert "painter" not in detail, "the value sent is not echoed"

        long_key = httpx.post(
            url,
            json={"agent_type": "coder", "payload": 1, "idempotency_key": "k" * 129},
            headers=auth,
        )
        assert long_key.status_code == 422

        missing = httpx.post(url, json={"agent_type": "coder", "payload": 1})
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")

        # A token of another audience is not a submitter's token.
        forged = httpx.post(
            url, json={"agent_type": "coder", "payload": 1}, headers=tokens.header("agent")
        )
        assert forged.status_code == 401
        assert tokens.agent not in forged.text

        secret_in_body = httpx.post(
            url, json={"agent_type": "coder", "payload": 1, "extra": tokens.api}, headers=auth
        )
        assert secret_in_body.status_code == 422
        assert tokens.api not in secret_in_body.text

        assert httpx.get(f"{url}/{'0' * 32}", headers=auth).status_code == 404
        assert httpx.get(f"{url}/not-a-task-id", headers=auth).status_code == 422
        register = httpx.post(
            f"{mgr.url}/api/v1/agents",
            json={"agent_id": "x-1", "agent_type": "painter", "capacity": 1},
            headers=tokens.header("agent"),
        )
        assert register.status_code == 422


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_idempotent_submit_and_bounded_queue(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path, max_queued_per_type=3, queue_full_retry_after_s=7)
    with running(mgr):
        first = submit(mgr, tokens, idempotency_key="order-42")
        again = submit(mgr, tokens, idempotency_key="order-42", payload={"n": 2})
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == first.json() | {"duplicate": True}
        assert submit(mgr, tokens).status_code == 202
        assert submit(mgr, tokens).status_code == 202
        full = submit(mgr, tokens)
        assert full.status_code == 429
        assert full.headers["Retry-After"] == "7"
        assert "full" in full.json()["detail"]
        assert submit(mgr, tokens, agent_type="scanner").status_code == 202  # bound is per type
        eventually(
            "the queue gauge",
            lambda: (
                'agentops_queue_length{agent_type="coder"} 3.0'
                in httpx.get(f"{mgr.url}/metrics").text
            ),
            timeout=10,
        )


FINGERPRINT = "a1b2c3d4e5f60718"


def alert(status: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "agent-manager",
        "groupKey": '{}:{alertname="AgentSuccessRateCritical"}',
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "AgentSuccessRateCritical", "agent_type": "coder"},
                "annotations": {"summary": "coder success rate below 80%"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": FINGERPRINT,
            }
        ],
    }


def test_emergency_mode_from_alertmanager_survives_a_restart(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path, emergency_retry_after_s=11)
    hook = f"{mgr.url}/api/v1/alerts"
    with running(mgr):
        assert httpx.post(hook, json=alert("firing")).status_code == 401
        answer = httpx.post(hook, json=alert("firing"), headers=tokens.header("webhook"))
        assert answer.status_code == 200 and answer.json()["active"] is True
        refused = submit(mgr, tokens, priority="normal")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "11"
        assert submit(mgr, tokens, priority="low").status_code == 503
        assert submit(mgr, tokens, priority="high").status_code == 202
        ready = httpx.get(f"{mgr.url}/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["emergency_mode"]["detail"]["active"] is True
        assert "agentops_emergency_mode 1.0" in httpx.get(f"{mgr.url}/metrics").text

        mgr.stop(signal.SIGKILL)
        mgr.start()
        assert submit(mgr, tokens, priority="normal").status_code == 503, "state survives"
        assert "agentops_emergency_mode 1.0" in httpx.get(f"{mgr.url}/metrics").text

        resolved = httpx.post(hook, json=alert("resolved"), headers=tokens.header("webhook"))
        assert resolved.json()["active"] is False
        assert submit(mgr, tokens, priority="normal").status_code == 202
        assert "agentops_emergency_mode 0.0" in httpx.get(f"{mgr.url}/metrics").text
    # Both switches are audit events in the manager's JSON log (the shipper's audit group).
    events = [
        line
        for line in map(json.loads, (tmp_path / "manager.log").read_text().splitlines())
        if line.get(AUDIT_FIELD) == AuditEvent.EMERGENCY_MODE
    ]
    assert [(e["emergency_active"], e["firing"], e["resolved"]) for e in events] == [
        (True, [FINGERPRINT], []),
        (False, [], [FINGERPRINT]),
    ]


def test_drained_agent_gets_no_new_work_and_a_silent_one_is_unhealthy(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    # A silent agent is unhealthy after the TTL and forgotten after TTL + visibility: a long
    # visibility keeps it in view (unhealthy) however slowly this test polls.
    mgr = manager(redis, tokens, tmp_path, visibility_timeout_s=60)
    agents_api = f"{mgr.url}/api/v1/agents"
    auth = tokens.header("agent")
    with running(mgr):
        for agent_id in ("quiet-1", "drained-1"):
            r = httpx.post(
                agents_api,
                json={"agent_id": agent_id, "agent_type": "coder", "capacity": 4},
                headers=auth,
            )
            assert r.status_code == 201, r.text
        assert httpx.post(f"{agents_api}/drained-1/drain", headers=auth).json()["draining"]
        live = worker(redis, tokens, mgr, tmp_path, "live-1", capacity=4)
        with running(live):
            # quiet-1 never beats: unhealthy after the TTL, so it gets nothing either.
            eventually(
                "quiet-1 unhealthy",
                lambda: (
                    not {a["agent_id"]: a for a in httpx.get(agents_api, headers=auth).json()}[
                        "quiet-1"
                    ]["healthy"]
                ),
            )
            ids = [submit(mgr, tokens).json()["task_id"] for _ in range(12)]
            eventually("tasks done", all_finished(mgr, tokens, ids))
            assert {task(mgr, tokens, i)["agent_id"] for i in ids} == {"live-1"}
        assert httpx.post(f"{agents_api}/nobody/heartbeat", headers=auth).status_code == 404


def test_manager_killed_mid_load_loses_no_accepted_task(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    workers = [
        worker(redis, tokens, mgr, tmp_path, f"coder-{i}", capacity=4, work_latency_ms=20)
        for i in range(2)
    ]
    with running(mgr, *workers):
        accepted: list[str] = []
        for round_ in range(3):
            for i in range(60):
                try:
                    r = submit(mgr, tokens, payload={"round": round_, "i": i})
                except httpx.HTTPError:
                    continue  # refused while down: never accepted, the caller retries
                if r.status_code == 202:
                    accepted.append(r.json()["task_id"])
            if round_ < 2:
                mgr.stop(signal.SIGKILL)  # mid-load: tasks queued, assigned and running
                mgr.start()
        eventually("every accepted task", all_finished(mgr, tokens, accepted), timeout=120)
        assert len(accepted) == 180


def test_agent_killed_mid_task_its_task_is_finished_by_another(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path, strategy="round_robin")
    doomed = worker(
        redis, tokens, mgr, tmp_path, "coder-doomed", capacity=1, work_latency_ms=60_000
    )
    with running(mgr, doomed):
        task_id = submit(mgr, tokens, payload={"slow": True}).json()["task_id"]
        eventually("running", lambda: task(mgr, tokens, task_id)["status"] == "running")
        assert task(mgr, tokens, task_id)["agent_id"] == "coder-doomed"
        doomed.stop(signal.SIGKILL)
        rescuer = worker(redis, tokens, mgr, tmp_path, "coder-rescuer", capacity=1)
        with running(rescuer):
            eventually(
                "reclaimed and finished",
                lambda: task(mgr, tokens, task_id)["status"] == "succeeded",
            )
        record = task(mgr, tokens, task_id)
        assert record["agent_id"] == "coder-rescuer"
        assert record["attempts"] == 2
        assert record["error"] is None, "the success clears the reclaim's reason"


def test_redis_restart_with_aof_loses_no_accepted_task(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    w = worker(redis, tokens, mgr, tmp_path, "coder-1", capacity=4, work_latency_ms=10)
    with running(mgr, w):
        accepted = [submit(mgr, tokens, payload={"i": i}).json()["task_id"] for i in range(50)]
        redis.restart(signal.SIGKILL)  # a crash: AOF with fsync always keeps every write
        accepted += [submit(mgr, tokens, payload={"i": i}).json()["task_id"] for i in range(50)]
        eventually("every accepted task", all_finished(mgr, tokens, accepted), timeout=120)


def test_a_worker_the_manager_refuses_stays_unready_and_says_why(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    stray = worker(redis, tokens, mgr, tmp_path, "painter-1", agent_type="painter")
    with running(mgr, stray):
        eventually(
            "the refusal logged", lambda: "refused the registration" in stray.log.read_text()
        )
        ready = httpx.get(f"{stray.url}/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["registered"]["ok"] is False
        assert stray.alive, "a refusal does not crash the worker"
