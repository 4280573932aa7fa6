"""Real servers for tests: started on 127.0.0.1 with a free port, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RedisServer", "free_port", "redis_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    appendfsync: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: run scripts/ensure-apt"
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    # Loading the AOF answers -LOADING; only +PONG means ready.
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (gracefully, or SIGKILL as a crash) and start again on the same data."""
        self.stop(sig)
        self._start()


@contextmanager
def redis_server(directory: Path, appendfsync: str = "everysec") -> Iterator[RedisServer]:
    server = RedisServer(free_port(), directory, None, appendfsync)  # type: ignore[arg-type]
    server._start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)
