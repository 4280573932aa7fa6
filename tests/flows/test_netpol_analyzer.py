"""An independent NetworkPolicy analyzer over each stack's rendered manifests: every flow of the
table is allowed, and nothing else is.

The analyzer is np-guard's netpol-analyzer (k8snetpolicy), built from the Go module proxy at the
version contracts/versions.py pins (scripts/ensure-go-tool netpol). Its verdicts are written to
.pytest_cache/netpol-<stack>.txt for the closing note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.config import load_from_mapping
from infra.platform.flows import flows, networks
from infra.platform.names import enabled_namespaces
from tests.flows.netpol import Analysis, analyze, analyzer, compare, write_inputs
from tests.stacks import REPO, STACKS, stack_values


@pytest.fixture(scope="session")
def netpol() -> Path:
    return analyzer()


def _analysis(stack: str, plan_dir: Path, netpol: Path, out: Path) -> Analysis:
    cfg = load_from_mapping(stack_values(stack))
    table = flows(cfg)
    inputs = write_inputs(plan_dir / "manifests", out, table)
    owned = {ns.value for ns in enabled_namespaces(cfg)}
    return compare(analyze(netpol, inputs), inputs, table, owned, networks(cfg)["nodes"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_flow_allowed_and_nothing_else(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path, stack: str
) -> None:
    result = _analysis(stack, plan_dirs[stack], netpol, tmp_path)
    report = REPO / ".pytest_cache" / f"netpol-{stack}.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(
        f"{stack}: {len(result.entities)} workloads, {len(result.connections)} allowed "
        f"connections; flows allowed {result.allowed_flows}, refused "
        f"{len(result.refused_flows)}; pairs denied {result.denied_pairs}; "
        f"allowed outside the table {len(result.unexpected)}\n"
        + "".join(f"refused: {f}\n" for f in result.refused_flows)
        + "".join(f"unexpected: {u}\n" for u in result.unexpected)
    )
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
