"""Istio's own analyzers over each meshed stack's rendered config, without a cluster.

`istioctl analyze --use-kube=false` reads the plan's Istio objects with the Namespaces, Services,
ServiceAccounts and Deployments they refer to, plus stand-in Pods for the charts' workloads
(infra/plan/connectivity.py, the runner `agentops plan` uses too). No error or warning may remain.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contracts.config import load_from_mapping
from infra.plan.connectivity import go_tool, istioctl_inputs, run_istioctl
from tests.stacks import stack_values

MESHED = ("staging", "prod")


@pytest.fixture(scope="session")
def istioctl() -> Path:
    return go_tool("istioctl")


def _inputs(stack: str, manifests: Path, out: Path) -> Path:
    return istioctl_inputs(load_from_mapping(stack_values(stack)), manifests, out)


@pytest.mark.parametrize("stack", MESHED)
def test_istioctl_analyze_finds_nothing(
    plan_dirs: dict[str, Path], istioctl: Path, tmp_path: Path, stack: str
) -> None:
    inputs = _inputs(stack, plan_dirs[stack] / "manifests", tmp_path)
    result = run_istioctl(istioctl, inputs)
    assert result.findings == [], "\n".join(result.findings)
    assert result.exit_code == 0, result.output


def test_istioctl_analyze_sees_a_broken_reference(
    plan_dirs: dict[str, Path], istioctl: Path, tmp_path: Path
) -> None:
    inputs = _inputs("staging", plan_dirs["staging"] / "manifests", tmp_path)
    broken = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": "agentops-platform"},
        "spec": {
            "hosts": ["broken.example.com"],
            "gateways": ["istio-system/no-such-gateway"],
            "http": [{"route": [{"destination": {"host": "no-such-service"}}]}],
        },
    }
    inputs.write_text(inputs.read_text() + "---\n" + yaml.safe_dump(broken))
    result = run_istioctl(istioctl, inputs)
    assert result.exit_code != 0
    assert "no-such-gateway" in result.output


def test_istioctl_analyze_validates_the_pools_egress_sidecars(
    plan_dirs: dict[str, Path], istioctl: Path, tmp_path: Path
) -> None:
    """The Sidecars and ServiceEntries are among what it reads: a host without its namespace
    (`api.openai.com` for `./api.openai.com`) is a schema error."""
    inputs = _inputs("staging", plan_dirs["staging"] / "manifests", tmp_path)
    text = inputs.read_text()
    assert "kind: Sidecar" in text and "kind: ServiceEntry" in text
    inputs.write_text(text.replace("- ./api.openai.com", "- api.openai.com"))
    result = run_istioctl(istioctl, inputs)
    assert result.exit_code != 0
    assert "host must be of form namespace/dnsName" in result.output
