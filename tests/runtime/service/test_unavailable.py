"""The cost engine, like the manager, answers 503 with Retry-After while Redis is down and
turns unready, then serves again: the shared service shell, not each route, handles it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.runtime.cost.test_service import AUTH, start, stop
from tests.servers import redis_server
from tests.waiting import eventually

COST = {"budget": {"dailyUsd": "1000", "monthlyUsd": "10000"}}


def reservation(task_id: str) -> dict[str, object]:
    return {
        "task_id": task_id,
        "attempt": 1,
        "team": "research",
        "agent_type": "coder",
        "model": "gpt-4o",
        "max_input_tokens": 100,
        "max_output_tokens": 10,
    }


def test_cost_engine_answers_503_while_redis_is_down(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", appendfsync="always") as redis:
        engine = start(redis, tmp_path, COST)
        try:
            api = f"{engine.url}/api/v1"
            assert (
                httpx.post(
                    f"{api}/reservations", json=reservation("a" * 32), headers=AUTH
                ).status_code
                == 201
            )
            redis.stop(signal.SIGKILL)
            refused = httpx.post(f"{api}/reservations", json=reservation("b" * 32), headers=AUTH)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
            assert httpx.get(f"{engine.url}/ready").status_code == 503
            redis.start()
            eventually(
                "serving again",
                lambda: (
                    httpx.post(
                        f"{api}/reservations", json=reservation("c" * 32), headers=AUTH
                    ).status_code
                    == 201
                ),
            )
        finally:
            stop(engine)
