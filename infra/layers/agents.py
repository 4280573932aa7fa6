"""The runtime on Kubernetes: manager, cost engine and one Deployment per agent pool.

Each workload gets its own ServiceAccount, a hardened pod (non-root, read-only root,
no capabilities, RuntimeDefault seccomp, no API token), probes, a Service, a PDB that lets a
node drain proceed, topology spread across zones and, for agent pools, an HPA on CPU,
memory and the manager's queue length. Its container runs with the environment its settings
model reads (infra/platform/workloads.py); its secrets are files the Vault Agent Injector
renders (infra/platform/runtime_secrets.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from contracts import endpoints
from contracts.config import NodeGroupRole, PlatformConfig
from contracts.settings.environment import env_name
from contracts.settings.service import ServiceSettings
from infra.layers.irsa import IrsaRole, IrsaRoleArgs, OidcIdentity
from infra.layers.tagging import Tagging
from infra.platform.names import (
    APP_LABEL,
    COMPONENT_LABEL,
    PART_OF,
    PART_OF_LABEL,
)
from infra.platform.runtime_secrets import (
    CA_CONFIGMAP,
    VAULT_CA_DIR,
    VAULT_TOKEN_DIR,
    VAULT_TOKEN_VOLUME,
    injector_annotations,
)
from infra.platform.scheduling import GPU_RESOURCE, NODE_ROLE_LABEL, gpu_tolerations
from infra.platform.workloads import (
    EPHEMERAL_STORAGE,
    PORT_NAME,
    PRE_STOP_SLEEP_SECONDS,
    TMP_SIZE,
    TRACK_LABEL,
    Workload,
    runtime_workloads,
    tool_server_workloads,
    zone_spread_is_hard,
)

__all__ = [
    "Agents",
    "AgentsArgs",
    "container_spec",
    "image_reference",
    "pod_labels",
    "pod_selector",
    "pod_spec",
]

RUN_AS = 10001
# The pod's name, through the downward API: the manager's instance id and the worker's agent id
# (a restarted container finds its own unfinished work under it), and the pod in audit records.
POD_NAME_ENV = "POD_NAME"


@dataclass(frozen=True)
class AgentsArgs:
    config: PlatformConfig
    provider: k8s.Provider
    # ECR repository URL per repository name; None for the local stack's own registry.
    repository_urls: Mapping[str, pulumi.Input[str]] | None
    depends_on: list[pulumi.Resource]
    # Where the runtime's Redis is; no password in it (the runtime reads that from Vault).
    redis_url: pulumi.Input[str]
    # On AWS each service account gets its own IRSA role; None on the local stack.
    oidc: OidcIdentity | None
    tagging: Tagging | None
    # Workload identity → the inline policy its IRSA role gets (a pool's storage access).
    aws_inline_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def image_reference(
    repository: pulumi.Input[str], tag: str, digest: str | None
) -> pulumi.Output[str]:
    # A digest pins the exact bytes; the tag stays for humans reading the manifest.
    suffix = f":{tag}@{digest}" if digest else f":{tag}"
    return pulumi.Output.concat(repository, suffix)


def image_pull_policy(digest: str | None) -> str:
    # A digest names the bytes, so a node's cached copy is the image. A tag is only a name:
    # the registry is asked on every start, so no node runs a stale or unauthorised image.
    return "IfNotPresent" if digest else "Always"


def pod_selector(w: Workload) -> dict[str, str]:
    """What a workload's Deployment, PDB and spread select: its app, and its track if any."""
    selector = {APP_LABEL: w.identity}
    if w.track is not None:
        # Tracks share the Service; each Deployment (and PDB) selects only its own pods.
        selector[TRACK_LABEL] = w.track.value
    return selector


def pod_labels(w: Workload) -> dict[str, str]:
    return {**pod_selector(w), COMPONENT_LABEL: w.component, PART_OF_LABEL: PART_OF, **w.labels}


def resources(w: Workload) -> k8s.core.v1.ResourceRequirementsArgs:
    gpus = {GPU_RESOURCE: str(w.gpus)} if w.gpus else {}
    disk = {"ephemeral-storage": EPHEMERAL_STORAGE}
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={
            "cpu": w.resources.cpu_request,
            "memory": w.resources.memory_request,
            **disk,
            **gpus,
        },
        limits={
            "cpu": w.resources.cpu_limit,
            "memory": w.resources.memory_limit,
            **disk,
            **gpus,
        },
    )


