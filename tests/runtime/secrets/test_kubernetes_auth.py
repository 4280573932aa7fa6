"""Kubernetes auth end to end: a real API server issues the service-account tokens, a real
OpenBao reviews them through it, and the runtime's client gets exactly its policy's secrets.

Vault is configured as the Vault layer configures it (infra/layers/vault.py): KV v2 at the
stack's mount, one policy per runtime identity with the text `vault_identities` renders for
the staging stack, one role per identity bound to its service account and namespace with the
audience "vault". The API server is the session's control plane (tests/kubeapi.py).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import hvac
import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from contracts.config import PlatformConfig, load_from_mapping
from infra.plan.istio_authz import Decision
from infra.platform.names import Namespace
from infra.platform.vault_access import (
    REDIS_SECRET_PATH,
    TRANSIT_MOUNT,
    VAULT_AUDIENCE,
    VaultIdentity,
    secret_prefix,
    vault_identities,
)
from runtime.secrets import (
    AuditTrail,
    LoginFailed,
    PermissionDenied,
    RecentAudit,
    SecretNotFound,
    SecretsClient,
    VaultSettings,
)
from tests.kubeapi import ControlPlane
from tests.runtime.secrets.bao import root_hvac
from tests.servers import BaoServer, bao_server
from tests.stacks import stack_values
from tests.vault_mesh import generated_mesh, recording_proxy, vault_decision

# The Vault layer's own service account reviews tokens (its Helm chart binds it to
# system:auth-delegator); the test gives the same name the same right.
REVIEWER = ("vault", "vault")


@dataclass
class Setup:
    cfg: PlatformConfig
    vault: BaoServer
    kube: ControlPlane
    identities: dict[str, VaultIdentity]

    def identity(self, name: str) -> VaultIdentity:
        return self.identities[name]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _ensure(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as err:
        if err.status != 409:  # already there (another test, or the plans' apply)
            raise


def _service_account(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> None:
    _ensure(
        core.create_namespace,
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace)),
    )
    _ensure(
        core.create_namespaced_service_account,
        namespace,
        kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
    )
    # The service-account admission needs the account to exist in its cache before it issues
    # tokens for it; the create above returns before that.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account(name, namespace)
            return
        except ApiException as err:
            if err.status != 404:
                raise
        time.sleep(0.1)


def request_token(
    kube: ControlPlane, namespace: str, name: str, audiences: list[str] | None = None
) -> str:
    """A TokenRequest for the service account, as the kubelet makes for a projected token."""
    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        _service_account(core, namespace, name)
        spec = kubernetes.client.V1TokenRequestSpec(
            audiences=audiences if audiences is not None else [VAULT_AUDIENCE],
            expiration_seconds=600,
        )
        body = kubernetes.client.AuthenticationV1TokenRequest(spec=spec)
        answer = core.create_namespaced_service_account_token(name, namespace, body)
        assert answer.status is not None
        return str(answer.status.token)


def sign_jwt(header: dict[str, object], claims: dict[str, object], key: Path) -> str:
    """An RS256 JWT signed by `key` (openssl, as the fixture makes its keys)."""
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing_input}.{_b64url(signature)}"


def jwt_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, claims, _ = token.split(".")
    return json.loads(_unb64url(header)), json.loads(_unb64url(claims))


@pytest.fixture(scope="module")
def setup(kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    cfg = load_from_mapping(stack_values("staging"))
    identities = {i.name: i for i in vault_identities(cfg)}

    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        _service_account(core, *REVIEWER)
        _ensure(
            kubernetes.client.RbacAuthorizationV1Api(api).create_cluster_role_binding,
            kubernetes.client.V1ClusterRoleBinding(
                metadata=kubernetes.client.V1ObjectMeta(name="agentops-test-vault-tokenreview"),
                role_ref=kubernetes.client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name="system:auth-delegator",
                ),
                subjects=[
                    kubernetes.client.RbacV1Subject(
                        kind="ServiceAccount", name=REVIEWER[1], namespace=REVIEWER[0]
                    )
                ],
            ),
        )
    reviewer_jwt = request_token(kube, *REVIEWER, audiences=[])

    with bao_server(tmp_path_factory.mktemp("bao-kube")) as vault:
        root = root_hvac(vault)
        root.sys.enable_secrets_engine("kv", path=cfg.vault.kv_mount, options={"version": "2"})
        root.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
        root.sys.enable_auth_method("kubernetes", path="kubernetes")
        root.auth.kubernetes.configure(
            kubernetes_host=kube.url,
            kubernetes_ca_cert=kube.ca_path.read_text(),
            token_reviewer_jwt=reviewer_jwt,
            disable_local_ca_jwt=True,
        )
        for identity in identities.values():
            root.sys.create_or_update_policy(identity.name, identity.policy)
            # The role exactly as the Vault layer declares it.
            root.adapter.post(
                f"/v1/auth/kubernetes/role/{identity.name}",
                json={
                    "bound_service_account_names": [identity.name],
                    "bound_service_account_namespaces": [identity.namespace.value],
                    "audience": VAULT_AUDIENCE,
                    "token_policies": [identity.name],
                    "token_no_default_policy": True,
                    "token_ttl": 3600,
                    "token_max_ttl": 4 * 3600,
                },
            )
            # The key the Vault layer creates per identity.
            root.secrets.transit.create_key(identity.name, mount_point=TRANSIT_MOUNT)
            prefix = secret_prefix(identity.name, identity.namespace)
            root.secrets.kv.v2.create_or_update_secret(
                f"{prefix}/api",
                secret={"api_key": f"key-of-{identity.name}"},
                mount_point=cfg.vault.kv_mount,
            )
        root.secrets.kv.v2.create_or_update_secret(
            REDIS_SECRET_PATH, secret={"password": "redis-pass"}, mount_point=cfg.vault.kv_mount
        )
        yield Setup(cfg, vault, kube, identities)


def pod_client(
    setup: Setup,
    role: str,
    jwt: str,
    tmp_path: Path,
    recent: RecentAudit | None = None,
    address: str | None = None,
) -> SecretsClient:
    """The client as a pod builds it: settings from the environment's names, the token in the
    projected file."""
    token_file = tmp_path / "vault" / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(jwt)
    settings = VaultSettings(
        address=address or setup.vault.address,
        role=role,
        token_file=token_file,
        kv_mount=setup.cfg.vault.kv_mount,
        pod_name=f"{role}-5d8f7c9b6-q2xkz",
    )
    return SecretsClient.from_settings(settings, audit=AuditTrail([recent or RecentAudit()]))


MANAGER = "agent-manager"


def test_the_manager_reads_exactly_what_its_policy_allows(setup: Setup, tmp_path: Path) -> None:
    manager = setup.identity(MANAGER)
    recent = RecentAudit()
    jwt = request_token(setup.kube, manager.namespace.value, manager.name)
    client = pod_client(setup, MANAGER, jwt, tmp_path, recent)

    own = secret_prefix(manager.name, manager.namespace)
    assert client.read(f"{own}/api").value("api_key") == "key-of-agent-manager"
    assert client.read(REDIS_SECRET_PATH).value("password") == "redis-pass"
    assert client.list(own) == ["api"]
    assert client.metadata(f"{own}/api").current_version == 1

    for other in setup.identities.values():
        if other.name == MANAGER:
            continue
        path = f"{secret_prefix(other.name, other.namespace)}/api"
        with pytest.raises(PermissionDenied, match=f"read agents/{path}"):
            client.read(path)
    with pytest.raises(PermissionDenied):
        client.write(f"{own}/api", {"api_key": "self-issued"})
    with pytest.raises(PermissionDenied):
        client.list("platform")

    # Application data is encrypted under the identity's own transit key, no one else's.
    sealed = client.encrypt(MANAGER, b"conversation memory")
    assert client.decrypt(MANAGER, sealed) == b"conversation memory"
    with pytest.raises(PermissionDenied):
        client.encrypt("cost-engine", b"x")

    login = recent.records()[0]
    assert (login.operation, login.outcome, login.path) == (
        "login",
        "ok",
        "auth/kubernetes/login",
    )
    assert login.actor.role == MANAGER
    assert login.actor.service_account == f"{manager.namespace.value}/{manager.name}"
    assert login.actor.entity_id  # Vault made an entity for the service account
    assert set(login.actor.policies) == {MANAGER}
    assert all(r.pod == f"{MANAGER}-5d8f7c9b6-q2xkz" for r in recent.records())
    assert jwt not in "\n".join(r.to_json() for r in recent.records())


def test_each_identity_reads_its_own_secrets_only(setup: Setup, tmp_path: Path) -> None:
    for identity in setup.identities.values():
        jwt = request_token(setup.kube, identity.namespace.value, identity.name)
        client = pod_client(setup, identity.name, jwt, tmp_path / identity.name)
        own = f"{secret_prefix(identity.name, identity.namespace)}/api"
        assert client.read(own).value("api_key") == f"key-of-{identity.name}"
        if identity.name != MANAGER:
            manager = setup.identity(MANAGER)
            with pytest.raises(PermissionDenied):
                client.read(f"{secret_prefix(manager.name, manager.namespace)}/api")


def test_another_service_accounts_token_is_refused_for_the_managers_role(
    setup: Setup, tmp_path: Path
) -> None:
    cost = setup.identity("cost-engine")
    jwt = request_token(setup.kube, cost.namespace.value, cost.name)
    client = pod_client(setup, MANAGER, jwt, tmp_path)
    with pytest.raises(LoginFailed, match="service account name not authorized"):
        client.read(f"platform/{MANAGER}/api")


def test_a_token_for_another_audience_is_refused(setup: Setup, tmp_path: Path) -> None:
    manager = setup.identity(MANAGER)
    # Valid for the API server (its issuer is an audience it accepts), not for Vault.
    jwt = request_token(
        setup.kube,
        manager.namespace.value,
        manager.name,
        audiences=[setup.kube.service_account_issuer],
    )
    client = pod_client(setup, MANAGER, jwt, tmp_path)
    with pytest.raises(LoginFailed, match="aud"):
        client.read(f"platform/{MANAGER}/api")


def test_a_token_signed_by_another_key_is_refused(setup: Setup, tmp_path: Path) -> None:
    manager = setup.identity(MANAGER)
    genuine = request_token(setup.kube, manager.namespace.value, manager.name)
    header, claims = jwt_parts(genuine)
    foreign_key = tmp_path / "foreign.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(foreign_key),
        ],
        check=True,
        capture_output=True,
    )
    forged = sign_jwt(header, claims, foreign_key)
    client = pod_client(setup, MANAGER, forged, tmp_path)
    with pytest.raises(LoginFailed, match="Vault refused the login"):
        client.read(f"platform/{MANAGER}/api")
    # The same claims signed by the API server's key are accepted: only the key differs.
    resigned = sign_jwt(header, claims, setup.kube.directory / "pki" / "service-account.key")
    ok = pod_client(setup, MANAGER, resigned, tmp_path / "ok")
    assert ok.read(f"platform/{MANAGER}/api").value("api_key") == "key-of-agent-manager"


def test_an_expired_token_is_refused(setup: Setup, tmp_path: Path) -> None:
    manager = setup.identity(MANAGER)
    header, claims = jwt_parts(request_token(setup.kube, manager.namespace.value, manager.name))
    now = int(time.time())
    # Signed by the API server's own key, so expiry is the only thing wrong with it.
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    expired = sign_jwt(header, claims, setup.kube.directory / "pki" / "service-account.key")
    client = pod_client(setup, MANAGER, expired, tmp_path)
    with pytest.raises(LoginFailed, match=r"Vault refused the login: .*expired"):
        client.read(f"platform/{MANAGER}/api")


def _vault_call(
    setup: Setup, method: str, path: str, token: str, body: dict[str, object] | None = None
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the test's own server on 127.0.0.1
        f"{setup.vault.address}/v1/{path}", data=data, method=method
    )
    request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        return err.code, {}


# What an agent's token must not do on Vault's sys/ paths: seal it, change policies, mounts,
# auth methods or audit devices, read its configuration, or use `default`'s sys paths.
SYS_CALLS: tuple[tuple[str, str, dict[str, object] | None], ...] = (
    ("PUT", "sys/seal", None),
    ("PUT", "sys/policy/agent-admin", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
    ("PUT", "sys/policies/acl/agent-admin", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
    ("GET", "sys/policies/acl?list=true", None),
    ("POST", "sys/mounts/agent-kv", {"type": "kv"}),
    ("GET", "sys/mounts", None),
    ("POST", "sys/auth/agent-userpass", {"type": "userpass"}),
    ("PUT", "sys/audit/agent-file", {"type": "file", "options": {"file_path": "stdout"}}),
    ("PUT", "sys/raw/core/auth", None),
    ("PUT", "sys/leases/renew", {"lease_id": "x"}),
    ("PUT", "sys/capabilities-self", {"paths": ["sys/seal"]}),
    ("PUT", "sys/tools/hash", {"input": "eA=="}),
    ("PUT", "sys/wrapping/wrap", {"x": "y"}),
)


def test_agent_pools_use_no_sys_path_and_read_their_own_secret(setup: Setup) -> None:
    agents = [i for i in setup.identities.values() if i.namespace is Namespace.AGENTS]
    assert agents, "the staging stack has agent pools"
    for identity in agents:
        assert "sys/" not in identity.policy
        jwt = request_token(setup.kube, identity.namespace.value, identity.name)
        login = hvac.Client(url=setup.vault.address).auth.kubernetes.login(identity.name, jwt)
        token = login["auth"]["client_token"]
        assert login["auth"]["policies"] == [identity.name]  # no `default`

        own = f"{setup.cfg.vault.kv_mount}/data/{secret_prefix(identity.name, identity.namespace)}"
        status, body = _vault_call(setup, "GET", f"{own}/api", token)
        assert status == 200 and body["data"]["data"] == {"api_key": f"key-of-{identity.name}"}
        assert _vault_call(setup, "GET", "auth/token/lookup-self", token)[0] == 200
        assert _vault_call(setup, "PUT", "auth/token/renew-self", token, {})[0] == 200

        refused = {
            f"{method} {path}": _vault_call(setup, method, path, token, body)[0]
            for method, path, body in SYS_CALLS
        }
        assert refused == dict.fromkeys(refused, 403), identity.name

    # Vault's unauthenticated endpoints (seal-status, health, unseal) answer anyone who reaches
    # port 8200, whatever the token: an ACL cannot refuse them. A key sent to an unsealed
    # Vault changes nothing; the stacks unseal with KMS (prod, staging), not key shares.
    status, body = _vault_call(setup, "PUT", "sys/unseal", token, {"key": "AAAA"})
    assert (status, body.get("sealed")) == (200, False)
    assert root_hvac(setup.vault).sys.read_seal_status()["sealed"] is False


def test_what_the_runtime_sends_to_vault_is_what_the_mesh_lets_in(
    setup: Setup, tmp_path: Path
) -> None:
    # Issue 19: the mesh's rules for Vault (flow table → AuthorizationPolicies on the Vault
    # servers' sidecars) against the requests the real clients send to a real OpenBao: the
    # runtime's client (login, KV read/list/metadata, transit) and hvac's token calls. Every
    # one is allowed for its identity; the same identity's sys/ calls are refused.
    cfg = setup.cfg
    mesh = generated_mesh(cfg)
    for identity in setup.identities.values():
        jwt = request_token(setup.kube, identity.namespace.value, identity.name)
        own = secret_prefix(identity.name, identity.namespace)
        with recording_proxy(setup.vault.address) as (address, seen):
            client = pod_client(setup, identity.name, jwt, tmp_path / identity.name, None, address)
            assert client.read(f"{own}/api").value("api_key") == f"key-of-{identity.name}"
            assert client.list(own) == ["api"]
            assert client.metadata(f"{own}/api").current_version == 1
            for shared in identity.shared_paths:
                # The setup seeds only the Redis entry: a 404 is a request all the same.
                with suppress(SecretNotFound):
                    client.read(shared)
            sealed = client.encrypt(identity.name, b"payload")
            assert client.decrypt(identity.name, sealed) == b"payload"
            login = hvac.Client(url=address).auth.kubernetes.login(identity.name, jwt)
            token = hvac.Client(url=address, token=login["auth"]["client_token"])
            token.auth.token.lookup_self()
            token.auth.token.renew_self()
            sent = list(seen)
            for method, path, body in SYS_CALLS:
                _vault_call_at(address, method, path, login["auth"]["client_token"], body)
            sys_calls = seen[len(sent) :]

        def decision(method: str, path: str, name: str = identity.name) -> Decision:
            return vault_decision(cfg, mesh, name, method, path)

        login_call = ("POST", "/v1/auth/kubernetes/login")
        assert login_call in sent and ("GET", "/v1/auth/token/lookup-self") in sent, sent
        assert {f"{m} {p}": decision(m, p) for m, p in sent} == {
            f"{m} {p}": Decision.ALLOW for m, p in sent
        }, identity.name
        assert len(sys_calls) == len(SYS_CALLS)
        assert {f"{m} {p}": decision(m, p) for m, p in sys_calls} == {
            f"{m} {p}": Decision.DENY for m, p in sys_calls
        }, identity.name


def _vault_call_at(
    address: str, method: str, path: str, token: str, body: dict[str, object] | None
) -> int:
    request = urllib.request.Request(  # noqa: S310 - the test's own proxy on 127.0.0.1
        f"{address}/v1/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"X-Vault-Token": token},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code
