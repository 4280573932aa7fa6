"""The pools' database logins on a real OpenBao and a real PostgreSQL, configured the way the
database layer renders them (the roles, statements and policies come from the same functions:
contracts/database.py, infra/platform/vault_access.py), read by the worker's PoolDatabase."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import hvac
import pytest

from contracts.config import PlatformConfig, load_from_mapping
from contracts.database import (
    DATABASE_MOUNT,
    VAULT_CONNECTION,
    creation_statements,
    credentials_path,
    pool_group,
    revocation_statements,
    vault_role,
)
from contracts.settings.worker import WorkerSettings
from infra.platform.names import pool_workload
from infra.platform.vault_access import vault_identities
from runtime.secrets import PermissionDenied, RecentAudit
from runtime.worker.database import PoolDatabase
from tests.runtime.secrets.bao import FakeClock, MakeClient
from tests.servers import BaoServer, PostgresServer, postgres_server
from tests.stacks import stack_values

A, B = "code-generator", "security-scanner"


def _config(pools: list[str]) -> PlatformConfig:
    values = stack_values("staging")
    values["database"] = {**values["database"], "pools": pools}
    return load_from_mapping(values)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="module")
def both() -> PlatformConfig:
    """Staging with both pools allowed (the committed stack allows code-generator only)."""
    return _config([A, B])


@pytest.fixture(scope="module")
def engine(bao: BaoServer, postgres: PostgresServer, both: PlatformConfig) -> hvac.Client:
    """The database layer's mount, connection and roles, and every identity's policy."""
    root = hvac.Client(url=bao.address, token=bao.root_token)
    root.sys.enable_secrets_engine("database", path=DATABASE_MOUNT)
    db = both.database
    root.secrets.database.configure(
        VAULT_CONNECTION,
        "postgresql-database-plugin",
        mount_point=DATABASE_MOUNT,
        allowed_roles=[vault_role(p) for p in db.pools],
        connection_url=(
            "postgresql://{{username}}:{{password}}@127.0.0.1:"
            f"{postgres.port}/{postgres.database}?sslmode=disable"
        ),
        username=postgres.admin,
        password=postgres.admin_password,
    )
    for pool in db.pools:
        root.secrets.database.create_role(
            vault_role(pool),
            VAULT_CONNECTION,
            creation_statements(pool),
            revocation_statements=revocation_statements(pool),
            default_ttl=db.credentials_ttl_s,
            max_ttl=db.credentials_ttl_s * 4,
            mount_point=DATABASE_MOUNT,
        )
    staging = load_from_mapping(stack_values("staging"))
    for config, suffix in ((both, ""), (staging, "-staging")):
        for identity in vault_identities(config):
            root.sys.create_or_update_policy(identity.name + suffix, identity.policy)
    return root


def _token(root: hvac.Client, policy: str) -> str:
    made = root.auth.token.create(policies=[policy], no_default_policy=True, ttl="10m")
    return str(made["auth"]["client_token"])


def _database(
    make_client: MakeClient, root: hvac.Client, postgres: PostgresServer, pool: str, policy: str
) -> PoolDatabase:
    settings = WorkerSettings.model_validate(
        {
            "agent_type": pool,
            "manager_url": "http://127.0.0.1:1",
            "agent_token_file": "/dev/null",
            "database_host": "127.0.0.1",
            "database_port": postgres.port,
            "database_name": postgres.database,
            "database_credentials_path": credentials_path(pool),
            "database_ssl": False,
        }
    )
    return PoolDatabase.from_settings(settings, make_client(token=_token(root, policy)))


async def _run(db: PoolDatabase, *statements: str) -> list[Any]:
    async with db.connect() as conn:
        rows: list[Any] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return rows


def test_each_pool_gets_its_own_login_and_schema_no_other_pool_reads(
    engine: hvac.Client, make_client: MakeClient, postgres: PostgresServer
) -> None:
    a = _database(make_client, engine, postgres, A, pool_workload(A))
    b = _database(make_client, engine, postgres, B, pool_workload(B))
    rows = asyncio.run(
        _run(
            a,
            "CREATE TABLE notes (id int PRIMARY KEY, body text)",
            "INSERT INTO notes VALUES (1, 'from a')",
            "SELECT current_user, current_schema(), body FROM notes",
        )
    )
    assert [tuple(r) for r in rows] == [(pool_group(A), pool_group(A), "from a")]
    login_a, login_b = asyncio.run(a.login()), asyncio.run(b.login())
    assert login_a.username != login_b.username
    assert login_a.password.get_secret_value() != login_b.password.get_secret_value()
    # B's own schema works; A's table is refused at A's schema, by name or by search path.
    assert asyncio.run(_run(b, "CREATE TABLE notes (id int)", "SELECT count(*) FROM notes")) == [
        (0,)
    ]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema"):
        asyncio.run(_run(b, f"SELECT body FROM {pool_group(A)}.notes"))  # noqa: S608 - our name
    # A new login of A (another pod, a later lease) reads what the first one wrote.
    again = _database(make_client, engine, postgres, A, pool_workload(A))
    assert asyncio.run(_run(again, "SELECT body FROM notes")) == [("from a",)]
    assert asyncio.run(again.login()).username != login_a.username


def test_a_revoked_login_is_cut_off_and_the_pool_keeps_its_data(
    engine: hvac.Client, make_client: MakeClient, postgres: PostgresServer, clock: FakeClock
) -> None:
    a = _database(make_client, engine, postgres, A, pool_workload(A))

    async def revoke_while_connected() -> None:
        async with a.connect() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (v int)")
            await conn.execute("INSERT INTO kept VALUES (7)")
            login = await a.login()
            engine.sys.revoke_lease(login.lease_id)
            # Vault ended the session it was in, and the login is gone.
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await conn.fetch("SELECT 1")
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(
                host="127.0.0.1",
                port=postgres.port,
                database=postgres.database,
                user=login.username,
                password=login.password.get_secret_value(),
                ssl=False,
            )

    asyncio.run(revoke_while_connected())
    first = asyncio.run(a.login())
    assert first.lease_seconds == _config([A, B]).database.credentials_ttl_s
    # Past two thirds of the lease, the next connection runs on a new login, and the pool's
    # table (owned by its group, not by the revoked login) is still there.
    clock.advance(timedelta(seconds=first.lease_seconds * 0.7))
    assert asyncio.run(_run(a, "SELECT v FROM kept")) == [(7,)]
    assert asyncio.run(a.login()).username != first.username


def test_a_pool_the_database_does_not_list_gets_403(
    engine: hvac.Client, make_client: MakeClient, postgres: PostgresServer, recent: RecentAudit
) -> None:
    """The committed staging stack lists code-generator only: security-scanner's policy there
    reads neither its own role's logins nor code-generator's; the manager reads none."""
    for pool, policy in (
        (B, pool_workload(B) + "-staging"),
        (A, pool_workload(B) + "-staging"),
        (A, "agent-manager"),
    ):
        db = _database(make_client, engine, postgres, pool, policy)
        with pytest.raises(PermissionDenied):
            asyncio.run(db.login())
    logins = [r for r in recent.records() if r.operation == "database-login"]
    assert [(r.path, r.outcome) for r in logins[-3:]] == [
        (credentials_path(B), "denied"),
        (credentials_path(A), "denied"),
        (credentials_path(A), "denied"),
    ]
