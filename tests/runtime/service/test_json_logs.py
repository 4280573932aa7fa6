"""The runtime's logs are JSON lines that lead to the task and its trace, and carry no secret.

Real services (Redis with a password, cost engine, manager, worker) run with tracing on and
their log level at info; the test drives work that succeeds, work that fails, a cost engine
outage in the middle of tasks, and callers with wrong tokens and bad bodies. Then every line
of every service's log must parse as one JSON object with the fields a log shipper indexes,
every line about a task names its trace, and no token value nor the Redis password appears in
any log or in any /metrics answer.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from contracts import endpoints
from contracts.config import load_from_mapping
from tests.otlp import otlp_receiver
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running, worker_env
from tests.servers import redis_server
from tests.stacks import stack_values
from tests.waiting import eventually

PASSWORD = "redis-Pa55word-never-logged-7f3a9c"
POOL = "code-generator"
TASK_FIELDS = ("task_id", "trace_id", "span_id")
KNOWN_FIELDS = {"time", "level", "logger", "message", "exc_info", *TASK_FIELDS}


def _tracing(endpoint: str) -> dict[str, str]:
    return {
        "AGENTOPS_TRACE_EXPORTER": "otlp",
        "AGENTOPS_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "AGENTOPS_LOG_LEVEL": "info",
    }


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Tokens, dict[str, ServiceProcess]]]:
    cfg = load_from_mapping(stack_values("local"))
    with ExitStack() as stack:
        server = stack.enter_context(redis_server(tmp_path / "redis"))
        redis.Redis.from_url(server.url).config_set("requirepass", PASSWORD)
        password_file = tmp_path / "redis.password"
        password_file.write_text(PASSWORD + "\n")
        receiver = stack.enter_context(otlp_receiver())
        tokens = Tokens.create(tmp_path / "tokens")
        common = {
            "AGENTOPS_REDIS_PASSWORD_FILE": str(password_file),
            **_tracing(receiver.endpoint),
        }
        cost = ServiceProcess(
            "cost-engine",
            {
                "AGENTOPS_REDIS_URL": server.url,
                "AGENTOPS_API_TOKEN_FILE": tokens.file("cost"),
                "AGENTOPS_COST_CONFIG": cfg.cost.model_dump_json(by_alias=True),
                **common,
            },
            tmp_path / "cost-engine.log",
        )
        manager = ServiceProcess(
            "manager",
            manager_env(server.url, tokens, [POOL], instance_id="manager-0") | common,
            tmp_path / "manager.log",
        )
        worker = ServiceProcess(
            "worker",
            worker_env(
                server.url,
                tokens,
                manager.url,
                POOL,
                f"{POOL}-1",
                cost_engine_url=cost.url,
                cost_token_file=tokens.file("cost"),
                heartbeat_interval_s=0.3,
                retry_backoff_s=0.1,
                retry_backoff_max_s=0.2,
            )
            | common,
            tmp_path / "worker.log",
        )
        stack.enter_context(running(cost, manager, worker))
        yield tokens, {"cost-engine": cost, "manager": manager, "worker": worker}


def _submit(manager: ServiceProcess, tokens: Tokens, payload: dict[str, Any]) -> str:
    answer = httpx.post(
        manager.url + endpoints.TASKS_API,
        json={"agent_type": POOL, "payload": payload},
        headers=tokens.header("api"),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


def _status(manager: ServiceProcess, tokens: Tokens, task_id: str) -> str:
    answer = httpx.get(
        f"{manager.url}{endpoints.TASKS_API}/{task_id}", headers=tokens.header("api"), timeout=10
    )
    return str(answer.json()["status"])


def _drive(tokens: Tokens, procs: dict[str, ServiceProcess]) -> list[str]:
    manager, cost = procs["manager"], procs["cost-engine"]
    ids = [_submit(manager, tokens, {"prompt": f"ok {i}"}) for i in range(4)]
    ids += [_submit(manager, tokens, {"prompt": "no", "fail": True}) for _ in range(2)]
    # Callers with wrong credentials and bad bodies.
    wrong = {"Authorization": f"Bearer {tokens.api}x"}
    assert httpx.post(manager.url + endpoints.TASKS_API, json={}, headers=wrong).status_code == 401
    assert httpx.get(cost.url + endpoints.COST_API + "/prices", headers=wrong).status_code == 401
    bad = httpx.post(
        manager.url + endpoints.TASKS_API,
        json={"agent_type": POOL, "payload": {}, "token": tokens.api},
        headers=tokens.header("api"),
    )
    assert bad.status_code == 422
    # The cost engine goes away while tasks wait: the worker defers them and logs why.
    cost.stop(signal.SIGTERM)
    ids += [_submit(manager, tokens, {"prompt": f"outage {i}"}) for i in range(2)]
    eventually(
        "a deferral logged by the worker",
        lambda: "dependency unavailable" in procs["worker"].log.read_text(),
        timeout=30,
    )
    cost.start()
    eventually(
        "every task finished",
        lambda: all(_status(manager, tokens, i) in ("succeeded", "failed") for i in ids),
        timeout=60,
    )
    return ids


def test_logs_are_json_lines_with_task_and_trace_ids_and_no_secret(
    services: tuple[Tokens, dict[str, ServiceProcess]],
) -> None:
    tokens, procs = services
    ids = _drive(tokens, procs)
    secrets = {
        "api token": tokens.api,
        "agent token": tokens.agent,
        "webhook token": tokens.webhook,
        "cost token": tokens.cost,
        "redis password": PASSWORD,
    }
    for name, proc in procs.items():
        metrics = httpx.get(proc.url + endpoints.METRICS, timeout=10).text
        for what, value in secrets.items():
            assert value not in metrics, f"{what} in {name}'s /metrics"
    for proc in procs.values():
        proc.stop(signal.SIGTERM)  # the last lines (shutdown) are written too
    task_lines: dict[str, list[dict[str, Any]]] = {}
    loggers = set()
    for name, proc in procs.items():
        text = proc.log.read_text()
        for what, value in secrets.items():
            assert value not in text, f"{what} in {name}'s log"
        for number, line in enumerate(text.splitlines(), 1):
            record = json.loads(line)  # every line is one JSON object
            assert isinstance(record, dict), f"{name}:{number}"
            assert {"time", "level", "logger", "message"} <= set(record), f"{name}:{number}"
            assert set(record) <= KNOWN_FIELDS, f"{name}:{number}: {line}"
            loggers.add(record["logger"])
            if "task_id" in record:
                assert all(record.get(f) for f in TASK_FIELDS), f"{name}:{number}: {line}"
                task_lines.setdefault(record["task_id"], []).append(record)
    assert "uvicorn.error" in loggers, "uvicorn's own lines are JSON too"
    assert set(ids) <= set(task_lines), "every task has lines naming it"
    for task_id in ids:
        traces = {r["trace_id"] for r in task_lines[task_id]}
        # The manager's line at submit and the worker's at the end: the same trace.
        assert len(traces) == 1, (task_id, task_lines[task_id])
        assert {r["logger"] for r in task_lines[task_id]} >= {
            "agentops.manager",
            "agentops.worker",
        }
