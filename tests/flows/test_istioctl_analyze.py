"""Istio's own analyzers over each meshed stack's rendered config, without a cluster.

`istioctl analyze --use-kube=false` reads the plan's Istio objects with the Namespaces, Services,
ServiceAccounts and Deployments they refer to; the charts' pods (gateway, Prometheus, Redis...)
are not in the plan, so each gets a stand-in Pod with its chart's labels (and, in an injected
namespace, the sidecar the injector would add), and the gateway's certificate Secret, issued by
the operator's certificate manager, a stand-in of its type. No error or warning may remain.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.config import load_from_mapping
from infra.platform.flows import Workload, workloads
from tests.flows.netpol import go_tool
from tests.stacks import REPO, stack_values

MESHED = ("staging", "prod")
KINDS = {
    "Namespace",
    "Service",
    "ServiceAccount",
    "Deployment",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "RequestAuthentication",
    "DestinationRule",
    "Gateway",
    "VirtualService",
}


@pytest.fixture(scope="session")
def istioctl() -> Path:
    return go_tool("istioctl", "AGENTOPS_ISTIOCTL_BIN")


def _standin(w: Workload) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "app", "image": "standin"}]
    annotations = {}
    if w.injected and not w.edge:
        containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2"})
        annotations["sidecar.istio.io/status"] = '{"containers":["istio-proxy"]}'
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"standin-{w.key}",
            "namespace": w.namespace,
            "labels": w.label_map,
            "annotations": annotations,
        },
        "spec": {"serviceAccountName": w.service_account, "containers": containers},
    }


def _inputs(stack: str, manifests: Path, out: Path) -> Path:
    cfg = load_from_mapping(stack_values(stack))
    docs: list[dict[str, Any]] = []
    rendered: list[dict[str, str]] = []
    for path in sorted(manifests.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") in KINDS:
            docs.append(doc)
            if doc["kind"] == "Deployment":
                rendered.append(doc["spec"]["template"]["metadata"]["labels"])
    for w in workloads(cfg).values():
        ours = any(w.label_map.items() <= labels.items() for labels in rendered)
        if w.labels and not w.host_network and not ours and w.namespace != "kube-system":
            docs.append(_standin(w))
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": cfg.mesh.tls_secret, "namespace": "istio-system"},
            "data": {"tls.crt": "", "tls.key": ""},
        }
    )
    target = out / "mesh.yaml"
    target.write_text(yaml.safe_dump_all(docs, sort_keys=True))
    return target


@pytest.mark.parametrize("stack", MESHED)
def test_istioctl_analyze_finds_nothing(
    plan_dirs: dict[str, Path], istioctl: Path, tmp_path: Path, stack: str
) -> None:
    inputs = _inputs(stack, plan_dirs[stack] / "manifests", tmp_path)
    proc = subprocess.run(
        [str(istioctl), "analyze", "--use-kube=false", "--all-namespaces", str(inputs)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = REPO / ".pytest_cache" / f"istioctl-analyze-{stack}.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(proc.stdout + proc.stderr)
    findings = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith(("Error", "Warning", "Warn"))
    ]
    assert findings == [], "\n".join(findings)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
    proc = subprocess.run(
        [str(istioctl), "analyze", "--use-kube=false", "--all-namespaces", str(inputs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "no-such-gateway" in proc.stdout + proc.stderr