def _container_env(w: Workload, redis_url: pulumi.Input[str]) -> list[k8s.core.v1.EnvVarArgs]:
    """The runtime's settings, Redis URL and pod name; another image gets only its own env."""
    if not w.runtime:
        return [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(w.env.items())]
    return [
        k8s.core.v1.EnvVarArgs(name=k, value=v)
        for k, v in sorted({**w.env, env_name(ServiceSettings, "redis_url"): redis_url}.items())
    ] + [
        k8s.core.v1.EnvVarArgs(
            name=POD_NAME_ENV,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.name")
            ),
        )
    ]


def _probe(w: Workload, path: str, period: int, failures: int) -> k8s.core.v1.ProbeArgs:
    """The runtime's HTTP probe; another image is probed on its TCP port."""
    if not w.runtime:
        return k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=PORT_NAME),
            period_seconds=period,
            failure_threshold=failures,
        )
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=PORT_NAME),
        period_seconds=period,
        failure_threshold=failures,
    )


def container_spec(
    w: Workload, repository: pulumi.Input[str], redis_url: pulumi.Input[str]
) -> k8s.core.v1.ContainerArgs:
    """The one container of a pod: image, env its settings read, probes, hardening."""
    return k8s.core.v1.ContainerArgs(
        name=w.component,
        image=image_reference(repository, w.image.tag, w.image.digest),
        image_pull_policy=image_pull_policy(w.image.digest),
        args=list(w.args),
        env=_container_env(w, redis_url),
        ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=w.port)],
        resources=resources(w),
        liveness_probe=_probe(w, endpoints.HEALTH, period=10, failures=3),
        readiness_probe=_probe(w, endpoints.READY, period=5, failures=2),
        # Endpoints are removed before SIGTERM arrives, so no new request hits a draining pod.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SLEEP_SECONDS)
            )
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
            k8s.core.v1.VolumeMountArgs(
                name=VAULT_TOKEN_VOLUME, mount_path=VAULT_TOKEN_DIR, read_only=True
            ),
            k8s.core.v1.VolumeMountArgs(name=CA_CONFIGMAP, mount_path=VAULT_CA_DIR, read_only=True),
        ],
    )


def topology_spread(
    cfg: PlatformConfig, selector: dict[str, str]
) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="DoNotSchedule" if hard else "ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        )
        for key, hard in (
            ("topology.kubernetes.io/zone", zone_spread_is_hard(cfg)),
            ("kubernetes.io/hostname", False),
        )
    ]


def pod_spec(
    w: Workload, cfg: PlatformConfig, repository: pulumi.Input[str], redis_url: pulumi.Input[str]
) -> k8s.core.v1.PodSpecArgs:
    """A runtime workload's pod: pure (no resource is registered), so tests call it directly."""
    return k8s.core.v1.PodSpecArgs(
        service_account_name=w.identity,
        automount_service_account_token=False,
        termination_grace_period_seconds=w.termination_grace_seconds,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[container_spec(w, repository, redis_url)],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=TMP_SIZE)
            ),
            k8s.core.v1.VolumeArgs(
                name=VAULT_TOKEN_VOLUME,
                projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                    sources=[
                        k8s.core.v1.VolumeProjectionArgs(
                            service_account_token=k8s.core.v1.ServiceAccountTokenProjectionArgs(
                                audience="vault", expiration_seconds=600, path="token"
                            )
                        )
                    ]
                ),
            ),
            # The CA that signs Vault's certificate (written by the vault layer).
            k8s.core.v1.VolumeArgs(
                name=CA_CONFIGMAP,
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=CA_CONFIGMAP),
            ),
        ],
        topology_spread_constraints=topology_spread(cfg, pod_selector(w)),
        node_selector=(
            {NODE_ROLE_LABEL: (NodeGroupRole.GPU if w.gpus else NodeGroupRole.AGENTS).value}
            if cfg.on_aws
            else None
        ),
        tolerations=(
            [k8s.core.v1.TolerationArgs(**t) for t in gpu_tolerations(cfg.cluster)]
            if w.gpus
            else None
        ),
    )


