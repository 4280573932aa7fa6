"""Prometheus scrapes each MCP tool server where its config says: a ServiceMonitor per server,
planned by the real runner, selects exactly that server's Service on its named port and
`metricsPath`; the scrape flow is allowed by netpol-analyzer and the mesh's decisions; and a real
Prometheus, given the scrape config derived from the rendered ServiceMonitors (checked by
promtool), scrapes real MCP server processes (the SDK's) on the configured port and path.

A server without metrics (`metricsPath: null`) gets no monitor and no scrape flow; prod with
monitoring on refuses it, naming the field."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from contracts.config import load_from_mapping
from infra.plan.connectivity import write_report
from infra.plan.runner import EXIT_CONFIG
from infra.platform.flows import flows
from infra.platform.metric_producers import tool_server_monitors
from tests.flows.test_tool_servers import CODE, tool_server
from tests.infra.service_monitors import scrape_configs, selected_services
from tests.ops.diagnostics.prometheus import prometheus_server
from tests.runtime.worker.mcp_server import TOOL_CALLS, tool_server_process
from tests.servers import free_port
from tests.stacks import run_plan, stack_values, write_stack
from tests.waiting import eventually

FILES_PATH = "/stats/prom"


def _servers(ports: dict[str, int]) -> list[dict[str, Any]]:
    """Two servers on the given ports: `search` on the default metrics path, `files` on one of
    its own."""
    return [
        {**tool_server("search", [CODE]), "port": ports["search"]},
        {**tool_server("files", [CODE]), "port": ports["files"], "metricsPath": FILES_PATH},
    ]


def _plan(tmp: Path, stack: str, servers: list[dict[str, Any]]) -> Path:
    def add(config: dict[str, Any]) -> None:
        config["agentops:agents"]["toolServers"] = servers

    out = tmp / stack
    proc = run_plan(stack, out, write_stack(tmp / f"{stack}-stack", stack, add))
    assert proc.returncode == 0, proc.stderr
    return out


def _docs(plan: Path, kind: str) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((plan / "manifests").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc["kind"] == kind:
                found[doc["metadata"]["name"]] = doc
    return found


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"files": free_port(), "search": free_port()}


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Path:
    return _plan(tmp_path_factory.mktemp("scrape"), "staging", _servers(ports))


def test_each_server_has_a_monitor_selecting_its_service_port_and_path(
    staging: Path, ports: dict[str, int], tmp_path: Path
) -> None:
    monitors, services = _docs(staging, "ServiceMonitor"), _docs(staging, "Service")
    expected = {
        "mcp-search": ("/metrics", ports["search"]),
        "mcp-files": (FILES_PATH, ports["files"]),
    }
    for name, (path, port) in expected.items():
        monitor = monitors[name]
        assert [s["metadata"]["name"] for s in selected_services(monitor, services.values())] == [
            name
        ], "exactly the server's own Service"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == path
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["name"] == endpoint["port"]
        assert service_port["port"] == port
        # The pods' container port carries the name the Service targets.
        pod = _docs(staging, "Deployment")[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert {"name": service_port["targetPort"], "containerPort": port} in container["ports"]
        # Staging runs the mesh: Prometheus scrapes over mTLS with its Istio certificate.
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["certFile"].endswith("cert-chain.pem")
    # What the operator would make of them, over the mesh's TLS: valid for Prometheus (syntax
    # only: the Istio certificate files exist in Prometheus' pod, not here).
    config = tmp_path / "prometheus.yml"
    configs = scrape_configs([monitors[n] for n in expected], list(services.values()))
    config.write_text(yaml.safe_dump({"scrape_configs": configs}))
    checked = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The runtime's monitor (fixed /metrics) leaves the tool servers to their own.
    runtime = selected_services(monitors["agentops-runtime"], services.values())
    assert runtime and not [s for s in runtime if s["metadata"]["name"] in expected]


def test_the_analyzers_allow_the_scrape_flows_and_see_one_go(
    staging: Path, ports: dict[str, int], tmp_path: Path
) -> None:
    body = stack_values("staging")
    body["agents"]["toolServers"] = _servers(ports)
    cfg = load_from_mapping(body)
    verdict = write_report(cfg, staging, build=True)
    assert verdict["holds"], verdict
    assert verdict["netpol"]["flowsRefused"] == []
    assert verdict["netpol"]["flowsAllowed"] == verdict["flows"]
    decided = {
        (d["flow"], d["port"], d["method"], d["path"], d["decision"])
        for d in verdict["authz"]["decisions"]
        if d["flow"].startswith("prometheus-scrapes-mcp-")
    }
    assert ("prometheus-scrapes-mcp-files", ports["files"], "GET", FILES_PATH, "ALLOW") in decided
    assert {d[0] for d in decided} == {
        "prometheus-scrapes-mcp-files",
        "prometheus-scrapes-mcp-search",
    }

    # Without the scrape's NetworkPolicy, netpol-analyzer refuses exactly that flow.
    broken = tmp_path / "broken"
    shutil.copytree(staging, broken)
    dropped = list(broken.rglob("networkpolicy-*prometheus-scrapes-mcp-files*.yaml"))
    assert dropped
    for path in dropped:
        path.unlink()
    assert write_report(cfg, broken, build=True)["netpol"]["flowsRefused"] == [
        "prometheus-scrapes-mcp-files"
    ]


async def _call_add(port: int) -> None:
    async with Client(f"http://127.0.0.1:{port}/mcp") as client:
        await client.call_tool("add", {"a": 20, "b": 22})


def test_a_real_prometheus_scrapes_real_mcp_servers_from_the_rendered_monitors(
    tmp_path: Path,
) -> None:
    ports = {"files": free_port(), "search": free_port()}
    # The local stack: no mesh, so Prometheus scrapes plain HTTP as the monitor says.
    plan = _plan(tmp_path, "local", _servers(ports))
    monitors = [m for name, m in _docs(plan, "ServiceMonitor").items() if name.startswith("mcp-")]
    configs = scrape_configs(monitors, list(_docs(plan, "Service").values()))
    jobs = {c["static_configs"][0]["labels"]["service"]: c for c in configs}
    assert {j: (c["metrics_path"], c["scrape_interval"]) for j, c in jobs.items()} == {
        "mcp-files": (FILES_PATH, "15s"),
        "mcp-search": ("/metrics", "15s"),
    }
    with ExitStack() as stack:
        for name, port in ports.items():
            path = jobs[f"mcp-{name}"]["metrics_path"]
            stack.enter_context(tool_server_process(tmp_path, name, port, path))
        prom = stack.enter_context(prometheus_server(tmp_path / "prom", {}, scrape_configs=configs))
        checked = subprocess.run(
            ["promtool", "check", "config", str(prom.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        asyncio.run(_call_add(ports["files"]))

        def up() -> dict[str, float] | None:
            found = {r["metric"]["service"]: float(r["value"][1]) for r in prom.query("up")}
            return found if len(found) == 2 else None

        assert eventually("both servers scraped", up, timeout=60) == {
            "mcp-files": 1.0,
            "mcp-search": 1.0,
        }
        (calls,) = eventually(
            "the tool call's metric", lambda: prom.query(TOOL_CALLS) or None, timeout=60
        )
        assert calls["metric"]["service"] == "mcp-files"
        assert calls["metric"]["tool"] == "add"
        assert float(calls["value"][1]) == 1.0
        targets = {t["labels"]["service"]: t for t in prom.targets()}
        assert targets["mcp-files"]["scrapeUrl"] == f"http://127.0.0.1:{ports['files']}{FILES_PATH}"


def _no_metrics() -> list[dict[str, Any]]:
    return [{**tool_server("search", [CODE]), "metricsPath": None}]


def test_a_server_without_metrics_gets_no_monitor_and_no_scrape_flow() -> None:
    body = stack_values("staging")
    body["agents"]["toolServers"] = _no_metrics()
    cfg = load_from_mapping(body)
    assert tool_server_monitors(cfg) == {}
    into = {f.name for f in flows(cfg) if f.destination.key == "mcp-search"}
    assert into == {f"agent-{CODE}-to-mcp-search"}


def test_prod_with_monitoring_refuses_a_server_without_metrics(tmp_path: Path) -> None:
    def add(config: dict[str, Any]) -> None:
        config["agentops:agents"]["toolServers"] = _no_metrics()

    proc = run_plan("prod", tmp_path / "out", write_stack(tmp_path / "stack", "prod", add))
    assert proc.returncode == EXIT_CONFIG
    assert "agents.toolServers[0].metricsPath" in proc.stderr, proc.stderr
    assert "monitoring.enabled" in proc.stderr
