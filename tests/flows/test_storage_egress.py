"""A pool with a bucket reaches its storage: the bucket's regional S3 endpoint and regional STS
(IRSA's AssumeRoleWithWebIdentity) on 443, by name. NetworkPolicies can only open the port to
the internet; the mesh holds every pool, work pools included, to those names (ServiceEntry per
host, REGISTRY_ONLY Sidecar). Evidence: np-guard's netpol-analyzer and istioctl over the real
plans, the region from the stack file's `aws:region` (not the program's own derivation)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.config import ConfigError, load_from_mapping
from contracts.config.storage import pool_bucket_name
from infra.plan.connectivity import go_tool, istioctl_inputs, netpol_analysis, run_istioctl
from infra.plan.document import Plan
from infra.platform.flows import flows
from infra.platform.names import Namespace, pool_workload
from tests.stacks import REPO, run_plan, stack_values, write_stack

AGENTS = Namespace.AGENTS.value
WITH_STORAGE = ("staging", "prod")


def _region(stack: str) -> str:
    body = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    return str(body["config"]["aws:region"])


def _expected_hosts(stack: str, pool: str) -> list[str]:
    prefix = stack_values(stack)["storage"]["bucketPrefix"]
    region = _region(stack)
    return [f"{pool_bucket_name(prefix, stack, pool)}.s3.{region}.amazonaws.com",
            f"sts.{region}.amazonaws.com"]  # fmt: skip


def _objects(plan: Plan, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]): r.inputs
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == kind
    }


@pytest.mark.parametrize("stack", WITH_STORAGE)
def test_each_pool_reaches_its_own_bucket_and_sts_by_name(
    plans: dict[str, Plan], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    table = {f.name: f for f in flows(cfg)}
    entries = _objects(plans[stack], "ServiceEntry")
    sidecars = _objects(plans[stack], "Sidecar")
    buckets = set()
    for pool in cfg.agents.pools:
        name = pool_workload(pool.name)
        flow = table[f"{name}-to-storage"]
        hosts = _expected_hosts(stack, pool.name)
        assert (list(flow.hosts), flow.ports, flow.destination.key) == (hosts, (443,), "internet")
        buckets.add(hosts[0])
        # The mesh: a ServiceEntry (TLS 443, this namespace only) per host and the pool's
        # REGISTRY_ONLY Sidecar lists them — a work pool now has one too.
        for host in hosts:
            entry = entries[(AGENTS, "egress-" + host.replace(".", "-"))]["spec"]
            assert entry["hosts"] == [host]
            assert entry["ports"] == [{"number": 443, "name": "tls-443", "protocol": "TLS"}]
            assert entry["exportTo"] == ["."]
        sidecar = sidecars[(AGENTS, f"egress-{name}")]["spec"]
        assert sidecar["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
        (egress,) = sidecar["egress"]
        named = {h[2:] for h in egress["hosts"] if h.startswith("./")}
        assert set(hosts) <= named
        # No other pool's bucket is among its hosts.
        others = {
            h
            for other in cfg.agents.pools
            if other.name != pool.name
            for h in _expected_hosts(stack, other.name)[:1]
        }
        assert not named & others, (pool.name, named & others)
    assert len(buckets) == len(cfg.agents.pools)


@pytest.mark.parametrize("stack", WITH_STORAGE)
def test_istioctl_accepts_the_storage_entries(
    plan_dirs: dict[str, Path], tmp_path: Path, stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    inputs = istioctl_inputs(cfg, plan_dirs[stack] / "manifests", tmp_path)
    text = inputs.read_text()
    for pool in cfg.agents.pools:
        for host in _expected_hosts(stack, pool.name):
            assert f"- {host}" in text
    result = run_istioctl(go_tool("istioctl"), inputs)
    assert result.findings == [], "\n".join(result.findings)
    assert result.exit_code == 0, result.output


def test_a_work_pool_without_its_storage_policy_is_refused_by_the_analyzer(
    plan_dirs: dict[str, Path], tmp_path: Path
) -> None:
    # staging's security-scanner is a work pool: its storage flow is its only way out, so the
    # analyzer sees exactly that flow refused once its NetworkPolicy is gone.
    netpol = go_tool("netpol")
    cfg = load_from_mapping(stack_values("staging"))
    intact = netpol_analysis(cfg, plan_dirs["staging"] / "manifests", tmp_path / "a", netpol)
    assert intact.refused_flows == []
    assert intact.unexpected == []
    scanner = pool_workload("security-scanner")
    assert (
        cfg.agents.pools[[p.name for p in cfg.agents.pools].index("security-scanner")].provider
        is None
    )
    source = plan_dirs["staging"] / "manifests"
    manifests = tmp_path / "broken" / "manifests"
    for path in source.rglob("*.yaml"):
        if path.name == f"networkpolicy-out-{scanner}-to-storage.yaml":
            continue
        target = manifests / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    assert len(list(manifests.rglob("*.yaml"))) == len(list(source.rglob("*.yaml"))) - 1
    broken = netpol_analysis(cfg, manifests, tmp_path / "b", netpol)
    assert broken.refused_flows == [f"{scanner}-to-storage"]


def test_zones_outside_the_stacks_region_are_refused_by_name(tmp_path: Path) -> None:
    # The hosts come from the zones' region; the program refuses zones of another region than
    # `aws:region`, so the names the mesh allows are the ones the provider's buckets live under.
    def move(config: dict[str, Any]) -> None:
        config["aws:region"] = "us-east-1"

    stack_dir = write_stack(tmp_path / "stack", "staging", move)
    proc = run_plan("staging", tmp_path / "out", stack_dir)
    assert proc.returncode != 0
    assert "agentops:network.availabilityZones" in proc.stderr
    assert "zones of aws:region us-east-1 (these are in eu-west-1)" in proc.stderr

    values = stack_values("staging")
    values["network"]["availabilityZones"] = ["eu-west-1a", "eu-central-1b", "eu-west-1c"]
    with pytest.raises(ConfigError, match=r"availabilityZones.*zones of one region only"):
        load_from_mapping(values)
    values["network"]["availabilityZones"] = ["eu-west-1a", "west", "eu-west-1c"]
    with pytest.raises(ConfigError, match=r"availabilityZones\[1\].*availability zone name"):
        load_from_mapping(values)
