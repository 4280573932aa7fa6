"""Property-based run over the manager's OpenAPI: generated requests, valid and invalid, never
get a 5xx. Runs against the real service process on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running
from tests.servers import redis_server


@pytest.fixture(scope="module")
def live_manager(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceProcess, Tokens]]:
    root = tmp_path_factory.mktemp("fuzz")
    tokens = Tokens.create(root / "tokens")
    with redis_server(root / "redis") as redis:
        env = manager_env(redis.url, tokens, ["coder", "scanner"], max_queued_per_type=50)
        mgr = ServiceProcess("manager", env, root / "manager.log")
        with running(mgr):
            yield mgr, tokens


def audience_of(path: str) -> str:
    """Each endpoint with the token of the audience it serves, so generated bodies get past
    authentication and reach validation and the handlers."""
    if path.startswith("/api/v1/agents"):
        return "agent"
    if path.startswith("/api/v1/alerts"):
        return "webhook"
    return "api"


def test_no_request_gets_a_server_error(live_manager: tuple[ServiceProcess, Tokens]) -> None:
    mgr, tokens = live_manager
    schema = schemathesis.openapi.from_url(f"{mgr.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, "every endpoint is in the OpenAPI document"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=mgr.url, headers=tokens.header(audience_of(case.path)))
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code < 300:
                case.validate_response(response, checks=[response_schema_conformance])

        no_server_error()
