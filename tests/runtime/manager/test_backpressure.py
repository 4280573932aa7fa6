"""The manager pushes back instead of failing: 503 with Retry-After while Redis is down or
out of memory (one log line per outage), the last good tokens when a token file goes bad,
and 422 for text it could store but never read back. No 4xx body echoes what was sent."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import redis as redis_client

from contracts.telemetry import metrics as m
from tests.runtime.manager.test_service import manager, redis, submit, tokens
from tests.runtime.processes import Tokens, running
from tests.servers import RedisServer
from tests.waiting import eventually

__all__ = ["redis", "tokens"]  # the fixtures this module borrows

OUTAGE_LINE = "Redis unavailable"


def outage_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "agentops.service" in line]


def test_redis_down_is_503_with_retry_after_and_one_log_line(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    with running(mgr):
        task_id = submit(mgr, tokens).json()["task_id"]
        redis.stop(signal.SIGKILL)
        answers = [submit(mgr, tokens, payload={"i": i}) for i in range(20)]
        answers.append(httpx.get(f"{mgr.url}/api/v1/tasks/{task_id}", headers=tokens.header("api")))
        assert {a.status_code for a in answers} == {503}
        assert {a.headers["Retry-After"] for a in answers} == {"2"}
        assert "state store is unavailable" in answers[0].json()["detail"]
        ready = httpx.get(f"{mgr.url}/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
        lines = outage_lines(mgr.log)
        assert len(lines) == 1 and OUTAGE_LINE in lines[0], lines
        assert "Traceback" not in mgr.log.read_text()

        redis.start()  # the same data: nothing accepted was lost
        eventually("accepted again", lambda: submit(mgr, tokens).status_code == 202)
        assert any("back after" in line for line in outage_lines(mgr.log))


def test_redis_out_of_memory_is_503_and_unready(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    client = redis_client.Redis.from_url(redis.url)
    with running(mgr):
        assert submit(mgr, tokens).status_code == 202
        # Every write is over the cap now, as when the data has grown to maxmemory.
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        refused = submit(mgr, tokens)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        ready = httpx.get(f"{mgr.url}/ready")
        assert ready.status_code == 503
        assert "out of memory" in ready.json()["checks"]["redis"]["detail"]

        client.config_set("maxmemory", 0)
        assert submit(mgr, tokens).status_code == 202
        assert httpx.get(f"{mgr.url}/ready").status_code == 200
    client.close()


def test_an_emptied_token_file_keeps_the_last_good_tokens_and_turns_unready(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    api_file = Path(tokens.file("api"))
    with running(mgr):
        api_file.write_text("")  # a botched rotation
        assert submit(mgr, tokens).status_code == 202, "served with the last good token"
        ready = httpx.get(f"{mgr.url}/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["tokens:tasks"]["ok"] is False
        assert f'{m.TOKEN_FILE_OK}{{realm="tasks"}} 0.0' in httpx.get(f"{mgr.url}/metrics").text

        rotated = "rotated-token-0123456789abcdef"
        api_file.write_text(rotated + "\n")
        accepted = httpx.post(
            f"{mgr.url}/api/v1/tasks",
            json={"agent_type": "coder", "payload": {}},
            headers={"Authorization": f"Bearer {rotated}"},
        )
        assert accepted.status_code == 202
        assert httpx.get(f"{mgr.url}/ready").status_code == 200
        assert f'{m.TOKEN_FILE_OK}{{realm="tasks"}} 1.0' in httpx.get(f"{mgr.url}/metrics").text


def test_a_lone_surrogate_is_refused_at_submit_naming_the_field(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    with running(mgr):
        refused = httpx.post(
            f"{mgr.url}/api/v1/tasks",
            content=b'{"agent_type": "coder", "payload": {"items": ["ok", "\\ud800"]}}',
            headers={**tokens.header("api"), "Content-Type": "application/json"},
        )
        assert refused.status_code == 422
        (problem,) = refused.json()["errors"]
        assert problem["field"] == "payload"
        assert "payload.items[1]" in problem["error"] and "surrogate" in problem["error"]


def test_no_4xx_body_echoes_a_submitted_value(
    redis: RedisServer, tokens: Tokens, tmp_path: Path
) -> None:
    mgr = manager(redis, tokens, tmp_path)
    marker = "zq-marker-7f3a"
    api = f"{mgr.url}/api/v1"
    with running(mgr):
        answers = [
            submit(mgr, tokens, agent_type=marker),
            submit(mgr, tokens, agent_type=None, request_type=marker),
            submit(mgr, tokens, **{marker.replace("-", "_"): 1}),
            submit(mgr, tokens, payload={"a": 1}, priority=marker),
            httpx.get(f"{api}/tasks/{'7f3a' * 8}", headers=tokens.header("api")),
            httpx.post(f"{api}/agents/{marker}/heartbeat", headers=tokens.header("agent")),
            httpx.post(
                f"{api}/agents",
                json={
                    "agent_id": "a-1",
                    "agent_type": "coder",
                    "capacity": 1,
                    "labels": {f"{marker}!": "x"},
                },
                headers=tokens.header("agent"),
            ),
        ]
        assert all(400 <= a.status_code < 500 for a in answers), [a.status_code for a in answers]
        for answer in answers:
            assert marker not in answer.text and marker.replace("-", "_") not in answer.text
            assert "7f3a7f3a" not in answer.text
