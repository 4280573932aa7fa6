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
from infra.platform.runtime_secrets import AUTH_MOUNT, REDIS_SECRET_PATH, secret_prefix
from infra.platform.workloads import runtime_workloads, tool_server_workloads

__all__ = [
    "REDIS_SECRET_PATH",
    "TRANSIT_MOUNT",
    "VAULT_AUDIENCE",
    "ApiOperation",
    "VaultIdentity",
    "secret_prefix",
    "vault_identities",
]

# The audience of the projected token the pods mount for Vault (see the agents layer).
VAULT_AUDIENCE = "vault"
# Encryption as a service: each identity has one key, named after it, that only it may use.
TRANSIT_MOUNT = "transit"


@dataclass(frozen=True)
class ApiOperation:
    """HTTP requests on Vault's API an identity makes: what the mesh lets through to Vault
    (infra/platform/flows.py), derived from the same paths as its policy."""

    methods: tuple[str, ...]
    paths: tuple[str, ...]


# Vault's HTTP verbs per ACL capability (https://developer.hashicorp.com/vault/api-docs):
# read is GET, list is LIST (or GET with ?list=true), update is PUT or POST.
_VERBS = {"read": ("GET",), "list": ("GET", "LIST"), "update": ("POST", "PUT")}


@dataclass(frozen=True)
class VaultIdentity:
    name: str  # service account, Vault role and policy share it
    namespace: Namespace
    policy: str  # HCL
    # KV paths (under the mount) outside its own subtree that the identity reads.
    shared_paths: tuple[str, ...] = ()
    # Its HTTP requests on Vault's API: the Kubernetes-auth login and its policy's paths.
    operations: tuple[ApiOperation, ...] = ()


def _grants(
    mount: str, own: str, shared: tuple[str, ...], identity: str, database: str | None = None
) -> list[tuple[str, str]]:
    """(path, capability) of everything the identity may do: its policy and its API calls."""
    # KV v2 separates data (read) from metadata (list, version ages for the rotation check).
    return [
        (f"{mount}/data/{own}/*", "read"),
        (f"{mount}/metadata/{own}/*", "read"),
        (f"{mount}/metadata/{own}/*", "list"),
        # Application data is encrypted by Vault, under the identity's own key only.
        (f"{TRANSIT_MOUNT}/encrypt/{identity}", "update"),
        (f"{TRANSIT_MOUNT}/decrypt/{identity}", "update"),
        # Its own token only (the roles attach no `default` policy).
        ("auth/token/lookup-self", "read"),
        ("auth/token/renew-self", "update"),
        *((f"{mount}/data/{path}", "read") for path in shared),
        # Its own database role's logins (a new lease per read), no other pool's.
        *(((database, "read"),) if database is not None else ()),
    ]


def _policy(grants: list[tuple[str, str]]) -> str:
    capabilities: dict[str, list[str]] = {}
    for path, capability in grants:
        capabilities.setdefault(path, []).append(capability)
    lines = [
        f'path "{path}" {{ capabilities = [{", ".join(f"{c!r}" for c in caps)}] }}'.replace(
            "'", '"'
        )
        for path, caps in capabilities.items()
    ]
    return "\n".join([*lines, ""])


def _operations(grants: list[tuple[str, str]]) -> tuple[ApiOperation, ...]:
    """Per verb set, the API paths (`/v1/<path>`); the Kubernetes-auth login first (a write:
    Vault's clients, the injected agent's included, send it as PUT or POST)."""
    login = f"/v1/auth/{AUTH_MOUNT}/login"
    by_verbs: dict[tuple[str, ...], list[str]] = {_VERBS["update"]: [login]}
    for path, capability in grants:
        paths = by_verbs.setdefault(_VERBS[capability], [])
        api = [f"/v1/{path}"]
        if capability == "list" and path.endswith("/*"):
            # A list names the folder itself (`LIST /v1/<mount>/metadata/<own>`, no slash):
            # Vault adds the slash that its policy glob then matches, the mesh sees it bare.
            api.append(f"/v1/{path.removesuffix('/*')}")
        paths.extend(a for a in api if a not in paths)
    return tuple(ApiOperation(verbs, tuple(paths)) for verbs, paths in by_verbs.items())


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
        grants = _grants(mount, own, shared, w.identity, databases.get(w.identity))
        found.append(
            VaultIdentity(
                name=w.identity,
                namespace=w.namespace,
                policy=_policy(grants),
                shared_paths=shared,
                operations=_operations(grants),
            )
        )
    return found
