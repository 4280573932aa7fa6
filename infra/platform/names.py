"""Namespaces, service accounts and labels of the platform: spelled here only."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from contracts.config import PlatformConfig
from contracts.config.agents import pool_identity

__all__ = [
    "APP_LABEL",
    "COMPONENT_LABEL",
    "COST_ENGINE",
    "DATABASE_SERVICE",
    "MANAGER",
    "PART_OF",
    "PART_OF_LABEL",
    "POD_SECURITY",
    "POOL_LABEL",
    "TOOL_SERVER_LABEL",
    "Namespace",
    "PodSecurity",
    "database_namespace",
    "enabled_namespaces",
    "pool_workload",
    "tool_server_workload",
]


class Namespace(StrEnum):
    PLATFORM = "agentops-platform"
    AGENTS = "agentops-agents"
    MESH = "istio-system"
    MONITORING = "monitoring"
    VAULT = "vault"


class PodSecurity(StrEnum):
    RESTRICTED = "restricted"
    BASELINE = "baseline"
    PRIVILEGED = "privileged"


# Pod Security Admission level each namespace enforces, and why where it is not restricted.
POD_SECURITY: Final = {
    Namespace.PLATFORM: PodSecurity.RESTRICTED,
    Namespace.AGENTS: PodSecurity.RESTRICTED,
    # The Vault chart's pods need IPC_LOCK unless mlock is disabled; baseline admits it.
    Namespace.VAULT: PodSecurity.BASELINE,
    # node-exporter reads the host's /proc and /sys through hostPath and hostNetwork.
    Namespace.MONITORING: PodSecurity.PRIVILEGED,
    # The Istio CNI DaemonSet rewrites pod networking on each node (privileged by design),
    # which is what lets every injected workload elsewhere stay restricted.
    Namespace.MESH: PodSecurity.PRIVILEGED,
}


MANAGER: Final = "agent-manager"
# The Service name of the platform database: in the agents namespace an ExternalName to RDS
# (AWS stacks); in the platform namespace, beside Redis, the in-cluster server (local stack).
DATABASE_SERVICE: Final = "database"
COST_ENGINE: Final = "cost-engine"
PART_OF: Final = "agentops"

APP_LABEL: Final = "app.kubernetes.io/name"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
POOL_LABEL: Final = "agentops.io/agent-type"
# On an MCP tool server's pods and Service: its name in `agents.toolServers`.
TOOL_SERVER_LABEL: Final = "agentops.io/tool-server"


def enabled_namespaces(cfg: PlatformConfig) -> list[Namespace]:
    """The namespaces this stack creates: the runtime's, plus those of enabled layers."""
    enabled = {
        Namespace.PLATFORM: True,
        Namespace.AGENTS: True,
        Namespace.MESH: cfg.mesh.enabled,
        Namespace.MONITORING: cfg.monitoring.enabled,
        Namespace.VAULT: cfg.vault.enabled,
    }
    return [ns for ns, on in enabled.items() if on]


def tool_server_workload(server: str) -> str:
    """Deployment, Service and ServiceAccount name of an MCP tool server."""
    return f"mcp-{server}"


def pool_workload(pool: str) -> str:
    """Deployment, Service and ServiceAccount name of an agent pool."""
    return pool_identity(pool)


def database_namespace(cfg: PlatformConfig) -> Namespace:
    """Where the `database` Service is: RDS's name in the agents namespace, the local stack's
    in-cluster server in the platform namespace."""
    return Namespace.AGENTS if cfg.on_aws else Namespace.PLATFORM
