"""Pinned versions, one table per supported Kubernetes minor.

This module is the only place a Kubernetes, EKS add-on or chart version is written down.
The config models validate `cluster.kubernetesVersion` against `SUPPORTED_MINORS`, the
cluster layer reads its add-on versions from here, and the plan guard rails compare two
plans through the same table.

Add-on builds come from `aws eks describe-addon-versions --kubernetes-version X.Y`; a new
minor is supported by adding one entry below (and nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "ADDON_NAMES",
    "ANALYZERS",
    "CHARTS",
    "CLUSTER_AUTOSCALER_CHARTS",
    "FLUENT_BIT_IMAGE",
    "ISTIO_CHARTS",
    "POD_SECURITY_STANDARD",
    "POSTGRES_ENGINE_VERSIONS",
    "POSTGRES_IMAGE",
    "POSTGRES_IMAGE_TAGS",
    "POSTGRES_IMAGE_UID",
    "SUPPORTED_MINORS",
    "VERSIONS",
    "Analyzer",
    "Chart",
    "MinorVersions",
    "for_minor",
    "minor_key",
]


@dataclass(frozen=True)
class MinorVersions:
    """Everything pinned for one Kubernetes minor."""

    minor: str
    # Patch release of the upstream control plane: what the local test control plane builds.
    kubernetes_patch: str
    # EKS managed add-ons, keyed by the add-on name EKS uses.
    addons: MappingProxyType[str, str]
    # Istio's charts (base, cni, istiod, gateway) share one version; each Istio minor supports
    # a window of Kubernetes minors, so it moves with the cluster.
    istio: str
    # The cluster autoscaler supports exactly the Kubernetes minor it is built for: its chart
    # version and the image tag of the same minor move with the cluster.
    cluster_autoscaler_chart: str
    cluster_autoscaler_image: str


def _minor(
    minor: str,
    patch: str,
    addons: dict[str, str],
    istio: str,
    autoscaler: tuple[str, str],
) -> MinorVersions:
    return MinorVersions(
        minor=minor,
        kubernetes_patch=patch,
        addons=MappingProxyType(addons),
        istio=istio,
        cluster_autoscaler_chart=autoscaler[0],
        cluster_autoscaler_image=autoscaler[1],
    )


ISTIO_CHARTS: Final = "https://istio-release.storage.googleapis.com/charts"
CLUSTER_AUTOSCALER_CHARTS: Final = "https://kubernetes.github.io/autoscaler"


ADDON_NAMES: Final = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")

VERSIONS: Final[MappingProxyType[str, MinorVersions]] = MappingProxyType(
    {
        "1.32": _minor(
            "1.32",
            "v1.32.0",
            {
                "vpc-cni": "v1.19.2-eksbuild.1",
                "coredns": "v1.11.4-eksbuild.2",
                "kube-proxy": "v1.32.0-eksbuild.2",
                "aws-ebs-csi-driver": "v1.38.1-eksbuild.2",
            },
            "1.26.0",
            ("9.46.6", "v1.32.1"),
        ),
        "1.33": _minor(
            "1.33",
            "v1.33.0",
            {
                "vpc-cni": "v1.19.5-eksbuild.1",
                "coredns": "v1.12.1-eksbuild.2",
                "kube-proxy": "v1.33.0-eksbuild.2",
                "aws-ebs-csi-driver": "v1.44.0-eksbuild.1",
            },
            "1.27.0",
            ("9.47.0", "v1.33.0"),
        ),
        "1.34": _minor(
            "1.34",
            "v1.34.0",
            {
                "vpc-cni": "v1.20.1-eksbuild.3",
                "coredns": "v1.12.3-eksbuild.1",
                "kube-proxy": "v1.34.0-eksbuild.2",
                "aws-ebs-csi-driver": "v1.48.0-eksbuild.2",
            },
            "1.28.0",
            ("9.50.1", "v1.34.0"),
        ),
        "1.35": _minor(
            "1.35",
            "v1.35.0",
            {
                "vpc-cni": "v1.20.4-eksbuild.2",
                "coredns": "v1.12.4-eksbuild.1",
                "kube-proxy": "v1.35.0-eksbuild.2",
                "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
            },
            "1.29.0",
            ("9.53.0", "v1.35.0"),
        ),
    }
)

SUPPORTED_MINORS: Final = tuple(VERSIONS)


@dataclass(frozen=True)
class Chart:
    """A pinned Helm chart: where it comes from and which version."""

    repository: str
    name: str
    version: str


# Charts whose releases do not follow the Kubernetes minor. Verify a bump with
# `helm search repo <repo>/<name> --versions` and the chart's supported kubeVersion range.
CHARTS: Final = MappingProxyType(
    {
        "kube-prometheus-stack": Chart(
            "https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "65.0.0"
        ),
        "prometheus-adapter": Chart(
            "https://prometheus-community.github.io/helm-charts", "prometheus-adapter", "4.10.0"
        ),
        # redis_exporter for ElastiCache (no in-pod exporter there); the chart pins the image.
        "prometheus-redis-exporter": Chart(
            "https://prometheus-community.github.io/helm-charts",
            "prometheus-redis-exporter",
            "6.8.0",
        ),
        "opentelemetry-collector": Chart(
            "https://open-telemetry.github.io/opentelemetry-helm-charts",
            "opentelemetry-collector",
            "0.108.0",
        ),
        "jaeger": Chart("https://jaegertracing.github.io/helm-charts", "jaeger", "3.3.1"),
        "vault": Chart("https://helm.releases.hashicorp.com", "vault", "0.28.1"),
        "redis": Chart("oci://registry-1.docker.io/bitnamicharts", "redis", "20.1.0"),
        "metrics-server": Chart(
            "https://kubernetes-sigs.github.io/metrics-server", "metrics-server", "3.12.2"
        ),
        "nvidia-device-plugin": Chart(
            "https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.17.0"
        ),
        # The log shipper (infra/layers/logs.py); its image tag is pinned below.
        "fluent-bit": Chart("https://fluent.github.io/helm-charts", "fluent-bit", "0.47.10"),
    }
)

# Fluent Bit's image tag, pinned apart from the chart's appVersion so a chart bump never moves
# the shipper by itself. Like the chart versions above, written down offline and not verified
# against the registry here: check with `helm show chart fluent/fluent-bit --version 0.47.10`
# (appVersion) before a deploy.
FLUENT_BIT_IMAGE: Final = "3.1.9"


@dataclass(frozen=True)
class Analyzer:
    """A third-party analyzer the tests build from the Go module proxy (scripts/ensure-go-tool)."""

    module: str
    version: str
    package: str


# The independent evaluators of the flow table (tests/flows). The proxy serves Istio only as
# pseudo-versions of its main branch, not at release tags (1.27.0 is refused): istioctl is pinned
# to the served commit nearest the stacks' Istio minor; its analyzers read 1.27 config unchanged.
ANALYZERS: Final = MappingProxyType(
    {
        "netpol": Analyzer(
            "github.com/np-guard/netpol-analyzer",
            "v1.4.2",
            "github.com/np-guard/netpol-analyzer/cmd/netpolicy",
        ),
        "istioctl": Analyzer(
            "istio.io/istio",
            "v0.0.0-20260423205519-b01690e6db7d",
            "istio.io/istio/istioctl/cmd/istioctl",
        ),
    }
)

# RDS for PostgreSQL engine versions a stack may name in `database.engineVersion` (the first is
# the default). Full minor versions: RDS upgrades minors only when told (autoMinorVersionUpgrade
# is off), so the plan shows every engine change. Written down offline; check with
# `aws rds describe-db-engine-versions --engine postgres` before a deploy.
POSTGRES_ENGINE_VERSIONS: Final = ("16.4", "15.8")
# The local stack's in-cluster PostgreSQL (infra/layers/database.py): the official image at the
# exact tag of each engine version above (Alpine: the server runs as uid/gid 70, `postgres`).
POSTGRES_IMAGE: Final = "docker.io/library/postgres"
POSTGRES_IMAGE_TAGS: Final = MappingProxyType(
    {"16.4": "16.4-alpine3.20", "15.8": "15.8-alpine3.20"}
)
POSTGRES_IMAGE_UID: Final = 70

# Version of the Pod Security Standards the namespaces enforce. Pinned on its own, not to the
# cluster's minor: a Kubernetes upgrade must never change admission policy as a side effect.
POD_SECURITY_STANDARD: Final = "v1.32"


def minor_key(minor: str) -> tuple[int, int]:
    """`"1.33"` → `(1, 33)`, so minors compare numerically."""
    major, _, rest = minor.partition(".")
    return int(major), int(rest)


def for_minor(minor: str) -> MinorVersions:
    """The pinned versions of a supported minor; KeyError names the supported ones."""
    try:
        return VERSIONS[minor]
    except KeyError:
        raise KeyError(
            f"Kubernetes {minor} is not in the version table; supported: "
            f"{', '.join(SUPPORTED_MINORS)}"
        ) from None
