"""How much each namespace may use: quotas derived from the workloads the config declares."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.config import PlatformConfig, RedisMode
from contracts.config.agents import ResourcesConfig, cpu_millis, memory_bytes
from infra.platform.names import Namespace
from infra.platform.runtime_secrets import (
    VAULT_AGENT_CPU_LIMIT_MILLIS,
    VAULT_AGENT_CPU_REQUEST_MILLIS,
    VAULT_AGENT_MEMORY_LIMIT_BYTES,
    VAULT_AGENT_MEMORY_REQUEST_BYTES,
)

__all__ = ["Quota", "quotas"]

# Room above the declared peak for rolling updates (maxSurge) and one-off Jobs.
_HEADROOM = 1.25
_MIB = 1 << 20


@dataclass(frozen=True)
class Quota:
    cpu_request_millis: int
    cpu_limit_millis: int
    memory_request_bytes: int
    memory_limit_bytes: int
    pods: int

    def hard(self) -> dict[str, str]:
        return {
            "requests.cpu": f"{self.cpu_request_millis}m",
            "limits.cpu": f"{self.cpu_limit_millis}m",
            "requests.memory": f"{self.memory_request_bytes // _MIB}Mi",
            "limits.memory": f"{self.memory_limit_bytes // _MIB}Mi",
            "pods": str(self.pods),
        }


# What the Vault agent sidecar injected into every runtime pod adds to it (its init container
# asks the same, and a pod's init containers count only up to the sum of its containers).
_VAULT_AGENT = {
    "cpu_request": VAULT_AGENT_CPU_REQUEST_MILLIS,
    "cpu_limit": VAULT_AGENT_CPU_LIMIT_MILLIS,
    "memory_request": VAULT_AGENT_MEMORY_REQUEST_BYTES,
    "memory_limit": VAULT_AGENT_MEMORY_LIMIT_BYTES,
}


def _sum(workloads: list[tuple[int, ResourcesConfig, bool]]) -> Quota:
    """Quota for `(replicas, resources, has the Vault agent)` workloads, with headroom."""

    def total(pick: str) -> int:
        parse = cpu_millis if pick.startswith("cpu") else memory_bytes
        return int(
            sum(
                n * (parse(getattr(r, pick)) + (_VAULT_AGENT[pick] if vault else 0))
                for n, r, vault in workloads
            )
            * _HEADROOM
        )

    pods = int(sum(n for n, _, _ in workloads) * _HEADROOM) + 1
    return Quota(
        cpu_request_millis=total("cpu_request"),
        cpu_limit_millis=total("cpu_limit"),
        memory_request_bytes=total("memory_request"),
        memory_limit_bytes=total("memory_limit"),
        pods=pods,
    )


def quotas(cfg: PlatformConfig) -> dict[Namespace, Quota]:
    """The quota of every namespace the stack creates.

    The runtime's are derived from its workloads, agent pools at their HPA maximum (the quota
    must never be what stops a scale-up); the charts' come from config.
    """
    agents = cfg.agents
    charted = {
        Namespace.MESH: (cfg.mesh.enabled, cfg.mesh.namespace_quota),
        Namespace.MONITORING: (cfg.monitoring.enabled, cfg.monitoring.namespace_quota),
        Namespace.VAULT: (cfg.vault.enabled, cfg.vault.namespace_quota),
    }
    result = {
        ns: Quota(
            cpu_request_millis=cpu_millis(q.cpu),
            cpu_limit_millis=cpu_millis(q.cpu),
            memory_request_bytes=memory_bytes(q.memory),
            memory_limit_bytes=memory_bytes(q.memory),
            pods=q.pods,
        )
        for ns, (enabled, q) in charted.items()
        if enabled
    }
    platform = [
        (agents.manager.replicas, agents.manager.resources, True),
        (agents.cost_engine.replicas, agents.cost_engine.resources, True),
    ]
    if cfg.redis.mode is RedisMode.IN_CLUSTER:
        redis = cfg.redis.in_cluster
        # Primary + replicas; Sentinel runs as a sidecar of each and is counted with them.
        platform.append((1 + redis.replicas, redis.resources, False))
    return result | {
        Namespace.PLATFORM: _sum(platform),
        Namespace.AGENTS: _sum([(p.max_replicas, p.resources, True) for p in agents.pools]),
    }
