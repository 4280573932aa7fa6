"""The pools' PostgreSQL access through Vault: names and SQL, written once.

The database layer (infra/layers/database.py) configures Vault's database secrets engine with
these roles and statements; the worker reads its credentials from `credentials_path`; the tests
configure a real OpenBao and PostgreSQL from the same functions.

Each allowed pool owns a group role (NOLOGIN) and a schema of the same name that no one else may
use. A Vault lease creates a login role inside the pool's group whose session runs as the group
(`SET role`), so tables one lease creates belong to the pool, not to the login: the next lease
of the same pool reads them, another pool's login is refused at the schema. When the lease ends
Vault drops the login; the pool's data stays with its group role.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DATABASE_MOUNT",
    "VAULT_CONNECTION",
    "creation_statements",
    "credentials_path",
    "pool_group",
    "revocation_statements",
    "vault_role",
]

# The Vault mount of the database secrets engine and its one connection (the platform's database).
DATABASE_MOUNT: Final = "database"
VAULT_CONNECTION: Final = "agentops"


def pool_group(pool: str) -> str:
    """The pool's PostgreSQL group role and schema (an identifier without quoting needs)."""
    return "pool_" + pool.replace("-", "_")


def vault_role(pool: str) -> str:
    """The Vault database role whose credentials only this pool's policy may read."""
    return f"pool-{pool}"


def credentials_path(pool: str) -> str:
    """Where the pool's worker reads a fresh login (GET; a lease per read)."""
    return f"{DATABASE_MOUNT}/creds/{vault_role(pool)}"


def creation_statements(pool: str) -> list[str]:
    """Run by Vault (as the connection's user) for each lease; idempotent for the pool's group and
    schema, so the first lease sets them up and no separate bootstrap step exists."""
    group = pool_group(pool)
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') THEN "
        f"CREATE ROLE {group} NOLOGIN; END IF; END $$;",
        # The connection's user must be a member to create the schema with this owner.
        f"GRANT {group} TO CURRENT_USER;",
        f"CREATE SCHEMA IF NOT EXISTS {group} AUTHORIZATION {group};",
        f"REVOKE ALL ON SCHEMA {group} FROM PUBLIC;",
        # NOINHERIT: the login itself may do nothing; its session runs as the group (below), so
        # everything it creates belongs to the pool and the login owns nothing when dropped.
        "CREATE ROLE \"{{name}}\" WITH LOGIN NOINHERIT PASSWORD '{{password}}' "
        f"VALID UNTIL '{{{{expiration}}}}' IN ROLE {group};",
        f'ALTER ROLE "{{{{name}}}}" SET role = {group};',
        f'ALTER ROLE "{{{{name}}}}" SET search_path = {group};',
    ]


def revocation_statements(pool: str) -> list[str]:
    """Run by Vault when a lease ends: the login's sessions end and the login goes (it owns
    nothing: its objects are the pool group's)."""
    del pool  # the same for every pool: only the login is named
    return [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
        'DROP ROLE IF EXISTS "{{name}}";',
    ]
