"""`pod_spec()` is pure: called directly, without Pulumi's engine, it gives each runtime
workload of each stack its hardened pod (the plans show the same objects rendered)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from contracts import endpoints
from contracts.config import load_from_mapping
from infra.layers.agents import POD_NAME_ENV, RUN_AS, pod_selector, pod_spec
from infra.platform.scheduling import GPU_RESOURCE, NODE_ROLE_LABEL
from infra.platform.workloads import runtime_workloads
from tests.stacks import STACKS, stack_values

REDIS = "redis://redis-master.agentops-state.svc:6379/0"


@pytest.fixture
def event_loop_for_outputs() -> Iterator[None]:
    # The image reference is a pulumi.Output (registry URL + tag), which wants an event loop.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.mark.usefixtures("event_loop_for_outputs")
@pytest.mark.parametrize("stack", STACKS)
def test_every_runtime_pod_is_hardened_and_reads_its_settings(stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    for w in runtime_workloads(cfg):
        pod = pod_spec(w, cfg, "registry.example/agentops", REDIS)
        (container,) = pod.containers
        assert pod.automount_service_account_token is False
        assert pod.service_account_name == w.identity
        assert pod.security_context.run_as_user == RUN_AS
        hardening = container.security_context
        assert hardening.read_only_root_filesystem is True
        assert hardening.allow_privilege_escalation is False
        assert hardening.capabilities.drop == ["ALL"]
        assert container.args == list(w.args)
        assert container.liveness_probe.http_get.path == endpoints.HEALTH
        assert container.readiness_probe.http_get.path == endpoints.READY
        env = {e.name: e for e in container.env}
        assert env["AGENTOPS_REDIS_URL"].value == REDIS
        assert env[POD_NAME_ENV].value_from.field_ref.field_path == "metadata.name"
        for name, value in w.env.items():
            assert env[name].value == value, name
        for spread in pod.topology_spread_constraints:
            assert spread.label_selector.match_labels == pod_selector(w)
        if cfg.on_aws:
            assert pod.node_selector == {NODE_ROLE_LABEL: "gpu" if w.gpus else "agents"}
        else:
            assert pod.node_selector is None
        assert (GPU_RESOURCE in container.resources.limits) == bool(w.gpus)
        assert container.resources.limits["ephemeral-storage"] == "128Mi"
