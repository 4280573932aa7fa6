"""Who may read what in Vault: one policy and one Kubernetes-auth role per runtime identity."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import PlatformConfig
from infra.platform.names import Namespace
from infra.platform.workloads import runtime_workloads

__all__ = [
    "REDIS_SECRET_PATH",
    "VAULT_AUDIENCE",
    "VaultIdentity",
    "secret_prefix",
    "vault_identities",
]

# The audience of the projected token the pods mount for Vault (see the agents layer).
VAULT_AUDIENCE = "vault"
REDIS_SECRET_PATH = "platform/redis"  # noqa: S105 - a KV path, not a value


def secret_prefix(identity: str, namespace: Namespace) -> str:
    """The KV subtree an identity owns: its API keys and provider credentials live here."""
    area = "pools" if namespace is Namespace.AGENTS else "platform"
    return f"{area}/{identity}"


@dataclass(frozen=True)
class VaultIdentity:
    name: str  # service account, Vault role and policy share it
    namespace: Namespace
    policy: str  # HCL


def _policy(mount: str, own: str) -> str:
    # KV v2 separates data (read) from metadata (list, version ages for the rotation check).
    return "\n".join(
        [
            f'path "{mount}/data/{own}/*" {{ capabilities = ["read"] }}',
            f'path "{mount}/metadata/{own}/*" {{ capabilities = ["read", "list"] }}',
            f'path "{mount}/data/{REDIS_SECRET_PATH}" {{ capabilities = ["read"] }}',
            "",
        ]
    )


def vault_identities(cfg: PlatformConfig) -> list[VaultIdentity]:
    mount = cfg.vault.kv_mount
    return [
        VaultIdentity(
            name=w.identity,
            namespace=w.namespace,
            policy=_policy(mount, secret_prefix(w.identity, w.namespace)),
        )
        for w in runtime_workloads(cfg)
        if w.owns_service
    ]