class Agents(pulumi.ComponentResource):
    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self, name: str, args: AgentsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Agents", name, None, opts)
        self.deployments = {}
        for workload in [*runtime_workloads(args.config), *tool_server_workloads(args.config)]:
            self.deployments[workload.name] = self._workload(name, workload, args)
        self.register_outputs(
            {
                "deployments": {
                    k: d.metadata.apply(lambda m: m.name) for k, d in self.deployments.items()
                }
            }
        )

    def _workload(self, prefix: str, w: Workload, args: AgentsArgs) -> k8s.apps.v1.Deployment:
        cfg = args.config
        opts = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )
        ns = w.namespace.value
        selector = pod_selector(w)
        labels = pod_labels(w)
        meta = k8s.meta.v1.ObjectMetaArgs(name=w.name, namespace=ns, labels=labels)
        shared_labels = {k: v for k, v in labels.items() if k != TRACK_LABEL}
        shared_meta = k8s.meta.v1.ObjectMetaArgs(
            name=w.identity, namespace=ns, labels=shared_labels
        )
        repo = (
            args.repository_urls[w.image.repository]
            if args.repository_urls is not None
            else f"agentops/{w.image.repository}"
        )
        if w.owns_service:
            self._service_account(prefix, w, args, shared_labels, opts)
        deployment = k8s.apps.v1.Deployment(
            f"{prefix}-{w.name}",
            metadata=meta,
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=w.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge="25%", max_unavailable=0
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        annotations=injector_annotations(
                            role=w.identity,
                            files=w.secret_files,
                            kv_mount=cfg.vault.kv_mount,
                            run_as=RUN_AS,
                            mesh=cfg.mesh.enabled,
                        ),
                    ),
                    spec=pod_spec(w, cfg, repo, args.redis_url),
                ),
            ),
            opts=opts,
        )
        service_selector = {APP_LABEL: w.identity}
        if w.owns_service:
            self._service(prefix, w, shared_meta, service_selector, opts)
        # One pod at a time may go: a node drain proceeds, capacity never drops to zero.
        k8s.policy.v1.PodDisruptionBudget(
            f"{prefix}-{w.name}-pdb",
            metadata=meta,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            ),
            opts=opts,
        )
        if w.autoscaling is not None:
            self._hpa(prefix, w, meta, opts)
        return deployment

    def _service_account(
        self,
        prefix: str,
        w: Workload,
        args: AgentsArgs,
        labels: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        ns = w.namespace.value
        sa_meta = k8s.meta.v1.ObjectMetaArgs(name=w.identity, namespace=ns, labels=labels)
        if args.oidc is not None:
            role = IrsaRole(
                f"{prefix}-{w.name}-irsa",
                IrsaRoleArgs(
                    oidc_provider_arn=args.oidc.provider_arn,
                    oidc_issuer_url=args.oidc.issuer_url,
                    namespace=ns,
                    service_account=w.identity,
                    managed_policy_arns=w.aws_policy_arns,
                    inline_policy=args.aws_inline_policies.get(w.identity),
                    tags=args.tagging(f"{w.identity}-irsa") if args.tagging else None,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            sa_meta = k8s.meta.v1.ObjectMetaArgs(
                name=w.identity,
                namespace=ns,
                labels=labels,
                annotations={"eks.amazonaws.com/role-arn": role.role_arn},
            )
        k8s.core.v1.ServiceAccount(
            f"{prefix}-{w.name}-sa",
            metadata=sa_meta,
            automount_service_account_token=False,
            opts=opts,
        )

    def _service(
        self,
        prefix: str,
        w: Workload,
        meta: k8s.meta.v1.ObjectMetaArgs,
        selector: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        k8s.core.v1.Service(
            f"{prefix}-{w.name}-svc",
            metadata=meta,
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=PORT_NAME, port=w.port, target_port=PORT_NAME, app_protocol="http"
                    )
                ],
            ),
            opts=opts,
        )

    def _hpa(
        self,
        prefix: str,
        w: Workload,
        meta: k8s.meta.v1.ObjectMetaArgs,
        opts: pulumi.ResourceOptions,
    ) -> None:
        a = w.autoscaling
        assert a is not None
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{prefix}-{w.name}-hpa",
            metadata=meta,
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=w.name
                ),
                min_replicas=a.min_replicas,
                max_replicas=a.max_replicas,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name=resource,
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization", average_utilization=percent
                            ),
                        ),
                    )
                    for resource, percent in (("cpu", a.cpu_percent), ("memory", a.memory_percent))
                ]
                + [
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="External",
                        external=k8s.autoscaling.v2.ExternalMetricSourceArgs(
                            metric=k8s.autoscaling.v2.MetricIdentifierArgs(
                                name=a.queue_metric,
                                selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels=a.queue_selector
                                ),
                            ),
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="AverageValue", average_value=str(a.queue_per_replica)
                            ),
                        ),
                    )
                ],
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    # Scale down slowly: a burst that ends should not flap the pool.
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=300
                    )
                ),
            ),
            opts=opts,
        )
