"""Who may read what in Vault: one policy and one Kubernetes-auth role per runtime identity.

An identity reads its own subtree (`secret_prefix`) and, besides, exactly the KV entries its
pods' injected files come from (`Workload.secret_files`): the shared runtime tokens and the
Redis password. The list of files is the one source; the policy follows it.

Besides, only its own token: lookup-self and renew-self (the runtime's client and the injected
Vault Agent keep their login alive with them). The roles give no `default` policy
(`token_no_default_policy`), so an identity's token can use no `sys/` path at all:
tests/runtime/secrets/test_kubernetes_auth.py shows it on a real OpenBao.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.config import PlatformConfig
from contracts.database import credentials_path
from infra.platform.names import Namespace, pool_workload
from infra.platform.runtime_secrets import REDIS_SECRET_PATH, secret_prefix
from infra.platform.workloads import runtime_workloads, tool_server_workloads

__all__ = [
    "REDIS_SECRET_PATH",
    "TRANSIT_MOUNT",
    "VAULT_AUDIENCE",
    "VaultIdentity",
    "secret_prefix",
    "vault_identities",
]

# The audience of the projected token the pods mount for Vault (see the agents layer).
VAULT_AUDIENCE = "vault"
# Encryption as a service: each identity has one key, named after it, that only it may use.
TRANSIT_MOUNT = "transit"


@dataclass(frozen=True)
class VaultIdentity:
    name: str  # service account, Vault role and policy share it
    namespace: Namespace
    policy: str  # HCL
    # KV paths (under the mount) outside its own subtree that the identity reads.
    shared_paths: tuple[str, ...] = ()


def _policy(
    mount: str, own: str, shared: tuple[str, ...], identity: str, database: str | None = None
) -> str:
    # KV v2 separates data (read) from metadata (list, version ages for the rotation check).
    lines = [
        f'path "{mount}/data/{own}/*" {{ capabilities = ["read"] }}',
        f'path "{mount}/metadata/{own}/*" {{ capabilities = ["read", "list"] }}',
        # Application data is encrypted by Vault, under the identity's own key only.
        f'path "{TRANSIT_MOUNT}/encrypt/{identity}" {{ capabilities = ["update"] }}',
        f'path "{TRANSIT_MOUNT}/decrypt/{identity}" {{ capabilities = ["update"] }}',
        # Its own token only (the roles attach no `default` policy).
        'path "auth/token/lookup-self" { capabilities = ["read"] }',
        'path "auth/token/renew-self" { capabilities = ["update"] }',
    ]
    lines += [f'path "{mount}/data/{path}" {{ capabilities = ["read"] }}' for path in shared]
    if database is not None:
        # Its own database role's logins (a new lease per read), no other pool's.
        lines.append(f'path "{database}" {{ capabilities = ["read"] }}')
    return "\n".join([*lines, ""])


def vault_identities(cfg: PlatformConfig) -> list[VaultIdentity]:
    mount = cfg.vault.kv_mount
    databases = {pool_workload(p): credentials_path(p) for p in cfg.database_pools()}
    found = []
    for w in [*runtime_workloads(cfg), *tool_server_workloads(cfg)]:
        if not w.owns_service:
            continue  # a second track shares the first one's service account
        own = secret_prefix(w.identity, w.namespace)
        shared = tuple(
            sorted({f.kv_path for f in w.secret_files if not f.kv_path.startswith(f"{own}/")})
        )
        found.append(
            VaultIdentity(
                name=w.identity,
                namespace=w.namespace,
                policy=_policy(mount, own, shared, w.identity, databases.get(w.identity)),
                shared_paths=shared,
            )
        )
    return found
