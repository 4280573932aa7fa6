"""The cost engine's hot routes (reservations, usage) take the fast lane: every request gets
the answer FastAPI's own machinery gives the same route function — status, body, Retry-After —
for valid calls, replays, refusals, bad bodies, wrong content types and bad tokens alike.

Two engines on one real redis-server, each on its own database, get the same requests in
the same order: one as the service serves them (the lean routes), one with the routes
declared the plain FastAPI way (the router dependency checks the token, FastAPI parses the
body into the model and solves `Engine`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from contracts import endpoints
from contracts.settings.cost import CostEngineSettings
from runtime.cost.app import build_app
from runtime.cost.deps import Caller
from runtime.cost.routes import reservations
from runtime.cost.routes import usage as usage_routes
from tests.runtime.lean_parity import JSON_VALUES, NOT_OBJECTS, same_answer
from tests.servers import RedisServer, redis_server

TOKEN = "lean-routes-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
COST = {
    "budget": {"dailyUsd": "100", "monthlyUsd": "1000"},
    "rateLimits": {"overall": {"requests": 1000}},
}
RESERVATIONS = f"{endpoints.COST_API}/reservations"
USAGE = f"{endpoints.COST_API}/usage"
# Moments differ between the two engines' answers; nothing else may.
_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def _settings(redis: RedisServer, db: int, tmp: Path) -> CostEngineSettings:
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    return CostEngineSettings(
        redis_url=f"redis://127.0.0.1:{redis.port}/{db}",
        api_token_file=token,
        cost_config=json.dumps(COST),
    )


def _declared(settings: CostEngineSettings) -> FastAPI:
    """The same service with the hot routes declared the plain FastAPI way."""
    app = build_app(settings)
    hot = (reservations.router, usage_routes.router)
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "original_router", 0) not in hot
    ]
    app.state.lean_routes = []
    plain = APIRouter(prefix=endpoints.COST_API, dependencies=[Caller])
    plain.add_api_route(**reservations.RESERVE_ROUTE)
    plain.add_api_route(**usage_routes.USAGE_ROUTE)
    app.include_router(plain)
    return app


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    tmp = tmp_path_factory.mktemp("lean")
    with redis_server(tmp / "redis") as redis:
        lean_app = build_app(_settings(redis, 0, tmp))
        assert {r.path for r in lean_app.state.lean_routes} == {RESERVATIONS, USAGE}
        with (
            TestClient(lean_app) as lean,
            TestClient(_declared(_settings(redis, 1, tmp))) as declared,
        ):
            yield lean, declared


def _same(engines: tuple[TestClient, TestClient], path: str, body: bytes, **headers: str) -> int:
    return same_answer(engines, path, body, {**AUTH, **headers}, _MOMENT)


_BASE = {
    RESERVATIONS: {"max_input_tokens": 2000, "max_output_tokens": 500},
    USAGE: {"input_tokens": 200, "output_tokens": 50},
}


def _body(path: str, task: str, **fields: Any) -> bytes:
    """A valid body of the route at `path` for `task`, with `fields` changed."""
    common = {"task_id": task, "attempt": 1, "team": "research", "agent_type": "coder"}
    return json.dumps({**common, "model": "gpt-4o", **_BASE[path], **fields}).encode()


def _reserve(task: str, **fields: Any) -> bytes:
    return _body(RESERVATIONS, task, **fields)


def _usage(task: str, **fields: Any) -> bytes:
    return _body(USAGE, task, **fields)


def test_calls_replays_and_refusals_get_fastapis_answers(
    engines: tuple[TestClient, TestClient],
) -> None:
    assert _same(engines, RESERVATIONS, _reserve("t-1")) == 201
    assert _same(engines, RESERVATIONS, _reserve("t-1")) == 201  # replayed: created false
    assert _same(engines, USAGE, _usage("t-1")) == 200
    assert _same(engines, USAGE, _usage("t-1")) == 200  # replayed: recorded false
    assert _same(engines, RESERVATIONS, _reserve("t-2", model="no-such-model")) == 422
    assert _same(engines, RESERVATIONS, _reserve("t-3", max_output_tokens=10**9)) in (402, 422)
    assert _same(engines, USAGE, _usage("t-4", at="2001-01-01T00:00:00Z")) == 422
    assert _same(engines, USAGE, _usage("t-5", call=2)) == 200


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        *((body, {}) for body in NOT_OBJECTS),
        (b'{"task_id": "\\ud800"}', {}),
        (_reserve("t-6"), {"Content-Type": "text/plain"}),
        (_reserve("t-7"), {"Content-Type": "application/merge-patch+json"}),
        (_reserve("t-8", attempt=0), {}),
        (_reserve("t-9", attempt="one"), {}),
        (_reserve("t-10", extra=1), {}),
        (_reserve("bad id with spaces"), {}),
        (_reserve("t-11"), {"Authorization": "Bearer wrong-token-0123456789"}),
        (_reserve("t-12"), {"Authorization": ""}),
    ],
)
@pytest.mark.parametrize("path", [RESERVATIONS, USAGE])
def test_bad_requests_get_fastapis_answers(
    engines: tuple[TestClient, TestClient], path: str, body: bytes, headers: dict[str, str]
) -> None:
    assert _same(engines, path, body, **headers) < 500  # the same answer, never a server error


_FIELDS = st.sampled_from(
    ["task_id", "attempt", "call", "team", "model", "max_input_tokens", "max_output_tokens",
     "agent_type", "input_tokens", "output_tokens", "at", "other"]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from([RESERVATIONS, USAGE]),
    changes=st.dictionaries(_FIELDS, JSON_VALUES, max_size=3),
    n=st.integers(min_value=0, max_value=10**6),
)
def test_generated_bodies_get_fastapis_answers(
    engines: tuple[TestClient, TestClient], path: str, changes: dict[str, Any], n: int
) -> None:
    _same(engines, path, _body(path, f"g-{n}", **changes))
