"""The runtime's services as real processes for tests: `python -m runtime serve <service>`, as
the image runs them, on 127.0.0.1 with a free port, settings through the environment, stopped
by PID."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.managed import ManagedProcess, http_ok
from tests.servers import free_port

__all__ = ["ServiceProcess", "Tokens", "manager_env", "running", "worker_env"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tokens:
    """One token file per audience, fresh per test."""

    directory: Path
    api: str
    agent: str
    webhook: str
    cost: str

    @classmethod
    def create(cls, directory: Path) -> Tokens:
        directory.mkdir(parents=True, exist_ok=True)
        values = {name: secrets.token_urlsafe(24) for name in ("api", "agent", "webhook", "cost")}
        for name, value in values.items():
            (directory / f"{name}.token").write_text(value + "\n")
        return cls(directory, **values)

    def file(self, name: str) -> str:
        return str(self.directory / f"{name}.token")

    def header(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, name)}"}


@dataclass
class ServiceProcess:
    service: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    # What `python` runs: the image's entry point (`python -m runtime serve <service>`).
    launcher: tuple[str, ...] = ("-m", "runtime")
    handle: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.handle is None else self.handle.popen

    def start(self, wait_for: str = "/health", timeout: float = 30) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_")},
            **self.env,
            "AGENTOPS_HOST": "127.0.0.1",
            "AGENTOPS_PORT": str(self.port),
        }
        self.handle = ManagedProcess(
            self.service,
            [sys.executable, *self.launcher, "serve", self.service],
            self.log,
            env=env,
            cwd=REPO,
            ready=lambda: http_ok(self.url + wait_for),
            start_timeout=timeout,
        ).start()

    def send(self, sig: int) -> None:
        assert self.handle is not None
        self.handle.send(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` by PID; SIGKILL after `timeout` seconds. The exit code."""
        return 0 if self.handle is None else self.handle.stop(sig, grace=timeout)

    @property
    def alive(self) -> bool:
        return self.handle is not None and self.handle.alive


@contextmanager
def running(*services: ServiceProcess) -> Iterator[None]:
    """Start in order; stop (by PID, SIGKILL after the grace) in reverse, also on failure."""
    started: list[ServiceProcess] = []
    try:
        for service in services:
            service.start()
            started.append(service)
        yield
    finally:
        for service in reversed(started):
            service.stop(signal.SIGTERM, timeout=30)


def manager_env(
    redis_url: str, tokens: Tokens, agent_types: list[str], **settings: object
) -> dict[str, str]:
    env = {
        "AGENTOPS_REDIS_URL": redis_url,
        "AGENTOPS_AGENT_TYPES": json.dumps(agent_types),
        "AGENTOPS_API_TOKEN_FILE": tokens.file("api"),
        "AGENTOPS_AGENT_TOKEN_FILE": tokens.file("agent"),
        "AGENTOPS_WEBHOOK_TOKEN_FILE": tokens.file("webhook"),
        "AGENTOPS_LOG_LEVEL": "warning",
    }
    return env | _env(settings)


def worker_env(
    redis_url: str,
    tokens: Tokens,
    manager_url: str,
    agent_type: str,
    agent_id: str,
    **settings: object,
) -> dict[str, str]:
    env = {
        "AGENTOPS_REDIS_URL": redis_url,
        "AGENTOPS_MANAGER_URL": manager_url,
        "AGENTOPS_AGENT_TOKEN_FILE": tokens.file("agent"),
        "AGENTOPS_AGENT_TYPE": agent_type,
        "AGENTOPS_AGENT_ID": agent_id,
        "AGENTOPS_LOG_LEVEL": "warning",
    }
    return env | _env(settings)


def _env(settings: Mapping[str, object]) -> dict[str, str]:
    return {
        f"AGENTOPS_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
        for k, v in settings.items()
    }
