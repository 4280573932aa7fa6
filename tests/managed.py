"""One handle for every real server a test starts: argv + environment, output captured in a log
file, a readiness probe polled until it holds (the process dying first fails at once, with the
end of its log), and a stop by PID — a signal (SIGTERM by default), then SIGKILL after a grace.

`tests/servers.py` (redis-server, OpenBao, PostgreSQL), `tests/kubeapi.py` (etcd,
kube-apiserver, kube-controller-manager), `tests/runtime/processes.py` (our services) and
`tests/ops/diagnostics/prometheus.py` all start their processes through it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ops.devstack.database import as_user

__all__ = ["ManagedProcess", "ProcessError", "as_user", "http_ok"]

# What a probe may raise while the server is still coming up: it counts as "not ready yet".
NOT_YET: tuple[type[BaseException], ...] = (OSError, httpx.HTTPError)


class ProcessError(RuntimeError):
    """A process exited while starting, or did not become ready; the message ends with its log."""


def http_ok(url: str) -> bool:
    """A readiness probe: GET `url` (one of our own 127.0.0.1 addresses) answers 200."""
    return httpx.get(url, timeout=1).status_code == 200


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None  # None: the test process' environment
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None  # None: started is ready
    not_yet: tuple[type[BaseException], ...] = NOT_YET
    start_timeout: float = 30
    poll_interval: float = 0.05
    stop_grace: float = 10  # after the stop signal, before SIGKILL
    error: type[Exception] = ProcessError
    run_as: str | None = None  # a system user (and its group) the process runs as, when root
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> ManagedProcess:
        """Start, appending its stdout and stderr to `log`, and wait until `ready` holds."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if self.env is None else dict(self.env),
                cwd=self.cwd,
                **as_user(self.run_as),
            )
        if self.ready is not None:
            self.wait_until("ready", self.ready)
        return self

    def wait_until(self, what: str, probe: Callable[[], bool]) -> None:
        """Poll `probe` until it holds; fail as soon as the process exits, or at the timeout."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if probe():
                    return
            except self.not_yet:
                pass
            time.sleep(self.poll_interval)
        raise self.error(
            f"{self.name}: {what} not reached in {self.start_timeout:.0f} s:\n{self.tail()}"
        )

    def check_running(self) -> None:
        code = None if self.popen is None else self.popen.poll()
        if code is not None:
            raise self.error(f"{self.name} exited with {code}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def send(self, sig: int) -> None:
        """Signal the process by its PID, if it still runs."""
        if self.alive:
            os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, grace: float | None = None) -> int:
        """Send `sig` by PID and wait; SIGKILL when it has not exited after the grace. The exit
        code (0 when it was never started)."""
        if self.popen is None:
            return 0
        self.send(sig)
        try:
            return self.popen.wait(timeout=self.stop_grace if grace is None else grace)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait(timeout=10)
