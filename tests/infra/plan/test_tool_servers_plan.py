"""A stack with two MCP tool servers, planned by the real runner: each server is a hardened
Deployment with its Service, PDB and own service account, its flows render as NetworkPolicies
and AuthorizationPolicies, and `agentops diff` against the stack without them shows the new
flows before anything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.flows.test_tool_servers import TWO
from tests.stacks import REPO, run_plan, write_stack

SERVERS = ("mcp-search", "mcp-files")


def _manifests(plan: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((plan / "manifests").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


def test_two_tool_servers_plan_as_hardened_workloads_and_diff_shows_their_flows_first(
    tmp_path: Path,
) -> None:
    def add_servers(config: dict[str, Any]) -> None:
        config["agentops:agents"]["toolServers"] = list(TWO)

    base, head = tmp_path / "base", tmp_path / "head"
    for out, mutate in ((base, lambda _: None), (head, add_servers)):
        proc = run_plan(
            "staging", out, write_stack(tmp_path / f"{out.name}-stack", "staging", mutate)
        )
        assert proc.returncode == 0, proc.stderr

    docs = _manifests(head)
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for name in SERVERS:
        deployment = by_kind["Deployment"][name]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["serviceAccountName"] == name
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert "@sha256:" in container["image"], "the pinned image"
        assert container["readinessProbe"]["tcpSocket"] == {"port": "http"}
        assert not [e for e in container.get("env", []) if e["name"] == "AGENTOPS_REDIS_URL"]
        assert name in by_kind["Service"]
        assert name in by_kind["PodDisruptionBudget"]
        assert name in by_kind["ServiceAccount"]
    assert "in-agent-code-generator-to-mcp-search" in by_kind["NetworkPolicy"]
    assert "in-agent-security-scanner-to-mcp-search" not in by_kind["NetworkPolicy"]
    assert "flow-agent-security-scanner-to-mcp-files" in by_kind["AuthorizationPolicy"]
    assert not any("mcp-" in d["metadata"]["name"] for d in _manifests(base))

    proc = subprocess.run(
        [sys.executable, "-m", "ops.cli", "diff", str(base), str(head)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # The flows come first: before the resource counts and any resource.
    flows, _, resources = proc.stdout.partition(" to add, ")
    assert "#### Flows" in flows, proc.stdout[:2000]
    for flow in (
        "agent-code-generator-to-mcp-search",
        "agent-code-generator-to-mcp-files",
        "agent-security-scanner-to-mcp-files",
        "prometheus-scrapes-mcp-files",
    ):
        assert f"`{flow}`" in flows
    assert "agent-security-scanner-to-mcp-search" not in proc.stdout
    assert "kubernetes:apps/v1:Deployment` | `agents-mcp-search`" in resources
