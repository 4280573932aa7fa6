"""MCP tool servers from config: only the pools a server allows reach it (flows, and so the
NetworkPolicies and the mesh's AuthorizationPolicies), Prometheus scrapes it, the allowed pools'
workers are told where it is, and prod refuses one without a pinned image."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from contracts.settings.llm import LLMSettings
from contracts.settings.worker import TOOL_SERVERS_ENV
from infra.platform.flows import flows
from infra.platform.mesh_policies import mesh_security
from infra.platform.network_policies import network_policies
from infra.platform.workloads import runtime_workloads
from tests.stacks import stack_values

CODE, SCANNER = "code-generator", "security-scanner"
DIGEST = "sha256:" + "ab" * 32


def tool_server(name: str, pools: list[str], digest: str | None = DIGEST) -> dict[str, Any]:
    image: dict[str, Any] = {"repository": "agent-worker", "tag": "1.0.0"}
    if digest:
        image["digest"] = digest
    return {
        "name": name,
        "image": image,
        "resources": {
            "cpuRequest": "100m",
            "cpuLimit": "200m",
            "memoryRequest": "64Mi",
            "memoryLimit": "128Mi",
        },
        "tools": ["search"],
        "allowedPools": pools,
    }


def with_servers(stack: str, *servers: dict[str, Any]) -> Any:
    values = stack_values(stack)
    values["agents"]["toolServers"] = list(servers)
    return load_from_mapping(values)


TWO = (tool_server("search", [CODE]), tool_server("files", [CODE, SCANNER]))


def test_only_the_allowed_pools_reach_each_server_and_prometheus_scrapes_it() -> None:
    cfg = with_servers("staging", *TWO)
    into = {
        server: {f.source.key for f in flows(cfg) if f.destination.key == f"mcp-{server}"}
        for server in ("search", "files")
    }
    assert into == {
        "search": {f"agent-{CODE}", "prometheus"},
        "files": {f"agent-{CODE}", f"agent-{SCANNER}", "prometheus"},
    }
    # The NetworkPolicies admit exactly those callers into the server's pods.
    admitted = {
        json.dumps(rule["from"], sort_keys=True)
        for p in network_policies(cfg)
        if p.spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "mcp-search"
        for rule in p.spec.get("ingress", [])
    }
    assert len(admitted) == 2
    assert not any(SCANNER in a for a in admitted)
    # The mesh authorizes the same identities on the MCP path only.
    principals = {
        tuple(rule["from"][0]["source"]["principals"]): rule["to"][0]["operation"]
        for o in mesh_security(cfg)
        if o.kind == "AuthorizationPolicy"
        and o.spec.get("selector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == "mcp-search"
        for rule in o.spec["rules"]
    }
    assert set(principals) == {
        (f"cluster.local/ns/agentops-agents/sa/agent-{CODE}",),
        ("cluster.local/ns/monitoring/sa/kube-prometheus-stack-prometheus",),
    }
    assert principals[(f"cluster.local/ns/agentops-agents/sa/agent-{CODE}",)]["paths"] == [
        "/mcp",
        "/mcp/*",
    ]


def test_a_config_without_tool_servers_has_no_tool_flows() -> None:
    names = [f.name for f in flows(with_servers("staging"))]
    assert not [n for n in names if "mcp-" in n]


def test_the_allowed_pools_workers_get_the_servers_urls_and_read_them() -> None:
    cfg = with_servers("staging", *TWO)
    env = {w.name: w.env for w in runtime_workloads(cfg)}
    code = json.loads(env[f"agent-{CODE}"][TOOL_SERVERS_ENV])
    assert code == {
        "files": "http://mcp-files.agentops-agents.svc.cluster.local:8080/mcp",
        "search": "http://mcp-search.agentops-agents.svc.cluster.local:8080/mcp",
    }
    assert json.loads(env[f"agent-{SCANNER}"][TOOL_SERVERS_ENV]) == {"files": code["files"]}
    # The name the program sets is the one the LLM handler reads.
    settings = LLMSettings(
        _env_file=None,  # type: ignore[call-arg]
        base_url="http://127.0.0.1:1/v1",
        **{"tool_servers": code},
    )
    assert set(settings.tool_servers) == {"files", "search"}
    field = LLMSettings.model_config["env_prefix"] + "tool_servers"
    assert field.upper() == TOOL_SERVERS_ENV


def test_a_server_allowing_an_unknown_pool_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"toolServers\[0\]\.allowedPools\[0\].*nope"):
        with_servers("staging", tool_server("search", ["nope"]))


def test_prod_refuses_a_tool_server_without_a_pinned_image() -> None:
    with_servers("prod", tool_server("search", [CODE]))  # pinned: accepted
    unpinned = r"toolServers\[0\]\.image\.digest = None: prod runs images pinned"
    with pytest.raises(ConfigError, match=unpinned):
        with_servers("prod", tool_server("search", [CODE], digest=None))
