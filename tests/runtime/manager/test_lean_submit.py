"""`POST /api/v1/tasks` takes the fast lane and answers every request as FastAPI's own
machinery answers the same route function: status, body (task ids aside), Location and
Retry-After, for submits, duplicates, refusals, bad bodies and bad tokens alike.

Two managers on one real redis-server, each on its own database, get the same requests in
the same order: one as the service serves them, one with the submit declared the plain
FastAPI way (the route's `Submitter` dependency, FastAPI's body parsing into the model)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from contracts import endpoints
from contracts.settings.manager import ManagerSettings
from runtime.manager import api
from runtime.manager.app import create_manager_app
from runtime.manager.routes.tasks import SUBMIT_ROUTE
from tests.runtime.lean_parity import JSON_VALUES, NOT_OBJECTS, same_answer
from tests.runtime.processes import Tokens, manager_env
from tests.servers import RedisServer, redis_server

_TASK_ID = re.compile(r"[0-9a-f]{32}")


def _settings(redis: RedisServer, db: int, tokens: Tokens) -> ManagerSettings:
    env = manager_env(f"redis://127.0.0.1:{redis.port}/{db}", tokens, ["coder", "scanner"])
    env["AGENTOPS_REQUEST_ROUTES"] = json.dumps({"review": "coder"})
    env["AGENTOPS_MAX_QUEUED_PER_TYPE"] = "5"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return ManagerSettings()


def _declared(settings: ManagerSettings) -> FastAPI:
    """The same manager with its submit declared the plain FastAPI way."""
    app = create_manager_app(settings)
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "original_router", None) is not api.router
    ]
    app.state.lean_routes = []
    plain = APIRouter()
    plain.add_api_route(**SUBMIT_ROUTE)
    app.include_router(plain)
    return app


@pytest.fixture(scope="module")
def managers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    tmp = tmp_path_factory.mktemp("lean-submit")
    tokens = Tokens.create(tmp / "tokens")
    with redis_server(tmp / "redis") as redis:
        served = create_manager_app(_settings(redis, 0, tokens))
        assert [r.path for r in served.state.lean_routes] == [endpoints.TASKS_API]
        with (
            TestClient(served) as lean,
            TestClient(_declared(_settings(redis, 1, tokens))) as declared,
        ):
            yield lean, declared, tokens.api


def _same(managers: tuple[Any, Any, str], body: bytes, **headers: str) -> int:
    lean, declared, token = managers
    sent = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    return same_answer((lean, declared), endpoints.TASKS_API, body, sent, _TASK_ID)


def _task(**fields: Any) -> bytes:
    return json.dumps({"agent_type": "coder", "payload": {"prompt": "hi"}, **fields}).encode()


def test_submits_duplicates_and_refusals_get_fastapis_answers(
    managers: tuple[Any, Any, str],
) -> None:
    assert _same(managers, _task()) == 202
    assert _same(managers, _task(idempotency_key="k-1")) == 202
    assert _same(managers, _task(idempotency_key="k-1")) == 202  # the same task, duplicate
    assert _same(managers, _task(agent_type=None, request_type="review")) == 202
    assert _same(managers, _task(agent_type="unknown")) == 422
    assert _same(managers, _task(agent_type=None)) == 422
    assert _same(managers, _task(agent_type=None, request_type="nowhere")) == 422
    for _ in range(5):  # the scanner queue holds 5: then 429 with Retry-After
        _same(managers, _task(agent_type="scanner"))
    assert _same(managers, _task(agent_type="scanner")) == 429


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        *((body, {}) for body in NOT_OBJECTS),
        (b'{"agent_type": "coder", "payload": "\\ud800"}', {}),
        (_task(), {"Content-Type": "text/plain"}),
        (_task(), {"Content-Type": "application/problem+json"}),
        (_task(priority="urgent"), {}),
        (_task(complexity=2), {}),
        (_task(team="a b"), {}),
        (_task(extra=1), {}),
        (_task(), {"Authorization": "Bearer wrong-token-0123456789"}),
        (_task(), {"Authorization": ""}),
    ],
)
def test_bad_requests_get_fastapis_answers(
    managers: tuple[Any, Any, str], body: bytes, headers: dict[str, str]
) -> None:
    assert _same(managers, body, **headers) < 500  # the same answer, never a server error


_FIELDS = st.sampled_from(
    ["agent_type", "request_type", "payload", "priority", "idempotency_key", "complexity",
     "team", "other"]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(_FIELDS, JSON_VALUES, max_size=3))
def test_generated_bodies_get_fastapis_answers(
    managers: tuple[Any, Any, str], changes: dict[str, Any]
) -> None:
    _same(managers, json.dumps({**json.loads(_task()), **changes}).encode())
