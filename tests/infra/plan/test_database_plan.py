"""The optional PostgreSQL in the real plans: RDS private, encrypted with its own rotating key,
Multi-AZ where configured (always in prod), reachable from the nodes only; Vault's database
engine with one role per allowed pool; the allowed pools' workers told where it is and where
their logins are; the local stack has none; `agentops diff` shows the database flows first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contracts import ports
from contracts.database import (
    DATABASE_MOUNT,
    creation_statements,
    credentials_path,
    vault_role,
)
from contracts.settings.environment import env_name
from contracts.settings.worker import WorkerSettings
from infra.plan.document import REDACTED, Plan, PlanResource
from tests.infra.plan.test_agent_storage import _worker_env
from tests.stacks import REPO, run_plan, stack_values, write_stack

AWS_STACKS = ("staging", "prod")


def _of(plan: Plan, type_: str) -> list[PlanResource]:
    return [r for r in plan.resources if r.type == type_]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_the_database_is_private_encrypted_and_multi_az_as_configured(
    plans: dict[str, Plan], stack: str
) -> None:
    plan, db = plans[stack], stack_values(stack)["database"]
    (instance,) = _of(plan, "aws:rds/instance:Instance")
    i = instance.inputs
    assert i["engine"] == "postgres" and i["engineVersion"] == "16.4"
    assert i["storageEncrypted"] is True and i["publiclyAccessible"] is False
    assert i["multiAz"] is db["multiAz"] and i["multiAz"] is (stack == "prod" or i["multiAz"])
    assert i["deletionProtection"] is (stack == "prod")
    assert i["iamDatabaseAuthenticationEnabled"] is False
    assert i["backupRetentionPeriod"] == db["backupRetentionDays"]
    assert i["autoMinorVersionUpgrade"] is False
    # Its own rotating key, a subnet group of the private subnets, nodes-only on 5432, TLS forced.
    (key,) = [r for r in _of(plan, "aws:kms/key:Key") if r.name == "database-key"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.urn in instance.dependencies
    (subnets,) = _of(plan, "aws:rds/subnetGroup:SubnetGroup")
    private = {r.urn for r in _of(plan, "aws:ec2/subnet:Subnet") if "private" in r.name}
    assert set(subnets.dependencies) & private == private and private
    (group,) = [
        r for r in _of(plan, "aws:ec2/securityGroup:SecurityGroup") if r.name == "database-clients"
    ]
    (rule,) = group.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (5432, 5432, "tcp")
    assert "cidrBlocks" not in rule and len(rule["securityGroups"]) == 1
    (params,) = _of(plan, "aws:rds/parameterGroup:ParameterGroup")
    assert [(p["name"], p["value"]) for p in params.inputs["parameters"]] == [
        ("rds.force_ssl", "1")
    ]
    # The master password is a secret in the plan, never plain text; so is Vault's copy.
    assert i["password"] == REDACTED
    (connection,) = _of(plan, "vault:database/secretBackendConnection:SecretBackendConnection")
    assert connection.inputs["postgresql"]["password"] == REDACTED


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_vault_gets_one_role_per_allowed_pool_and_the_pools_their_settings(
    plans: dict[str, Plan], stack: str
) -> None:
    plan, db = plans[stack], stack_values(stack)["database"]
    (mount,) = [r for r in _of(plan, "vault:index/mount:Mount") if r.inputs["type"] == "database"]
    assert mount.inputs["path"] == DATABASE_MOUNT
    roles = {
        r.inputs["name"]: r for r in _of(plan, "vault:database/secretBackendRole:SecretBackendRole")
    }
    assert set(roles) == {vault_role(p) for p in db["pools"]}
    for pool in db["pools"]:
        assert roles[vault_role(pool)].inputs["creationStatements"] == creation_statements(pool)
    (connection,) = _of(plan, "vault:database/secretBackendConnection:SecretBackendConnection")
    assert sorted(connection.inputs["allowedRoles"]) == sorted(roles)
    for pool in (p["name"] for p in stack_values(stack)["agents"]["pools"]):
        env = _worker_env(plan, pool)
        host = env.get(env_name(WorkerSettings, "database_host"))
        path = env.get(env_name(WorkerSettings, "database_credentials_path"))
        if pool in db["pools"]:
            assert host == "database.agentops-agents.svc.cluster.local"
            assert path == credentials_path(pool)
        else:
            assert host is None and path is None
    (service,) = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "Service"
        and r.inputs["metadata"]["name"] == "database"
    ]
    assert service.inputs["spec"]["type"] == "ExternalName"


def test_the_local_stack_has_no_database(plans: dict[str, Plan]) -> None:
    assert _of(plans["local"], "aws:rds/instance:Instance") == []
    assert not [
        r
        for r in _of(plans["local"], "vault:index/mount:Mount")
        if r.inputs.get("type") == "database"
    ]


def test_diff_shows_the_database_flows_first(tmp_path: Path) -> None:
    def scanner_too(config: dict[str, Any]) -> None:
        config["agentops:database"]["pools"] = ["code-generator", "security-scanner"]

    def no_database(config: dict[str, Any]) -> None:
        config["agentops:database"] = {"enabled": False}

    base, head = tmp_path / "base", tmp_path / "head"
    for out, mutate in ((base, no_database), (head, scanner_too)):
        proc = run_plan(
            "staging", out, write_stack(tmp_path / f"{out.name}-stack", "staging", mutate)
        )
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ops.cli", "diff", str(base), str(head)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    flows, _, resources = proc.stdout.partition(" to add, ")
    assert "#### Flows" in flows, proc.stdout[:2000]
    for flow in (
        "agent-code-generator-to-database",
        "agent-security-scanner-to-database",
        "vault-to-database",
    ):
        assert f"`{flow}`" in flows
    assert f"{ports.POSTGRES}" in flows
    assert "aws:rds/instance:Instance" in resources
