"""`agentops dev up` with a database: a real PostgreSQL started by the devstack's own code, one
login per pool created with the statements Vault runs in the cluster, and each pool's workers
handed their own settings. A worker (the runtime's `PoolDatabase`, from the env the devstack
gives that worker) writes to its pool's schema; another pool's worker is refused there."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from contracts.config import PlatformConfig, load_from_mapping
from contracts.database import pool_group
from contracts.settings.worker import WorkerSettings
from ops.devstack.control import free_ports, start, stop
from ops.devstack.layout import DATABASE_ENV, DevPlan, ProcessSpec, plan, process_names
from runtime.worker.database import PoolDatabase
from tests.stacks import LOCAL_DATABASE_POOLS, local_database, stack_values

OWN, OTHER = LOCAL_DATABASE_POOLS


def _config() -> PlatformConfig:
    config = {f"agentops:{k}": copy.deepcopy(v) for k, v in stack_values("local").items()}
    local_database(config)
    return load_from_mapping({k.split(":", 1)[1]: v for k, v in config.items()})


@pytest.fixture
def state() -> Iterator[Path]:
    # As root the server runs as `postgres`, which cannot enter pytest's root-only tree.
    directory = Path(tempfile.mkdtemp(prefix="agentops-devstack-db-"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _worker(dev: DevPlan, pool: str) -> ProcessSpec:
    return next(p for p in dev.processes if p.role == "worker" and f"-{pool}-" in p.name)


def _settings(spec: ProcessSpec) -> WorkerSettings:
    saved = dict(os.environ)
    try:
        os.environ.update(spec.env)
        return WorkerSettings()  # type: ignore[call-arg]  # from the environment
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_each_pool_gets_its_own_login_and_only_its_own_schema(state: Path) -> None:
    cfg = _config()
    dev = plan(cfg, state, free_ports(process_names(cfg)), sys.executable)
    assert dev.database is not None
    workers = {pool: _worker(dev, pool) for pool in LOCAL_DATABASE_POOLS}
    for pool, spec in workers.items():
        # The cluster's Vault path is replaced by the pool's own fixed login.
        assert DATABASE_ENV["database_credentials_path"] not in spec.env
        assert spec.env[DATABASE_ENV["database_user"]] == f"{pool_group(pool)}_dev"
    assert len({w.env[DATABASE_ENV["database_password_file"]] for w in workers.values()}) == 2
    # The database part of `dev up`: redis is not needed for it.
    only_db = DevPlan([dev.process("postgres")], {}, dev.database)
    start(state, only_db)
    passwords = {
        pool: Path(spec.env[DATABASE_ENV["database_password_file"]]).read_text()
        for pool, spec in workers.items()
    }
    assert passwords[OWN] != passwords[OTHER]
    password_file = Path(workers[OWN].env[DATABASE_ENV["database_password_file"]])
    assert password_file.stat().st_mode & 0o777 == 0o600
    own, other = _settings(workers[OWN]), _settings(workers[OTHER])
    asyncio.run(_exercise(own, other))
    # `dev down` and `up` again on the same data: new logins (Vault's revocation, then creation
    # statements), the old password refused, the pool's data kept with its group role.
    old_password = password_file.read_text()
    stop(state)
    start(state, only_db)
    assert password_file.read_text() != old_password
    stale = state / "stale.password"
    stale.write_text(old_password)
    asyncio.run(_after_restart(own, own.model_copy(update={"database_password_file": stale})))


async def _exercise(own: WorkerSettings, other: WorkerSettings) -> None:
    async with PoolDatabase.from_settings(own).connect() as conn:
        assert await conn.fetchval("SELECT current_user") == pool_group(OWN)
        await conn.execute("CREATE TABLE notes (body text)")
        await conn.execute("INSERT INTO notes VALUES ('mine')")
    async with PoolDatabase.from_settings(own).connect() as conn:
        assert await conn.fetchval("SELECT body FROM notes") == "mine"
    table = f"{pool_group(OWN)}.notes"
    async with PoolDatabase.from_settings(other).connect() as conn:
        assert await conn.fetchval("SELECT current_user") == pool_group(OTHER)
        with pytest.raises(
            asyncpg.InsufficientPrivilegeError, match="permission denied for schema"
        ):
            await conn.fetchval(f"SELECT body FROM {table}")  # noqa: S608 - test's own name
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE TABLE {pool_group(OWN)}.theirs (x int)")
    # A wrong password is refused: the login is a real password login over TCP.
    wrong = own.model_copy(update={"database_password_file": Path(os.devnull)})
    with pytest.raises(asyncpg.InvalidPasswordError):
        async with PoolDatabase.from_settings(wrong).connect():
            pass


async def _after_restart(own: WorkerSettings, stale: WorkerSettings) -> None:
    async with PoolDatabase.from_settings(own).connect() as conn:
        assert await conn.fetchval("SELECT body FROM notes") == "mine"
    with pytest.raises(asyncpg.InvalidPasswordError):
        async with PoolDatabase.from_settings(stale).connect():
            pass
