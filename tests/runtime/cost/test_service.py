"""The cost engine as deployed: three `agentops serve cost-engine` processes (as three
replicas) on one real redis-server, driven over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from redis import Redis

from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent
from runtime.cost import keys
from tests.managed import ManagedProcess, http_ok
from tests.servers import RedisServer, free_port, redis_server

TOKEN = "cost-engine-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AGENTOPS = str(Path(sys.executable).parent / "agentops")


@dataclass
class Engine:
    port: int
    handle: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(
    redis: RedisServer, directory: Path, cost: dict[str, Any], port: int | None = None
) -> Engine:
    """`agentops serve cost-engine` (the operator CLI's entry), ready when /ready says 200."""
    token_file = directory / "token"
    token_file.write_text(TOKEN + "\n")
    port = port or free_port()
    env = {
        **os.environ,
        "AGENTOPS_HOST": "127.0.0.1",
        "AGENTOPS_PORT": str(port),
        "AGENTOPS_REDIS_URL": redis.url,
        "AGENTOPS_API_TOKEN_FILE": str(token_file),
        "AGENTOPS_COST_CONFIG": json.dumps(cost),
        "AGENTOPS_LOG_LEVEL": "warning",
        # Replicas re-read the shared spend gauges this often (15 s in production).
        "AGENTOPS_METRICS_REFRESH_SECONDS": "0.2",
    }
    handle = ManagedProcess(
        "cost engine",
        [AGENTOPS, "serve", "cost-engine"],
        directory / f"engine-{port}.log",
        env=env,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/ready"),
        poll_interval=0.1,
        stop_grace=20,
    )
    try:
        handle.start()
    except BaseException:
        handle.stop()
        raise
    return Engine(port, handle)


def stop(engine: Engine) -> None:
    engine.handle.stop()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def three(
    redis: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[list[Engine]]:
    cost = request.param
    engines: list[Engine] = []
    try:
        for _ in range(3):
            engines.append(start(redis, tmp_path, cost))
        yield engines
    finally:
        for e in engines:
            stop(e)


LIMITED = {
    "budget": {"dailyUsd": "1000", "monthlyUsd": "10000"},
    "rateLimits": {
        "overall": {"requests": 40},
        "teams": {"research": {"tokens": 25_000, "costUsd": "0.5"}},
    },
}


def reservation(i: int, team: str, tokens: int = 1000) -> dict[str, Any]:
    return {
        "task_id": f"task-{team}-{i}",
        "attempt": 1,
        "team": team,
        "agent_type": "coder",
        "model": "gpt-4o",
        "max_input_tokens": tokens,
        "max_output_tokens": 0,
    }


@pytest.mark.parametrize("three", [LIMITED], indirect=True)
def test_limits_hold_for_the_platform_across_three_engines(three: list[Engine]) -> None:
    async def burst() -> tuple[list[httpx.Response], float]:
        started = time.monotonic()
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            # research: 1,000 tokens (0.0025 USD) a call → its token limit admits 25.
            calls = [
                client.post(
                    f"{three[i % 3].url}/api/v1/reservations", json=reservation(i, "research")
                )
                for i in range(90)
            ]
            # support has no team limit: only the platform's 40 requests bind.
            calls += [
                client.post(
                    f"{three[i % 3].url}/api/v1/reservations", json=reservation(i, "support")
                )
                for i in range(90)
            ]
            return list(await asyncio.gather(*calls)), time.monotonic() - started

    answers, elapsed = asyncio.run(burst())
    codes = [a.status_code for a in answers]
    assert set(codes) <= {201, 429}
    research = [a for a in answers[:90] if a.status_code == 201]
    assert len(research) <= 25
    assert codes.count(201) == 40  # the platform's request limit, across all three processes
    for a in answers:
        if a.status_code == 429:
            body = a.json()
            assert body["dimension"] in ("requests", "tokens")
            retry = int(a.headers["Retry-After"])
            # The first admitted call leaves the hour 3600 s after the burst began.
            assert 3600 - elapsed - 1 <= retry <= 3600


BUDGETED = {
    "budget": {"dailyUsd": "1", "monthlyUsd": "100"},
    "teamBudgets": {"research": {"dailyUsd": "0.5", "monthlyUsd": "50"}},
}


def usage(i: int) -> dict[str, Any]:
    # gpt-4o at 2.50 / 10.00 USD per million: 10,000 input tokens cost 0.025 USD.
    return {
        "task_id": f"task-{i}",
        "attempt": 1,
        "model": "gpt-4o",
        "agent_type": "coder",
        "team": "research",
        "input_tokens": 10_000,
        "output_tokens": 0,
    }


def alert_counts(engines: list[Engine]) -> dict[tuple[str, str, str], float]:
    counts: dict[tuple[str, str, str], float] = {}
    for e in engines:
        for line in httpx.get(f"{e.url}/metrics").text.splitlines():
            if line.startswith("agentops_budget_alerts_total{"):
                labels = dict(
                    part.split("=", 1)
                    for part in line[line.index("{") + 1 : line.index("}")].split(",")
                )
                key = tuple(labels[k].strip('"') for k in ("scope", "window", "threshold"))
                counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.mark.parametrize("three", [BUDGETED], indirect=True)
def test_alerts_fire_once_with_three_engines_and_a_restart(
    three: list[Engine], redis: RedisServer, tmp_path: Path
) -> None:
    async def record(first: int, count: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"{three[i % 3].url}/api/v1/usage", json=usage(i))
                        for i in range(first, first + count)
                    )
                )
            )

    # 30 × 0.025 = 0.75 USD: platform day 75 % (50 fires), research day 150 % (all fire).
    answers = asyncio.run(record(0, 30))
    assert all(a.status_code == 200 and a.json()["recorded"] for a in answers)
    expected = {
        ("platform", "day", "0.5"),
        ("team:research", "day", "0.5"),
        ("team:research", "day", "0.8"),
        ("team:research", "day", "0.9"),
        ("team:research", "day", "1.0"),
    }
    fired = [
        (a["scope"], a["window"], str(a["threshold"])) for r in answers for a in r.json()["alerts"]
    ]
    assert sorted(fired) == sorted(expected)
    assert alert_counts(three) == {k: 1.0 for k in expected}

    # Restart one engine; replays and more usage from all three fire only what is new.
    stop(three[0])
    three[0] = start(redis, tmp_path, BUDGETED)
    answers = asyncio.run(record(0, 40))  # 30 replays + 10 new: 1.0 USD, platform at 100 %
    assert sum(a.json()["recorded"] for a in answers) == 10
    fired = [
        (a["scope"], a["window"], str(a["threshold"])) for r in answers for a in r.json()["alerts"]
    ]
    assert sorted(fired) == [
        ("platform", "day", "0.8"),
        ("platform", "day", "0.9"),
        ("platform", "day", "1.0"),
    ]
    client = Redis.from_url(redis.url)
    events = [json.loads(f[b"alert"]) for _, f in client.xrange(keys.EVENTS)]
    client.close()
    assert len(events) == 8
    assert len({(e["scope"], e["window"], e["threshold"]) for e in events}) == 8
    # Each alert is one audit event in the JSON log of the replica that fired it.
    logged = [
        line
        for log in tmp_path.glob("engine-*.log")
        for line in map(json.loads, log.read_text().splitlines())
        if line.get(AUDIT_FIELD) == AuditEvent.BUDGET_ALERT
    ]
    assert sorted((e["scope"], e["window"], str(e["threshold"])) for e in logged) == sorted(
        (e["scope"], e["window"], str(e["threshold"])) for e in events
    )
    # Every replica's spend gauges converge on the ledger (re-read in the background).
    wanted = (
        'agentops_spend_usd{scope="platform",window="day"} 1.0',
        'agentops_budget_usd{scope="team:research",window="day"} 0.5',
    )
    deadline = time.monotonic() + 20
    pending = list(three)
    while pending and time.monotonic() < deadline:
        pending = [
            e for e in pending if not all(w in httpx.get(f"{e.url}/metrics").text for w in wanted)
        ]
        time.sleep(0.1)
    assert not pending


