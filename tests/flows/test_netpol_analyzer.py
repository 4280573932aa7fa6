"""An independent NetworkPolicy analyzer over each stack's rendered manifests: every flow of the
table is allowed, and nothing else is.

The analyzer is np-guard's netpol-analyzer (k8snetpolicy), built from the Go module proxy at the
version contracts/versions.py pins (scripts/ensure-go-tool netpol), through the runner `agentops
plan` uses for its connectivity report (infra/plan/connectivity.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contracts.config import load_from_mapping
from infra.plan.connectivity import go_tool, netpol_analysis
from infra.plan.netpol import Analysis
from infra.platform.names import Namespace
from tests.stacks import STACKS, stack_values


@pytest.fixture(scope="session")
def netpol() -> Path:
    return go_tool("netpol")


def _analysis(stack: str, plan_dir: Path, netpol: Path, out: Path) -> Analysis:
    cfg = load_from_mapping(stack_values(stack))
    return netpol_analysis(cfg, plan_dir / "manifests", out, netpol)


@pytest.mark.parametrize("stack", STACKS)
def test_every_flow_allowed_and_nothing_else(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path, stack: str
) -> None:
    result = _analysis(stack, plan_dirs[stack], netpol, tmp_path)
    assert result.refused_flows == []
    assert result.unexpected == []
    assert result.denied_pairs > 0


def test_a_missing_allow_is_seen_as_a_refused_flow(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path
) -> None:
    # The analyzer, not our generator, decides: drop one rendered allow and the flow it
    # carried is refused.
    manifests = tmp_path / "manifests"
    source = plan_dirs["staging"] / "manifests"
    for path in source.rglob("*.yaml"):
        if path.name == "networkpolicy-out-alertmanager-to-manager.yaml":
            continue
        target = manifests / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    result = _analysis("staging", tmp_path, netpol, tmp_path / "inputs")
    assert result.refused_flows == ["alertmanager-to-manager"]


def test_an_extra_allow_is_seen_outside_the_table(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    source = plan_dirs["staging"] / "manifests"
    for path in source.rglob("*.yaml"):
        target = manifests / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (manifests / "agentops-agents" / "networkpolicy-extra.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: extra, namespace: agentops-agents}\n"
        "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n"
        "  ingress: [{ports: [{protocol: TCP, port: 9999}]}]\n"
    )
    result = _analysis("staging", tmp_path, netpol, tmp_path / "inputs")
    assert result.unexpected
    assert all(u.endswith("TCP 9999") for u in result.unexpected)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_agents_reach_vault_on_its_api_port_only(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path, stack: str
) -> None:
    # The analyzer's own connection list: every agent pool → every Vault server pod is TCP 8200
    # and nothing else (not the raft/forwarding port 8201, which only Vault's peers reach).
    result = _analysis(stack, plan_dirs[stack], netpol, tmp_path)
    prefix = f"{Namespace.VAULT.value}/standin-vault-"
    servers = [e for e in result.entities if e.removeprefix(prefix).isdigit()]
    into_vault = [
        c
        for c in result.connections
        if c.src.startswith(f"{Namespace.AGENTS.value}/") and c.dst in servers
    ]
    cfg = load_from_mapping(stack_values(stack))
    assert len(into_vault) == len(cfg.agents.pools) * len(servers) > 0
    assert all(c.ports == frozenset({("TCP", 8200)}) for c in into_vault), into_vault
    peers = [c for c in result.connections if c.src in servers and c.dst in servers]
    assert peers and all(("TCP", 8201) in c.ports for c in peers)


def test_kube_system_addons_are_covered(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path
) -> None:
    # kube-system is not ours: no policy of ours selects its pods, so the scaling add-ons' and
    # the log shipper's flows pass by default, and none of these pods reaches ours or is
    # reached from ours.
    result = _analysis("staging", plan_dirs["staging"], netpol, tmp_path / "as-planned")
    addons = [e for e in result.entities if e.startswith("kube-system/") and "kube-dns" not in e]
    assert {a.split("/")[1] for a in addons} == {
        "standin-metrics-server-0",
        "standin-cluster-autoscaler-0",
        "standin-fluent-bit-0",
    }
    owned = [e for e in result.entities if not e.startswith("kube-system/")]
    touching = [
        c
        for c in result.connections
        if (c.src in addons and c.dst in owned) or (c.src in owned and c.dst in addons)
    ]
    assert touching == []

    # Were kube-system to deny by default, the analyzer refuses exactly the flows into and
    # out of it: the comparison covers them, it does not skip them.
    manifests = tmp_path / "denied" / "manifests"
    shutil.copytree(plan_dirs["staging"] / "manifests", manifests)
    (manifests / "kube-system").mkdir()
    (manifests / "kube-system" / "networkpolicy-default-deny.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: default-deny, namespace: kube-system}\n"
        "spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n"
    )
    denied = _analysis("staging", tmp_path / "denied", netpol, tmp_path / "denied-inputs")
    assert {
        "api-server-to-metrics-server",
        "metrics-server-to-kubelets",
        "metrics-server-to-api-server",
        "cluster-autoscaler-to-api-server",
        "cluster-autoscaler-to-aws",
        "fluent-bit-to-api-server",
        "fluent-bit-to-cloudwatch-logs",
    } <= set(denied.refused_flows)
    kube_system = ("api-server-to-metrics", "metrics-server-", "cluster-autoscaler-", "fluent-bit-")
    assert all(f.startswith(("dns-", *kube_system)) for f in denied.refused_flows), (
        denied.refused_flows
    )
