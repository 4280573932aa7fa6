"""The runtime workloads the platform deploys, described as data from the config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from infra.config import Environment, ImageConfig, PlatformConfig, ResourcesConfig
from infra.platform.names import COST_ENGINE, MANAGER, Namespace, pool_workload
from runtime import ports
from runtime.telemetry import metrics

__all__ = ["TRACK_LABEL", "Autoscaling", "Track", "Workload", "runtime_workloads"]

TRACK_LABEL: Final = "agentops.io/track"


class Track(StrEnum):
    """Blue/green tracks of the manager; the mesh splits task traffic between them."""

    BLUE = "blue"
    GREEN = "green"


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    cpu_percent: int
    memory_percent: int
    # External metric (through prometheus-adapter) and its per-replica target.
    queue_metric: str
    queue_selector: dict[str, str]
    queue_per_replica: int


@dataclass(frozen=True)
class Workload:
    name: str
    component: str
    namespace: Namespace
    image: ImageConfig
    resources: ResourcesConfig
    port: int
    args: tuple[str, ...]
    env: dict[str, str]
    replicas: int | None  # None: the HPA owns the count
    autoscaling: Autoscaling | None = None
    labels: dict[str, str] = field(default_factory=dict)
    termination_grace_seconds: int = 30
    # The identity shared by all tracks of one service: its Service, ServiceAccount and the
    # `app.kubernetes.io/name` label. Defaults to `name`.
    app: str = ""
    track: Track | None = None
    aws_policy_arns: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        return self.app or self.name

    @property
    def owns_service(self) -> bool:
        """The first track of a service creates its Service and ServiceAccount."""
        return self.identity == self.name


def _service_url(name: str, namespace: Namespace, port: int) -> str:
    return f"http://{name}.{namespace.value}.svc.cluster.local:{port}"


def runtime_workloads(cfg: PlatformConfig) -> list[Workload]:
    agents = cfg.agents
    manager_url = _service_url(MANAGER, Namespace.PLATFORM, ports.MANAGER_HTTP)
    cost_url = _service_url(COST_ENGINE, Namespace.PLATFORM, ports.COST_ENGINE_HTTP)
    common = {"AGENTOPS_ENVIRONMENT": cfg.environment.value}
    manager = Workload(
        name=MANAGER,
        component="manager",
        namespace=Namespace.PLATFORM,
        image=agents.manager.image,
        resources=agents.manager.resources,
        port=ports.MANAGER_HTTP,
        args=("serve", "manager"),
        env={
            **common,
            "AGENTOPS_COST_ENGINE_URL": cost_url,
            # Tasks may name only the stack's pools: an unknown type is refused at submit.
            "AGENTOPS_AGENT_TYPES": json.dumps([p.name for p in agents.pools]),
        },
        replicas=agents.manager.replicas,
        track=Track.BLUE,
        aws_policy_arns=tuple(agents.manager.aws_policy_arns),
    )
    found = [manager]
    split = cfg.mesh.blue_green
    if cfg.mesh.enabled and split.green_tag is not None:
        found.append(
            replace(
                manager,
                name=f"{MANAGER}-{Track.GREEN.value}",
                app=MANAGER,
                track=Track.GREEN,
                image=manager.image.model_copy(
                    update={"tag": split.green_tag, "digest": split.green_digest}
                ),
            )
        )
    found += [
        Workload(
            name=COST_ENGINE,
            component="cost-engine",
            namespace=Namespace.PLATFORM,
            image=agents.cost_engine.image,
            resources=agents.cost_engine.resources,
            port=ports.COST_ENGINE_HTTP,
            args=("serve", "cost-engine"),
            # The stack's cost config, as validated: budgets, limits and price overrides have
            # one source (Pulumi.<stack>.yaml), and a change rolls the engine's pods.
            env={
                **common,
                "AGENTOPS_COST_CONFIG": cfg.cost.model_dump_json(by_alias=True),
            },
            replicas=agents.cost_engine.replicas,
            aws_policy_arns=tuple(agents.cost_engine.aws_policy_arns),
        ),
    ]
    for pool in agents.pools:
        found.append(
            Workload(
                name=pool_workload(pool.name),
                component="agent-worker",
                namespace=Namespace.AGENTS,
                image=pool.image,
                resources=pool.resources,
                port=ports.WORKER_HTTP,
                args=("serve", "worker"),
                env={
                    **common,
                    "AGENTOPS_AGENT_TYPE": pool.name,
                    "AGENTOPS_CAPACITY": str(pool.capacity),
                    "AGENTOPS_WEIGHT": str(pool.weight),
                    "AGENTOPS_MANAGER_URL": manager_url,
                    "AGENTOPS_COST_ENGINE_URL": cost_url,
                },
                replicas=None,
                autoscaling=Autoscaling(
                    min_replicas=pool.min_replicas,
                    max_replicas=pool.max_replicas,
                    cpu_percent=pool.target_cpu_utilization,
                    memory_percent=pool.target_memory_utilization,
                    queue_metric=metrics.QUEUE_LENGTH,
                    queue_selector={"agent_type": pool.name},
                    queue_per_replica=pool.target_queue_length,
                ),
                labels={"agentops.io/agent-type": pool.name},
                # In-flight tasks finish before the pod goes (the worker drains on SIGTERM).
                termination_grace_seconds=120,
                aws_policy_arns=tuple(pool.aws_policy_arns),
            )
        )
    return found


def zone_spread_is_hard(cfg: PlatformConfig) -> bool:
    """Prod refuses to pile replicas into one zone; other stacks prefer not to."""
    return cfg.environment is Environment.PROD
