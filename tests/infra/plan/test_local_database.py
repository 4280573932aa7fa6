"""The local stack's optional PostgreSQL, in a real plan: an in-cluster server (pinned official
image, restricted pod, its own service account, a volume claim, Service `database` in the
platform namespace), the admin password a secret only, and the same Vault wiring as RDS — one
role per pool with the shared statements, a connection to the in-cluster address. Vault off in
local is refused naming the key: the pools' logins come from Vault only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import versions
from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from contracts.database import creation_statements, credentials_path, vault_role
from contracts.settings.environment import env_name
from contracts.settings.worker import WorkerSettings
from infra.layers.database import MASTER_USER, server_url
from infra.plan.document import REDACTED, Plan
from policies.kubernetes_workloads import _registries
from tests.infra.plan.test_agent_storage import _worker_env
from tests.infra.test_monitoring_layer import _one
from tests.stacks import (
    LOCAL_DATABASE_POOLS,
    REPO,
    local_database,
    run_plan,
    stack_values,
    write_stack,
)

HOST = "database.agentops-platform.svc.cluster.local"


@pytest.fixture(scope="module")
def local_db_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    root = tmp_path_factory.mktemp("local-database")
    proc = run_plan("local", root / "plan", write_stack(root / "stack", "local", local_database))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Plan.load(root / "plan")


def test_the_local_server_is_a_pinned_restricted_statefulset(local_db_plan: Plan) -> None:
    server = _one(local_db_plan, "StatefulSet", "database").inputs
    assert server["metadata"]["namespace"] == "agentops-platform"
    spec = server["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "database"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    tag = versions.POSTGRES_IMAGE_TAGS[versions.POSTGRES_ENGINE_VERSIONS[0]]
    assert container["image"] == f"{versions.POSTGRES_IMAGE}:{tag}"
    hardening = container["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The admin password reaches the server as a mounted Secret file, never as a value.
    assert env["POSTGRES_PASSWORD_FILE"].startswith("/etc/database-admin/")
    assert "POSTGRES_PASSWORD" not in env
    secret = _one(local_db_plan, "Secret", "database-admin").inputs
    assert secret["stringData"] == REDACTED
    account = _one(local_db_plan, "ServiceAccount", "database").inputs
    assert account["automountServiceAccountToken"] is False
    service = _one(local_db_plan, "Service", "database").inputs
    assert service["metadata"]["namespace"] == "agentops-platform"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]


def test_vault_wiring_is_the_rds_one_with_the_in_cluster_address(local_db_plan: Plan) -> None:
    roles = {
        r.inputs["name"]: r
        for r in local_db_plan.resources
        if r.type == "vault:database/secretBackendRole:SecretBackendRole"
    }
    assert set(roles) == {vault_role(p) for p in LOCAL_DATABASE_POOLS}
    for pool in LOCAL_DATABASE_POOLS:
        assert roles[vault_role(pool)].inputs["creationStatements"] == creation_statements(pool)
    (connection,) = [
        r
        for r in local_db_plan.resources
        if r.type == "vault:database/secretBackendConnection:SecretBackendConnection"
    ]
    postgres = connection.inputs["postgresql"]
    assert postgres["password"] == REDACTED and postgres["username"] == MASTER_USER
    cfg = _local_db_config()
    assert postgres["connectionUrl"] == server_url(cfg, HOST)
    assert postgres["connectionUrl"].endswith("sslmode=disable")
    # The connection waits for the server, so Vault's check of it finds PostgreSQL there.
    server = _one(local_db_plan, "StatefulSet", "database")
    assert server.urn in connection.dependencies
    for pool in LOCAL_DATABASE_POOLS:
        env = _worker_env(local_db_plan, pool)
        assert env[env_name(WorkerSettings, "database_host")] == HOST
        assert env[env_name(WorkerSettings, "database_credentials_path")] == credentials_path(pool)
        assert env[env_name(WorkerSettings, "database_ssl")] == "false"


def _local_db_config() -> Any:
    config = {f"agentops:{k}": v for k, v in stack_values("local").items()}
    local_database(config)
    return load_from_mapping({k.split(":", 1)[1]: v for k, v in config.items()})


def test_the_committed_local_stack_still_has_no_database(plans: dict[str, Plan]) -> None:
    assert not [
        r
        for r in plans["local"].resources
        if r.is_kubernetes_object and r.inputs["kind"] == "StatefulSet"
    ]


def test_vault_off_in_local_is_refused_naming_the_key() -> None:
    config = {f"agentops:{k}": v for k, v in stack_values("local").items()}
    local_database(config)
    config["agentops:vault"] = {"enabled": False, "unseal": "shamir"}
    with pytest.raises(ConfigError, match=r"agentops:vault\.enabled = False: each pool's"):
        load_from_mapping({k.split(":", 1)[1]: v for k, v in config.items()})


def test_every_pinned_server_image_is_trusted_in_local_only() -> None:
    for tag in versions.POSTGRES_IMAGE_TAGS.values():
        image = f"{versions.POSTGRES_IMAGE}:{tag}"
        assert _trusted(image, "local"), image
        assert not _trusted(image, "prod"), image
    assert set(versions.POSTGRES_IMAGE_TAGS) == set(versions.POSTGRES_ENGINE_VERSIONS)


def _trusted(image: str, stack: str) -> bool:
    """The pack's own registry rule, with the stack's policy config, on a pod of that image."""
    config = json.loads((REPO / "policies" / "config" / f"{stack}.json").read_text())
    pod = {"containers": [{"name": "postgres", "image": image}]}
    return not _registries(pod, config.get("k8s-trusted-registries", {}))
