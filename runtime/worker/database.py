"""The pool's PostgreSQL connection for handlers, with dynamic logins from Vault.

A handler built with the worker's settings asks `PoolDatabase.from_settings(settings)` and, per
task, `async with database.connect() as conn:` (an asyncpg connection). The login comes from the
pool's Vault path (`database/creds/<role>`); a new one is read when two thirds of its lease have
passed, so a connection never starts on a login Vault is about to revoke. Each login's session
runs as the pool's group role, in the pool's schema (contracts/database.py): tables persist
across logins and no other pool can read them.

`agentops dev` has no Vault: it creates one fixed login per pool with the same statements and
hands the worker `database_user` and `database_password_file` instead of the Vault path; the
file is read for each new connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from contracts.settings.worker import WorkerSettings
from runtime.secrets import DatabaseLogin, SecretsClient

__all__ = ["DatabaseNotConfigured", "PoolDatabase"]

# Share of a login's lease after which the next connection asks Vault for a new one.
RENEW_AFTER = 2 / 3


class DatabaseNotConfigured(RuntimeError):
    """The pool's settings name no database (`database.pools` does not list it)."""


class _FixedLogin:
    """The devstack's login: a user and its password file, read afresh for each connection."""

    def __init__(self, user: str, password_file: Path) -> None:
        self._user, self._file = user, password_file

    def __call__(self, path: str) -> DatabaseLogin:
        password = SecretStr(self._file.read_text().strip())
        # Lease 0: never fresh, so the next connection reads the file again.
        return DatabaseLogin(path, self._user, password, "", 0, datetime.now(UTC))


class PoolDatabase:
    def __init__(
        self,
        settings: WorkerSettings,
        logins: Callable[[str], DatabaseLogin],
        clock: Callable[[], datetime],
    ) -> None:
        path = settings.database_credentials_path or settings.database_user
        if settings.database_host is None or path is None:
            raise DatabaseNotConfigured(
                f"pool {settings.agent_type} has no database: list it in agentops:database.pools"
            )
        self._settings = settings
        self._path = path
        self._logins = logins
        self._clock = clock
        self._login: DatabaseLogin | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: WorkerSettings, secrets: SecretsClient | None = None
    ) -> PoolDatabase:
        user, password_file = settings.database_user, settings.database_password_file
        if user is not None and password_file is not None:
            return cls(settings, _FixedLogin(user, password_file), lambda: datetime.now(UTC))
        client = secrets or SecretsClient.from_settings()
        return cls(settings, client.database_login, client.clock)

    def _fresh(self, login: DatabaseLogin) -> bool:
        age = self._clock() - login.obtained_at
        return age < timedelta(seconds=login.lease_seconds * RENEW_AFTER)

    async def login(self) -> DatabaseLogin:
        """The current login, a new one from Vault when none is fresh enough."""
        async with self._lock:
            if self._login is None or not self._fresh(self._login):
                self._login = await asyncio.to_thread(self._logins, self._path)
            return self._login

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        login = await self.login()
        s = self._settings
        conn = await asyncpg.connect(
            host=s.database_host,
            port=s.database_port,
            database=s.database_name,
            user=login.username,
            password=login.password.get_secret_value(),
            ssl="require" if s.database_ssl else False,
        )
        try:
            yield conn
        finally:
            await conn.close()