@pytest.mark.parametrize("three", [BUDGETED], indirect=True)
def test_api_contract(three: list[Engine]) -> None:
    url = f"{three[0].url}/api/v1"
    assert httpx.post(f"{url}/usage", json=usage(1)).status_code == 401
    bad = {**usage(1), "model": "gpt-9"}
    answer = httpx.post(f"{url}/usage", json=bad, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "model"
    assert "gpt-9" not in answer.text  # named, never echoed
    assert "gpt-5" in answer.json()["errors"][0]["error"]  # what is allowed
    long_id = {**usage(1), "task_id": "x" * 200}
    answer = httpx.post(f"{url}/usage", json=long_id, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "task_id"

    odd = {**usage(7), "input_tokens": 12_345, "output_tokens": 6_789, "model": "gpt-5"}
    answer = httpx.post(f"{url}/usage", json=odd, headers=AUTH).json()
    expected = calc_price(
        Usage(input_tokens=12_345, output_tokens=6_789), "gpt-5", provider_id="openai"
    ).total_price
    assert Decimal(answer["cost_usd"]) == expected
    assert answer["idempotency_key"] == "task-7:1"
    assert not httpx.post(f"{url}/usage", json=odd, headers=AUTH).json()["recorded"]

    # Reserve, then the record of the same task attempt settles it.
    held = httpx.post(f"{url}/reservations", json=reservation(1, "research"), headers=AUTH)
    assert held.status_code == 201 and held.json()["reservation_id"] == "task-research-1:1"
    done = httpx.post(
        f"{url}/usage",
        json={**usage(1), "task_id": "task-research-1", "input_tokens": 500},
        headers=AUTH,
    ).json()
    assert done["settled_reservation"]
    # Past 90 % of the research team's day (0.5 USD): gpt-5 is downgraded to gpt-5-mini.
    for i in range(100, 115):  # 0.083 (gpt-5) + 0.00125 + 15 × 0.025 = 0.459 USD
        httpx.post(f"{url}/usage", json=usage(i), headers=AUTH)
    down = httpx.post(
        f"{url}/reservations", json={**reservation(2, "research"), "model": "gpt-5"}, headers=AUTH
    ).json()
    assert (down["requested_model"], down["model"], down["downgraded"]) == (
        "gpt-5",
        "gpt-5-mini",
        True,
    )
    assert "team:research" in down["reason"]
    over = httpx.post(
        f"{url}/reservations", json=reservation(3, "research", tokens=100_000), headers=AUTH
    )
    assert over.status_code == 402 and over.json()["scope"] == "team:research"
    assert 1 <= int(over.headers["Retry-After"]) <= 86_400

    rec = httpx.post(
        f"{url}/recommendations",
        json={"task_type": "general", "budget_usd": "0.0000001"},
        headers=AUTH,
    )
    assert rec.status_code == 422 and rec.json()["cheapest"]
    rec = httpx.post(f"{url}/recommendations", json={"task_type": "code_generation"}, headers=AUTH)
    assert rec.status_code == 200 and rec.json()["alternatives"]
    report = httpx.get(f"{url}/report", params={"days": 7}, headers=AUTH).json()
    assert len(report["series"]) == 7
    today = Decimal(report["series"][-1]["spend_usd"])
    assert Decimal(report["month_to_date_usd"]) >= today > 0
    assert set(report["by_model"]) == {"gpt-4o", "gpt-5"}


@pytest.fixture
def one(redis: RedisServer, tmp_path: Path) -> Iterator[Engine]:
    engine = start(redis, tmp_path, BUDGETED)
    try:
        yield engine
    finally:
        stop(engine)


def test_usage_at_must_lie_in_the_window_around_now(one: Engine, redis: RedisServer) -> None:
    url = f"{one.url}/api/v1/usage"
    now = dt.datetime.now(dt.UTC)

    def at(i: int, value: str) -> httpx.Response:
        return httpx.post(url, json={**usage(i), "at": value}, headers=AUTH)

    outside = {
        "back-dated": "2001-02-03T04:05:06+00:00",
        "two hours ago": (now - dt.timedelta(hours=2)).isoformat(),
        "ten minutes ahead": (now + dt.timedelta(minutes=10)).isoformat(),
        "year 1": "0001-01-01T00:00:00+01:00",
        "year 9999": "9999-12-31T23:59:59-01:00",
    }
    for i, (case, value) in enumerate(outside.items()):
        answer = at(i, value)
        assert answer.status_code == 422, (case, answer.status_code, answer.text)
        [error] = answer.json()["errors"]
        assert error["field"] == "at"
        assert "3600 s before and 300 s after" in error["error"]
        assert value not in answer.text  # never echoed
    assert all(y not in answer.text for y in ("2001-02-03", "0001-01-01", "9999-12-31"))
    # Nothing was charged anywhere, neither today nor on the old day.
    client = Redis.from_url(redis.url)
    assert not client.keys(f"{keys.PREFIX}:usage:*")
    assert not client.keys(f"{keys.PREFIX}:seen:*")
    client.close()
    # Inside the window: recorded, in the hour it names.
    inside = at(10, (now - dt.timedelta(minutes=50)).isoformat())
    assert inside.status_code == 200 and inside.json()["recorded"]


def test_no_4xx_body_echoes_a_submitted_value(one: Engine) -> None:
    api = f"{one.url}/api/v1"
    canary = "zz-canary-4711"
    cases = [
        ("post", "/usage", {**usage(1), "model": canary}),
        ("post", "/usage", {**usage(1), "team": canary.upper()}),
        ("post", "/usage", {**usage(1), "task_id": canary + " !"}),
        ("post", "/usage", {**usage(1), "at": canary}),
        ("post", "/usage", {**usage(1), "input_tokens": canary}),
        ("post", "/reservations", {**reservation(1, "research"), "model": canary}),
        ("post", "/reservations", {**reservation(1, "research"), "agent_type": canary + "/"}),
        ("post", "/recommendations", {"task_type": canary, "budget_usd": canary}),
        ("delete", f"/reservations/{canary}!/1", None),
        ("get", f"/report?days={canary}", None),
    ]
    for method, path, body in cases:
        answer = httpx.request(method, f"{api}{path}", json=body, headers=AUTH)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert canary not in answer.text.lower(), (path, answer.text)


def test_limits_endpoint_shows_the_hour_settled_to_actual_usage(
    redis: RedisServer, tmp_path: Path
) -> None:
    engine = start(redis, tmp_path, LIMITED)
    api = f"{engine.url}/api/v1"
    try:
        held = httpx.post(f"{api}/reservations", json=reservation(1, "research"), headers=AUTH)
        assert held.status_code == 201
        limits = {row["scope"]: row for row in httpx.get(f"{api}/limits", headers=AUTH).json()}
        research = limits["team:research"]
        assert (research["tokens"], research["open_holds"]) == (1000, 1)
        assert Decimal(research["cost_usd"]) == Decimal("0.0025")
        assert research["limit_tokens"] == 25_000
        assert Decimal(research["limit_cost_usd"]) == Decimal("0.5")
        assert limits["platform"]["limit_requests"] == 40
        # The record settles the hold to the 400 tokens really used (0.001 USD).
        body = {**usage(1), "task_id": "task-research-1", "input_tokens": 400}
        assert httpx.post(f"{api}/usage", json=body, headers=AUTH).json()["settled_reservation"]
        limits = {row["scope"]: row for row in httpx.get(f"{api}/limits", headers=AUTH).json()}
        for scope in ("platform", "team:research"):
            row = limits[scope]
            assert (row["requests"], row["tokens"], row["open_holds"]) == (1, 400, 0)
            assert Decimal(row["cost_usd"]) == Decimal("0.001")
    finally:
        stop(engine)
