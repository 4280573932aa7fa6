"""The devstack's PostgreSQL: one local server, one fixed login per pool.

The cluster leases each pool a login from Vault's database secrets engine; one machine has no
Vault, so `agentops dev up` runs the same creation statements (contracts/database.py) itself,
once per pool, with a login name and a password of its own: each pool's workers get their own
user and password file, run as the pool's group role in the pool's schema, and are refused at
any other pool's schema — as in the cluster. A second `up` on the same data drops the logins
first (Vault's revocation statements) and creates them with new passwords.

PostgreSQL refuses to run as root: as root (CI), initdb, the server and psql run as Debian's
`postgres` user, which must be able to enter the state directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contracts.config import PlatformConfig
from contracts.database import creation_statements, pool_group, revocation_statements

__all__ = ["SERVER_USER", "DatabaseSetup", "as_user", "create_logins", "init", "postgres_bin"]

# The system user PostgreSQL runs as when the devstack runs as root.
SERVER_USER: Final = "postgres"
# The superuser initdb creates; it logs in over the Unix socket only (pg_hba.conf below).
_SUPERUSER: Final = "postgres"
# Password logins over TCP only, as on RDS and the in-cluster server.
_HBA: Final = "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"


def postgres_bin(name: str) -> str:
    """A PostgreSQL program from Debian's versioned directory (the newest major installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {name} is not installed: run scripts/ensure-apt (Debian postgresql)"
        )
    return str(found[-1])


def as_user(user: str | None) -> dict[str, Any]:
    """Popen/run arguments that drop to `user` (and its group) when running as root."""
    if user is None or os.geteuid() != 0:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


@dataclass(frozen=True)
class DatabaseSetup:
    """Where the devstack's server keeps its data and socket, and the logins it creates."""

    directory: str  # data in `data/`, the Unix socket beside it
    port: int
    database: str
    logins: dict[str, tuple[str, str]]  # pool → (user, password file)

    @property
    def data(self) -> Path:
        return Path(self.directory) / "data"

    def argv(self) -> list[str]:
        return [
            postgres_bin("postgres"),
            *("-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port)),
            *("-k", self.directory),
        ]

    def ready_argv(self) -> list[str]:
        return [postgres_bin("pg_isready"), "-h", self.directory, "-p", str(self.port)]


def login_name(pool: str) -> str:
    """The pool's fixed devstack login (Vault names its leases `v-…` instead)."""
    return f"{pool_group(pool)}_dev"


def setup(cfg: PlatformConfig, state: Path, port: int) -> DatabaseSetup | None:
    """The devstack's database for the stack's `database.pools` (None: the database is off)."""
    secrets_dir = state / "secrets"
    logins = {
        pool: (login_name(pool), str(secrets_dir / f"database-{pool}.password"))
        for pool in cfg.database_pools()
    }
    if not logins:
        return None
    return DatabaseSetup(str(state / "postgres"), port, cfg.database.name, logins)


def _run(argv: list[str], cwd: str, stdin: str | None = None) -> None:
    done = subprocess.run(  # noqa: S603 - argv built here, no shell
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        **as_user(SERVER_USER),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")


def init(db: DatabaseSetup) -> None:
    """initdb once (the data directory survives `dev down`), password logins over TCP only."""
    directory = Path(db.directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if os.geteuid() == 0:
        shutil.chown(directory, SERVER_USER, SERVER_USER)
    if db.data.exists():
        return
    _run(
        [
            postgres_bin("initdb"),
            *("-D", str(db.data), "-U", _SUPERUSER, "--auth=trust"),
            *("--encoding=UTF8", "--locale=C"),
        ],
        db.directory,
    )
    hba = db.data / "pg_hba.conf"
    hba.write_text(_HBA)


def _statements(pool: str, user: str, password: str) -> list[str]:
    """Vault's revocation then creation statements, with the values Vault would fill in."""
    values = {"{{name}}": user, "{{password}}": password, "{{expiration}}": "infinity"}
    out = []
    for statement in [*revocation_statements(pool), *creation_statements(pool)]:
        for template, value in values.items():
            statement = statement.replace(template, value)
        out.append(statement)
    return out


def create_logins(db: DatabaseSetup) -> None:
    """The database, then for each pool a fresh login (new password, 0600 file)."""
    psql = [
        postgres_bin("psql"),
        *("-h", db.directory, "-p", str(db.port), "-U", _SUPERUSER, "-v", "ON_ERROR_STOP=1"),
    ]
    # The name is the config's `database.name` (^[a-z][a-z0-9_]{0,62}$): no quoting needs.
    exists = f"SELECT 1 FROM pg_database WHERE datname = '{db.database}'"  # noqa: S608
    _run(
        [*psql, "-d", "postgres"],
        db.directory,
        f"SELECT 'CREATE DATABASE {db.database}' WHERE NOT EXISTS ({exists}) \\gexec\n",
    )
    for pool, (user, password_file) in db.logins.items():
        password = secrets.token_urlsafe(24)
        path = Path(password_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
        # Sent on psql's standard input: no password on a command line.
        script = "".join(f"{s}\n" for s in _statements(pool, user, password))
        _run([*psql, "-d", db.database], db.directory, script)
