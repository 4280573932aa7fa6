"""Kubernetes workloads: hardened pods, bounded resources, probes and pinned, trusted images."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

from contracts.config.agents import DEFAULT_HANDLER, LOAD_TEST_LABEL
from policies.common import (
    ENVIRONMENT_SCHEMA,
    Report,
    containers,
    environment,
    pod_spec,
    resource_policy,
)

__all__ = ["POLICIES"]

Check = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _workload_policy(
    name: str,
    description: str,
    remediation: str,
    check: Check,
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: Report) -> None:
        spec = pod_spec(args.resource_type, args.props)
        if spec is None:
            return
        for message in check(spec, args.get_config()):
            report(message)

    return resource_policy(name, description, remediation, validate, config=config)


def _context(spec: Mapping[str, Any], c: Mapping[str, Any], key: str) -> Any:
    """A container's security setting, falling back to the pod's where Kubernetes does."""
    own = (c.get("securityContext") or {}).get(key)
    return own if own is not None else (spec.get("securityContext") or {}).get(key)


def _non_root(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    return [
        f"container {c.get('name')} may run as root (runAsNonRoot is not true)"
        for c in containers(spec)
        if _context(spec, c, "runAsNonRoot") is not True or _context(spec, c, "runAsUser") == 0
    ]


def _read_only(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    return [
        f"container {c.get('name')} has a writable root filesystem"
        for c in containers(spec)
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True
    ]


def _no_escalation(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = []
    for c in containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged") is True:
            found.append(f"container {c.get('name')} may escalate privileges")
    return found


def _caps_dropped(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = []
    for c in containers(spec):
        caps = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"container {c.get('name')} does not drop ALL capabilities")
        added = [a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
        if added:
            found.append(f"container {c.get('name')} adds capabilities {added}")
    return found


def _seccomp(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = []
    for c in containers(spec):
        profile = _context(spec, c, "seccompProfile") or {}
        if profile.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"container {c.get('name')} runs without a seccomp profile")
    return found


def _host_access(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = [
        f"the pod shares the host's {k[4:]} namespace"
        for k in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(k) is True
    ]
    found += [
        f"volume {v.get('name')} mounts a host path"
        for v in spec.get("volumes") or []
        if "hostPath" in v
    ]
    found += [
        f"container {c.get('name')} binds a host port"
        for c in containers(spec)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]
    return found


def _resources(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = []
    for c in containers(spec):
        resources = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(part) or {})
            if missing:
                found.append(f"container {c.get('name')} has no {part} for {sorted(missing)}")
    return found


def _ephemeral_storage(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    found = [
        f"container {c.get('name')} has no ephemeral-storage {part}"
        for c in containers(spec)
        for part in ("requests", "limits")
        if "ephemeral-storage" not in ((c.get("resources") or {}).get(part) or {})
    ]
    found += [
        f"emptyDir volume {v.get('name')} has no sizeLimit"
        for v in spec.get("volumes") or []
        if isinstance(v.get("emptyDir"), Mapping)
        and v["emptyDir"].get("medium") != "Memory"
        and not v["emptyDir"].get("sizeLimit")
    ]
    return found


def _probes(spec: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    return [
        f"container {c.get('name')} lacks a {probe}"
        for c in spec.get("containers") or []
        for probe in ("livenessProbe", "readinessProbe")
        if not c.get(probe)
    ]


def _tag_of(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _image_tags(spec: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    found = []
    for c in containers(spec):
        image = str(c.get("image", ""))
        tag = _tag_of(image)
        if tag is None and "@" not in image:
            found.append(f"container {c.get('name')} image {image!r} has no tag")
        elif tag == "latest":
            found.append(f"container {c.get('name')} image {image!r} uses the 'latest' tag")
        if config.get("environment") == "prod" and not _DIGEST.search(image):
            found.append(f"container {c.get('name')} image {image!r} is not pinned by digest")
    return found


# The project's ECR repositories (agentops/...) in any account and region.
PROJECT_ECR = r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/agentops/"


def _registries(spec: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    patterns = [re.compile(p) for p in config.get("allowedImages") or [PROJECT_ECR]]
    found = []
    for c in containers(spec):
        image = c.get("image")
        # During a preview an image built from an output is not known yet.
        if isinstance(image, str) and not any(p.search(image) for p in patterns):
            found.append(
                f"container {c.get('name')} image {image!r} is not from the project's "
                f"registries ({[p.pattern for p in patterns]})"
            )
    return found


def _token(spec: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    if spec.get("automountServiceAccountToken") is False:
        return []
    return [
        "the pod mounts a Kubernetes API token; set automountServiceAccountToken: false "
        "and project a token with an audience where one is needed"
    ]


# The worker's handler setting (contracts/settings/worker.py `handler`).
_HANDLER_ENV = "AGENTOPS_HANDLER"


def _demo_handler(args: ResourceValidationArgs, report: Report) -> None:
    """Prod runs real agents: a pod on the demo work handler only as a marked load-test pool."""
    if environment(args) != "prod":
        return
    spec = pod_spec(args.resource_type, args.props)
    template = (args.props.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if spec is None or labels.get(LOAD_TEST_LABEL) == "true":
        return
    for c in containers(spec):
        env = {e.get("name"): e.get("value") for e in c.get("env") or []}
        if env.get(_HANDLER_ENV) == DEFAULT_HANDLER:
            report(
                f"container {c.get('name')} runs the demo work handler in prod without the "
                f"{LOAD_TEST_LABEL}=true label of a load-test pool"
            )


POLICIES = [
    _workload_policy(
        "k8s-run-as-non-root",
        "Containers must not run as root: a container escape then starts without root on the node.",
        "Set securityContext.runAsNonRoot: true and a non-zero runAsUser (pod or container).",
        _non_root,
    ),
    _workload_policy(
        "k8s-read-only-root-filesystem",
        "Container root filesystems must be read-only, so a compromise cannot rewrite binaries.",
        "Set readOnlyRootFilesystem: true and mount an emptyDir where the app writes (/tmp).",
        _read_only,
    ),
    _workload_policy(
        "k8s-no-privilege-escalation",
        "Containers must not be privileged nor gain privileges (setuid binaries, ptrace).",
        "Set allowPrivilegeEscalation: false and never privileged: true.",
        _no_escalation,
    ),
    _workload_policy(
        "k8s-drop-all-capabilities",
        "Containers drop every Linux capability (NET_BIND_SERVICE is the only one allowed back).",
        "Set securityContext.capabilities.drop: [ALL]; listen on ports above 1024.",
        _caps_dropped,
    ),
    _workload_policy(
        "k8s-seccomp-profile",
        "Containers run with the RuntimeDefault (or a Localhost) seccomp profile.",
        "Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
        _seccomp,
    ),
    _workload_policy(
        "k8s-no-host-access",
        "Pods do not share the host's network, PID or IPC namespaces, mount host paths or bind "
        "host ports.",
        "Remove hostNetwork/hostPID/hostIPC, hostPath volumes and hostPort; use Services.",
        _host_access,
    ),
    _workload_policy(
        "k8s-resource-requests-and-limits",
        "Every container states CPU and memory requests and limits, so scheduling and quotas "
        "work and one workload cannot starve a node.",
        "Set resources.requests and resources.limits for cpu and memory (agents.*.resources).",
        _resources,
    ),
    _workload_policy(
        "k8s-ephemeral-storage-limits",
        "Every container states ephemeral-storage requests and limits and every disk-backed "
        "emptyDir a sizeLimit, so the kubelet evicts the pod that fills the node's disk instead "
        "of the node failing for every workload on it.",
        "Set resources.requests and resources.limits for ephemeral-storage (what the container "
        "writes: logs, emptyDirs) and emptyDir.sizeLimit.",
        _ephemeral_storage,
    ),
    _workload_policy(
        "k8s-liveness-and-readiness-probes",
        "Every container has a liveness and a readiness probe, so Kubernetes restarts hung "
        "processes and routes traffic only to ready ones.",
        "Add livenessProbe (/health) and readinessProbe (/ready).",
        _probes,
    ),
    _workload_policy(
        "k8s-pinned-images",
        "Images carry an explicit tag that is not 'latest'; in prod they are pinned by digest.",
        "Set agents.*.image.tag to a version, and .digest (sha256:...) in prod.",
        _image_tags,
        config=ENVIRONMENT_SCHEMA,
    ),
    _workload_policy(
        "k8s-trusted-registries",
        "Images come only from the project's registries (its ECR repositories).",
        "Push the image to the stack's ECR and reference it there.",
        _registries,
        config={
            "allowedImages": {
                "type": "array",
                "items": {"type": "string"},
                "default": [PROJECT_ECR],
                "description": "regular expressions an image reference must match",
            }
        },
    ),
    _workload_policy(
        "k8s-no-service-account-token",
        "Pods do not mount a Kubernetes API token unless they call the API; tokens for Vault are "
        "projected with their own audience.",
        "Set automountServiceAccountToken: false on the pod (and the ServiceAccount).",
        _token,
    ),
    resource_policy(
        "k8s-prod-real-agents",
        "Prod runs real agents: no pod on the demo work handler (synthetic usage against real "
        "budgets) unless it is a load-test pool.",
        "Give the pool handler: llm and a provider, or set loadTest: true on a load-test pool.",
        _demo_handler,
        config=ENVIRONMENT_SCHEMA,
    ),
]
