"""A pool's handler and provider: what a stack may configure, refused with the key named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contracts.config import ConfigError, load_from_mapping
from contracts.config.agents import DEFAULT_HANDLER, LLM_HANDLER, LOAD_TEST_LABEL
from tests.stacks import STACKS, stack_values

OPENAI = {
    "baseUrl": "https://api.openai.com/v1",
    "models": ["gpt-5", "gpt-5-mini"],
    "key": {"path": "pools/agent-code-generator/openai"},
}


def _pool(stack: str, i: int = 0, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(stack_values(stack))
    pool = raw["agents"]["pools"][i]
    for key, value in changes.items():
        if value is None:
            pool.pop(key, None)
        else:
            pool[key] = value
    return raw


def _problem(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load_from_mapping(raw)
    (problem,) = info.value.problems
    return problem


def test_committed_stacks_choose_their_handlers() -> None:
    handlers = {
        stack: {p.name: p.handler for p in load_from_mapping(stack_values(stack)).agents.pools}
        for stack in STACKS
    }
    assert handlers == {
        "staging": {"code-generator": LLM_HANDLER, "security-scanner": DEFAULT_HANDLER},
        "prod": {"code-generator": LLM_HANDLER, "security-scanner": LLM_HANDLER},
        "local": {"code-generator": DEFAULT_HANDLER},
    }


def test_prod_refuses_a_work_pool_unless_it_says_it_is_a_load_test() -> None:
    work = _pool("prod", 1, handler="work", provider=None, model=None)
    problem = _problem(work)
    assert problem.startswith("agentops:agents.pools[1].loadTest = False: prod runs real agents")
    assert "loadTest: true" in problem
    # The import path of the work handler is the same handler.
    assert _problem(_pool("prod", 1, handler=DEFAULT_HANDLER, provider=None, model=None)) == problem
    load_test = _pool("prod", 1, handler="work", provider=None, model=None, loadTest=True)
    pool = load_from_mapping(load_test).agents.pools[1]
    assert (pool.handler, pool.load_test) == (DEFAULT_HANDLER, True)
    # Its pods carry the label the policy pack's k8s-prod-real-agents looks for.
    from infra.platform.workloads import runtime_workloads

    labels = {w.name: w.labels for w in runtime_workloads(load_from_mapping(load_test))}
    assert labels["agent-security-scanner"][LOAD_TEST_LABEL] == "true"
    assert LOAD_TEST_LABEL not in labels["agent-code-generator"]
    # Staging and local run demo pools without the flag.
    for stack in ("staging", "local"):
        assert load_from_mapping(stack_values(stack))


def test_load_test_is_a_work_pool_field() -> None:
    problem = _problem(_pool("prod", 0, loadTest=True))
    assert problem.startswith("agentops:agents.pools[0].loadTest = True: only a pool on the work")


def test_llm_handler_needs_a_provider_and_a_provider_needs_the_llm_handler() -> None:
    assert _problem(_pool("staging", 0, provider=None)).startswith(
        "agentops:agents.pools[0].provider = None: the llm handler needs a provider"
    )
    assert _problem(_pool("staging", 1, provider=OPENAI)).startswith(
        "agentops:agents.pools[1].provider = 'https://api.openai.com/v1': only the llm handler"
    )
    assert _problem(_pool("staging", 0, model=None)).startswith(
        "agentops:agents.pools[0].model = None: an llm pool names its model"
    )
    assert _problem(_pool("staging", 0, model="gpt-4o")).startswith(
        "agentops:agents.pools[0].model = 'gpt-4o': must be one of provider.models ['gpt-5-mini']"
    )


def test_handler_is_a_known_word_or_an_import_path() -> None:
    problem = _problem(_pool("local", 0, handler="gpt"))
    assert problem.startswith("agentops:agents.pools[0].handler")
    assert "work|llm" in problem
    custom = load_from_mapping(_pool("local", 0, handler="mypkg.handlers:build"))
    assert custom.agents.pools[0].handler == "mypkg.handlers:build"


@pytest.mark.parametrize(
    ("url", "stack", "expected"),
    [
        ("http://api.openai.com/v1", "staging", "plain http to another machine: use https"),
        ("http://127.0.0.1:8080/v1", "staging", "AWS stacks call providers over https"),
        ("https://api.openai.com/v1?key=x", "staging", "no query, fragment or credentials"),
        ("https://api.openai.com:8443/v1", "prod", "egress to a provider is port 443 only"),
    ],
)
def test_provider_url_rules(url: str, stack: str, expected: str) -> None:
    provider = {**OPENAI, "baseUrl": url}
    problem = _problem(_pool(stack, 0, provider=provider, model="gpt-5"))
    assert problem.startswith("agentops:agents.pools[0].provider.baseUrl"), problem
    assert expected in problem


def test_a_local_stand_in_over_http_on_127_0_0_1_is_allowed_locally() -> None:
    provider = {**OPENAI, "baseUrl": "http://127.0.0.1:8080/v1"}
    cfg = load_from_mapping(_pool("local", 0, handler="llm", provider=provider, model="gpt-5"))
    assert cfg.agents.pools[0].provider is not None
    assert cfg.agents.pools[0].provider.host == "127.0.0.1"


def test_provider_models_are_priced_and_cover_the_downgrades() -> None:
    unpriced = {**OPENAI, "models": ["gpt-5", "gpt-5-mini", "gpt-7"]}
    problem = _problem(_pool("prod", 0, provider=unpriced))
    assert problem.startswith("agentops:agents.pools[0].provider.models[2] = 'gpt-7': must be")
    assert "the cost engine prices" in problem
    # The cost engine downgrades gpt-5 to gpt-5-mini past downgradeAt: the provider must serve it.
    short = {**OPENAI, "models": ["gpt-5"]}
    problem = _problem(_pool("prod", 0, provider=short))
    assert problem.startswith("agentops:agents.pools[0].provider.models = ['gpt-5']")
    assert "may downgrade gpt-5 → gpt-5-mini: list gpt-5-mini too" in problem
    assert _problem(_pool("prod", 0, provider={**OPENAI, "models": ["gpt-5", "gpt-5"]}))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pools/agent-security-scanner/openai", "lies under pools/agent-security-scanner/"),
        ("platform/runtime/openai", "lies under platform/"),
        ("pools/agent-code-generator/../x", "no '.' or '..' segments"),
    ],
)
def test_a_provider_key_is_read_by_its_pool_alone(path: str, expected: str) -> None:
    provider = {**OPENAI, "key": {"path": path}}
    problem = _problem(_pool("prod", 0, provider=provider))
    assert problem.startswith("agentops:agents.pools[0].provider.key.path"), problem
    assert expected in problem


def test_two_pools_never_share_a_key() -> None:
    raw = copy.deepcopy(stack_values("prod"))
    shared = "providers/openai"
    for pool in raw["agents"]["pools"]:
        pool["provider"]["key"] = {"path": shared}
    problem = _problem(raw)
    assert problem == (
        "agentops:agents.pools[1].provider.key.path = 'providers/openai': pool code-generator "
        "reads it: one pool per key"
    )
