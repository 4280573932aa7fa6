"""How the runtime's secrets reach its pods: Vault KV paths, the files the Vault Agent Injector
renders from them, and the pod annotations that ask for it.

A runtime service never gets a secret as an environment value: its settings name files
(`AGENTOPS_*_FILE`), and the injector writes those files into its own in-memory volume at
`/vault/secrets`, reading Vault with the pod's Kubernetes-auth role. The KV paths here are the
single list of what each identity reads: `vault_access` derives each Vault policy from the
same `SecretFile`s, so a pod can read exactly the files it is given.

Injector mode: init container plus sidecar (not `agent-pre-populate-only`). The init container
renders every file before the service starts (the services refuse to start without their
tokens); the sidecar keeps them current afterwards, because the services' bearer-token check
re-reads its file when it changes (runtime/service/auth.py): a token added to a KV entry is
accepted within one render interval, without restarting the pods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from contracts.config.agents import KV_PLATFORM_AREA, KV_POOLS_AREA, cpu_millis, memory_bytes
from infra.platform.names import MANAGER, Namespace

__all__ = [
    "AGENT_TOKEN",
    "AUTH_MOUNT",
    "CA_CONFIGMAP",
    "COST_ENGINE_TOKEN",
    "MANAGER_API_TOKENS",
    "MANAGER_WEBHOOK_TOKEN",
    "PLATFORM_AREA",
    "POOLS_AREA",
    "PROVIDER_KEY_FILE",
    "REDIS_SECRET_PATH",
    "SECRETS_DIR",
    "VAULT_ADDRESS",
    "VAULT_AGENT_RESOURCES",
    "VAULT_API_PORT",
    "VAULT_CA_DIR",
    "VAULT_CA_FILE",
    "VAULT_CLUSTER_PORT",
    "VAULT_MESH_ADDRESS",
    "VAULT_RELEASE",
    "VAULT_TOKEN_DIR",
    "VAULT_TOKEN_FILE",
    "VAULT_TOKEN_VOLUME",
    "SecretFile",
    "injector_annotations",
    "secret_prefix",
    "vault_address",
]

# The Vault Helm release and its API: the Service `vault` in namespace `vault` fronts every raft
# peer (a standby forwards to the leader), and the server certificate names `vault.vault.svc`.
VAULT_RELEASE: Final = "vault"
VAULT_API_PORT: Final = 8200
# Raft and request forwarding between the servers (Vault's own mutual TLS, outside the mesh).
VAULT_CLUSTER_PORT: Final = 8201
VAULT_ADDRESS: Final = f"https://{VAULT_RELEASE}.{Namespace.VAULT.value}.svc:{VAULT_API_PORT}"
# In the mesh the servers' listener is plaintext behind their sidecars: the client's sidecar
# carries the request over the mesh's mTLS, and Vault's sidecar authorizes it by path.
VAULT_MESH_ADDRESS: Final = f"http://{VAULT_RELEASE}.{Namespace.VAULT.value}.svc:{VAULT_API_PORT}"


def vault_address(mesh: bool) -> str:
    return VAULT_MESH_ADDRESS if mesh else VAULT_ADDRESS


# The Kubernetes auth method's mount (the vault layer enables it there).
AUTH_MOUNT: Final = "kubernetes"
# The CA that signs Vault's certificate: a ConfigMap (no secret in it) the vault layer writes into
# each runtime namespace, mounted read-only into the service and the injected agent containers.
CA_CONFIGMAP: Final = "vault-ca"
VAULT_CA_DIR: Final = "/etc/agentops/vault-ca"
VAULT_CA_FILE: Final = f"{VAULT_CA_DIR}/ca.crt"
# The projected service-account token with audience "vault": the Kubernetes-auth login of both
# the injected agent and the runtime's own Vault client (runtime/secrets).
VAULT_TOKEN_VOLUME: Final = "vault-token"  # noqa: S105 - a volume name
VAULT_TOKEN_DIR: Final = "/var/run/secrets/vault"  # noqa: S105 - a mount path
VAULT_TOKEN_FILE: Final = f"{VAULT_TOKEN_DIR}/token"
# Where the injector mounts its shared in-memory volume in every container of the pod. The root
# filesystem stays read-only: the agent writes only there.
SECRETS_DIR: Final = "/vault/secrets"

# KV v2 paths (under the stack's `vault.kvMount`).
# The KV areas: the platform services' and shared runtime secrets, and the pools' own subtrees.
PLATFORM_AREA: Final = KV_PLATFORM_AREA
POOLS_AREA: Final = KV_POOLS_AREA
REDIS_SECRET_PATH: Final = f"{PLATFORM_AREA}/redis"
# Shared between services: the token workers present to the manager's agent API, and the one
# they present to the cost engine. The program generates both (vault layer).
_SHARED = f"{PLATFORM_AREA}/runtime"
AGENT_TOKEN: Final = f"{_SHARED}/agent-token"
COST_ENGINE_TOKEN: Final = f"{_SHARED}/cost-engine-token"


def secret_prefix(identity: str, namespace: Namespace) -> str:
    """The KV subtree an identity owns: its API keys and provider credentials live here."""
    area = POOLS_AREA if namespace is Namespace.AGENTS else PLATFORM_AREA
    return f"{area}/{identity}"


# The manager's own: task submitters' tokens, and the token Alertmanager presents on its webhook.
MANAGER_API_TOKENS: Final = f"{secret_prefix(MANAGER, Namespace.PLATFORM)}/api-tokens"
MANAGER_WEBHOOK_TOKEN: Final = f"{secret_prefix(MANAGER, Namespace.PLATFORM)}/alertmanager-webhook"

# The injected agent's requests and limits (init container and sidecar alike). Small: it renders
# a few files and renews one Vault token. The namespace quotas add them per replica.
# Its files go to an in-memory emptyDir (counted as memory); on disk it writes only its logs,
# which the kubelet rotates at 10Mi × 5 files.
VAULT_AGENT_RESOURCES: Final = {
    "requests": {"cpu": "25m", "memory": "32Mi", "ephemeral": "64Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi", "ephemeral": "64Mi"},
}
VAULT_AGENT_CPU_REQUEST_MILLIS: Final = cpu_millis(VAULT_AGENT_RESOURCES["requests"]["cpu"])
VAULT_AGENT_CPU_LIMIT_MILLIS: Final = cpu_millis(VAULT_AGENT_RESOURCES["limits"]["cpu"])
VAULT_AGENT_MEMORY_REQUEST_BYTES: Final = memory_bytes(VAULT_AGENT_RESOURCES["requests"]["memory"])
VAULT_AGENT_MEMORY_LIMIT_BYTES: Final = memory_bytes(VAULT_AGENT_RESOURCES["limits"]["memory"])
# How often the sidecar re-reads static KV entries: a token added for a rotation is accepted
# within this long.
_RENDER_INTERVAL = "1m"
_PREFIX = "vault.hashicorp.com"


# The file an llm pool's worker reads its provider's API key from (one field of its KV entry).
PROVIDER_KEY_FILE: Final = "provider-key"


@dataclass(frozen=True)
class SecretFile:
    """One file the injector renders into `SECRETS_DIR` from one KV entry."""

    name: str  # the file's name, also the annotation suffix: a DNS-label-like word
    kv_path: str  # under the KV mount
    # The entry's field the file holds (a token the service presents). None: every value of the
    # entry, one a line (tokens the service accepts): during a rotation the entry holds the old
    # and the new token under two keys, and both are valid until the old key is removed.
    key: str | None

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.name}"

    def template(self, kv_mount: str) -> str:
        read = f'{{{{ with secret "{kv_mount}/data/{self.kv_path}" }}}}'
        if self.key is not None:
            return f"{read}{{{{ .Data.data.{self.key} }}}}{{{{ end }}}}"
        return f"{read}{{{{ range $k, $v := .Data.data }}}}{{{{ $v }}}}\n{{{{ end }}}}{{{{ end }}}}"


def injector_annotations(
    role: str, files: tuple[SecretFile, ...], kv_mount: str, run_as: int, mesh: bool
) -> dict[str, str]:
    """Pod annotations that make the Vault Agent Injector render `files` for `role`.

    Pod Security "restricted" holds for the injected containers: the injector sets their
    security context (non-root, read-only root, no privilege escalation, all capabilities
    dropped) and the pod's RuntimeDefault seccomp profile applies to them.
    """
    ca_mount = [
        {
            "op": "add",
            "path": "/volumeMounts/-",
            "value": {"name": CA_CONFIGMAP, "mountPath": VAULT_CA_DIR, "readOnly": True},
        }
    ]
    annotations = {
        f"{_PREFIX}/agent-inject": "true",
        f"{_PREFIX}/role": role,
        f"{_PREFIX}/auth-path": f"auth/{AUTH_MOUNT}",
        f"{_PREFIX}/service": vault_address(mesh),
        # Log in with the projected token of audience "vault" (the role requires it): the pods
        # mount no default service-account token.
        f"{_PREFIX}/agent-service-account-token-volume-name": VAULT_TOKEN_VOLUME,
        f"{_PREFIX}/agent-json-patch": json.dumps(ca_mount),
        f"{_PREFIX}/agent-init-json-patch": json.dumps(ca_mount),
        # The service's own uid and gid: the files are 0400 and readable by it alone.
        f"{_PREFIX}/agent-run-as-user": str(run_as),
        f"{_PREFIX}/agent-run-as-group": str(run_as),
        f"{_PREFIX}/agent-requests-cpu": VAULT_AGENT_RESOURCES["requests"]["cpu"],
        f"{_PREFIX}/agent-requests-mem": VAULT_AGENT_RESOURCES["requests"]["memory"],
        f"{_PREFIX}/agent-limits-cpu": VAULT_AGENT_RESOURCES["limits"]["cpu"],
        f"{_PREFIX}/agent-limits-mem": VAULT_AGENT_RESOURCES["limits"]["memory"],
        f"{_PREFIX}/agent-requests-ephemeral": VAULT_AGENT_RESOURCES["requests"]["ephemeral"],
        f"{_PREFIX}/agent-limits-ephemeral": VAULT_AGENT_RESOURCES["limits"]["ephemeral"],
        f"{_PREFIX}/template-static-secret-render-interval": _RENDER_INTERVAL,
    }
    for f in files:
        annotations[f"{_PREFIX}/agent-inject-secret-{f.name}"] = f"{kv_mount}/data/{f.kv_path}"
        annotations[f"{_PREFIX}/agent-inject-template-{f.name}"] = f.template(kv_mount)
        annotations[f"{_PREFIX}/agent-inject-perms-{f.name}"] = "0400"
    if mesh:
        # Vault is reached through the mesh (its sidecar authorizes each path), so the agent's
        # init container needs the pod's proxy up: Istio's native sidecar (an init container
        # with restartPolicy Always, placed before the others and started first). The injector
        # must keep appending its init container (`agent-init-first` unset), after the proxy.
        annotations["sidecar.istio.io/nativeSidecar"] = "true"
    else:
        # Verify Vault with the platform's CA, mounted from the ConfigMap into the agent
        # containers (copying the service's mounts would mount the token volume twice).
        annotations[f"{_PREFIX}/ca-cert"] = VAULT_CA_FILE
    return annotations
