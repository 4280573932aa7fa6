"""The manifest writer: one YAML file per Kubernetes object, at a stable path."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.plan.document import Plan, PlanResource
from infra.plan.output import manifest_body, write_plan


def _k8s(kind: str, name: str, namespace: str | None = None) -> PlanResource:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    api = "apps/v1" if kind == "Deployment" else "v1"
    return PlanResource(
        urn=f"urn:pulumi:s::p::kubernetes:{api}:{kind}::{name}",
        type=f"kubernetes:{'apps/v1' if kind == 'Deployment' else 'core/v1'}:{kind}",
        name=name,
        custom=True,
        parent=None,
        provider=None,
        dependencies=[],
        inputs={"apiVersion": api, "kind": kind, "metadata": metadata, "spec": {"replicas": 2}},
    )


def test_one_file_per_object_and_stale_files_removed(tmp_path: Path) -> None:
    plan = Plan(
        project="p",
        stack="s",
        outputs={},
        resources=[
            _k8s("Namespace", "agents"),
            _k8s("Deployment", "agent-manager", "agents"),
            PlanResource("urn:x", "aws:ec2/vpc:Vpc", "vpc", True, None, None, [], {"cidr": "x"}),
        ],
    )
    stale = tmp_path / "manifests" / "old" / "configmap-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    write_plan(plan, tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "manifests").rglob("*.yaml"))
    assert files == [
        "manifests/_cluster/namespace-agents.yaml",
        "manifests/agents/deployment-agent-manager.yaml",
    ]
    body = yaml.safe_load((tmp_path / "manifests/agents/deployment-agent-manager.yaml").read_text())
    assert body["kind"] == "Deployment"
    assert body["metadata"] == {"name": "agent-manager", "namespace": "agents"}
    assert Plan.load(tmp_path).resources == plan.resources


def _secret(secret_type: str) -> PlanResource:
    return PlanResource(
        urn=f"urn:pulumi:s::p::kubernetes:core/v1:Secret::{secret_type}",
        type="kubernetes:core/v1:Secret",
        name="s",
        custom=True,
        parent=None,
        provider=None,
        dependencies=[],
        inputs={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "vault"},
            "type": secret_type,
            "stringData": "[secret]",
        },
    )


def test_a_redacted_secret_keeps_the_keys_its_type_requires() -> None:
    """The API server refuses a kubernetes.io/tls Secret without tls.crt and tls.key (found by
    applying the plans to a real API server, tests/kube): the keys stay, emptied."""
    tls = manifest_body(_secret("kubernetes.io/tls"))
    assert tls["stringData"] == {"tls.crt": "", "tls.key": ""}
    assert tls["metadata"]["annotations"] == {"agentops.io/redacted-fields": "stringData"}
    assert manifest_body(_secret("Opaque"))["stringData"] == {}
